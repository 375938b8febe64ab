"""Measuring helpers: resident memory, fitted slopes, percentiles, progress bars."""
from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def rss_kb(pid: int | None = None) -> int:
    """Resident set size in KB from /proc (Linux); raises when the process is gone."""
    status = Path(f"/proc/{pid or os.getpid()}/status")
    for line in status.read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"{status} has no VmRSS line")


def machine_line() -> str:
    """CPU count and load: on a shared machine the timings mean little without them."""
    load = os.getloadavg()
    return (f"Machine: {os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
            f"(1 / 5 / 15 min) when the suite started this part.")


def slope(x: Iterable[float], y: Iterable[float]) -> float:
    """Least-squares slope of y over x (nan with fewer than two points)."""
    x, y = np.asarray(list(x), np.float64), np.asarray(list(y), np.float64)
    if len(x) < 2 or np.ptp(x) == 0:
        return float("nan")
    return float(np.polyfit(x, y, 1)[0])


def summary_ms(values: Iterable[float]) -> dict[str, float]:
    v = np.asarray(list(values), np.float64)
    if v.size == 0:
        return {"mean": float("nan"), "p50": float("nan"), "p99": float("nan"), "n": 0}
    return {"mean": float(v.mean()), "p50": float(np.percentile(v, 50)), "p99": float(np.percentile(v, 99)),
            "n": int(v.size)}


def progress(items: Iterable[T], total: int | None, desc: str, enabled: bool) -> Iterator[T]:
    if not enabled:
        yield from items
        return
    from tqdm import tqdm

    yield from tqdm(items, total=total, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True)
