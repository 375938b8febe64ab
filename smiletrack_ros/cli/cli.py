"""Argument helpers shared by the command-line tools."""
from __future__ import annotations

from typing import Any

import yaml


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``PARAM=VALUE`` pairs (from repeated ``--set``), values read as YAML: 0.8 -> float,
    true -> bool, [0, 2] -> list, null -> None."""
    overrides = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--set expects PARAM=VALUE, got {item!r}")
        overrides[name.strip()] = yaml.safe_load(value)
    return overrides
