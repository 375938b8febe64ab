"""Our PRBNet against the official network, for every official architecture config.

``../shared/prb-reference`` holds the official yaml files, a state-dict manifest and the
official outputs for a deterministic weight fill and input; its ``check_reference.py``
fills our network by that rule and compares (keys, shapes, filled sums, anchors, output
rows within 1e-4). Each of the 26 distinct architectures is one test (about 1-4 s each on
one core); the 6 duplicate files are checked to describe the same architecture as the one
tested. Skipped without ../shared.
"""
import argparse
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from smiletrack_ros.detection.prb.network import PRBNet
from smiletrack_ros.detection.prb.network import architecture_key as architecture
from smiletrack_ros.detection.prb.variants import OFFICIAL_CONFIGS, variant_spec

REF = Path(__file__).resolve().parents[1].parent / "shared" / "prb-reference"
NAMES = sorted(p.stem for p in (REF / "manifests").glob("*.json")) if REF.is_dir() else []


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ref():
    if not (REF / "check_reference.py").is_file():
        pytest.skip(f"prb-reference not found at {REF}")
    return argparse.Namespace(checker=_load("prb_check_reference", REF / "check_reference.py"),
                              fill=_load("prb_reference_fill", REF / "fill.py"))


def _manifest(name: str) -> dict:
    return json.loads((REF / "manifests" / f"{name}.json").read_text())


def _distinct() -> tuple[list[str], dict[str, str]]:
    """The first config of each architecture, and every duplicate -> its representative."""
    seen: dict[tuple, str] = {}
    duplicates = {}
    for name in NAMES:
        key = architecture(yaml.safe_load((REF / _manifest(name)["cfg"]).read_text()))
        if key in seen:
            duplicates[name] = seen[key]
        else:
            seen[key] = name
    return sorted(seen.values()), duplicates


DISTINCT, DUPLICATES = _distinct() if NAMES else ([], {})


def run_check(ref, name: str, factory=PRBNet) -> dict:
    args = argparse.Namespace(ref=str(REF), pass_path=False, verbose=False, device="cpu", tol_objcls=1e-4,
                              tol_box=1e-4, allow_key_mismatch=False)
    return ref.checker.check_one(_manifest(name), np.load(REF / "outputs" / f"{name}.npz"), factory, ref.fill, args)


def test_the_reference_set_is_complete(ref):
    assert len(NAMES) == 32 and len(DISTINCT) == 26 and len(DUPLICATES) == 6


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(
    "MSP" in n, reason="BottleneckMSPA's wiring not yet matched", strict=True)) for n in DISTINCT] or ["(none)"])
def test_matches_the_official_network(ref, name):
    result = run_check(ref, name)
    assert result["status"] == "PASS", result["reasons"]
    assert result["objcls_max_abs"] < 1e-4 and result["box_max_rel"] < 1e-4


def test_duplicate_configs_are_the_tested_architectures(ref):
    for name, representative in DUPLICATES.items():
        assert _manifest(name)["keys"].keys() == _manifest(representative)["keys"].keys(), name


@pytest.mark.parametrize("where", ["first", "middle"])
def test_a_perturbed_network_fails_the_check(ref, where):
    """One BatchNorm's eps back to PyTorch's default: the check must see it."""
    def perturbed(spec):
        net = PRBNet(spec)
        norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        norms[0 if where == "first" else len(norms) // 2].eps = 1e-5
        return net

    result = run_check(ref, "deploy__yolov7-tiny", perturbed)
    assert result["keys"]["missing"] == result["keys"]["unexpected"] == 0
    assert result["status"] == "FAIL"
    assert result["objcls_max_abs"] >= 1e-4 or result["box_max_rel"] >= 1e-4


@pytest.mark.parametrize("variant", sorted(OFFICIAL_CONFIGS))
def test_named_variants_are_official_architectures(ref, variant):
    official = yaml.safe_load((REF / "cfg" / OFFICIAL_CONFIGS[variant]).read_text())
    assert architecture(variant_spec(variant)) == architecture(official)
