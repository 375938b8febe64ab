"""Hostile checkpoints and weight files: bounded time and memory, clear errors (issue 16 items 6, 7).

Every hostile file is made here and is tiny on disk. The cases that would hang or
allocate gigabytes without the limits run in a subprocess with a timeout and an address
space budget (RLIMIT_AS), so a regression fails the test instead of the machine.
"""
import json
import pickle
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from smiletrack_ros.cli import convert_prb
from smiletrack_ros.detection import PrbConfig, build_detector
from smiletrack_ros.detection.prb.checkpoint import (
    CheckpointLimitError,
    ReadLimits,
    UnsafeCheckpointError,
    extract_model,
    read_checkpoint,
)
from smiletrack_ros.detection.prb.network import SpecError
from smiletrack_ros.detection.prb.variants import variant_spec
from smiletrack_ros.detection.prb.weights import SPEC_METADATA_KEY, WeightsFileError

REPO = Path(__file__).resolve().parents[1]


def run_limited(code: str, timeout: float = 60, budget_gb: float = 1.0) -> str:
    """Run ``code`` in a fresh interpreter whose address space may grow by ``budget_gb`` after
    the imports; returns its stdout (the code prints the outcome)."""
    script = "\n".join([
        "import resource",
        "from smiletrack_ros.detection.prb.checkpoint import read_checkpoint, extract_model",
        "with open('/proc/self/statm') as f:",
        "    vm = int(f.read().split()[0]) * resource.getpagesize()",
        f"budget = vm + int({budget_gb} * (1 << 30))",
        "resource.setrlimit(resource.RLIMIT_AS, (budget, budget))",
        "try:",
        textwrap.indent(textwrap.dedent(code).strip(), "    "),
        "    print('no error')",
        "except BaseException as err:",
        "    print('ERROR', type(err).__name__, err)"])
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)
    return done.stdout + done.stderr


def _model(yaml_spec=None) -> nn.Module:
    net = nn.Sequential(nn.Conv2d(3, 4, 1))
    net.yaml = yaml_spec if yaml_spec is not None else {"nc": 1}
    return net


def test_a_shared_module_graph_is_refused_quickly(tmp_path):
    """30 levels, each holding the level below twice: 2**30 paths through a 2 KB pickle."""
    level = nn.Sequential(nn.Conv2d(1, 1, 1))
    for _ in range(30):
        level = nn.Sequential(level, level)
    level.yaml = {"nc": 1}
    path = tmp_path / "dag.pt"
    torch.save({"model": level}, path)
    assert path.stat().st_size < 20_000
    out = run_limited(f"extract_model(read_checkpoint({str(path)!r}))", timeout=30)
    assert "CheckpointLimitError" in out and "reachable twice" in out, out


def test_a_self_referencing_module_is_a_clear_error(tmp_path):
    net = _model()
    net.add_module("again", net)
    path = tmp_path / "cycle.pt"
    torch.save({"model": net}, path)
    with pytest.raises(CheckpointLimitError, match="reachable twice"):
        extract_model(read_checkpoint(path))
    assert convert_prb.main([str(path), str(tmp_path / "out.safetensors")]) == 1


def test_nesting_deeper_than_the_limit_is_refused(tmp_path):
    net = nn.Conv2d(1, 1, 1)
    for _ in range(40):
        net = nn.Sequential(net)
    net.yaml = {"nc": 1}
    path = tmp_path / "deep.pt"
    torch.save({"model": net}, path)
    with pytest.raises(CheckpointLimitError, match="nest deeper than 32"):
        extract_model(read_checkpoint(path))
    tensors, _ = extract_model(read_checkpoint(path), ReadLimits(max_depth=64))
    assert len(tensors) == 2


def test_a_zero_stride_view_is_refused_without_allocating(tmp_path):
    """One stored float, viewed as 10**9 of them: 4 GB if materialised."""
    path = tmp_path / "stride0.pt"
    torch.save({"model": None, "t": torch.zeros(1).expand(10 ** 9)}, path)
    assert path.stat().st_size < 2_000
    out = run_limited(f"read_checkpoint({str(path)!r})")
    assert "CheckpointLimitError" in out and "zero-stride" in out, out


def test_overlapping_and_out_of_bounds_views_are_refused(tmp_path):
    base = torch.zeros(200)
    path = tmp_path / "overlap.pt"
    torch.save({"t": torch.as_strided(base, (100, 100), (1, 1))}, path)
    with pytest.raises(CheckpointLimitError, match="exceeds its storage|overlapping"):
        read_checkpoint(path)
    torch.save({"t": torch.as_strided(base, (10, 10), (1, 2))}, path)
    with pytest.raises(CheckpointLimitError, match="overlapping"):
        read_checkpoint(path)
    torch.save({"t": torch.as_strided(base, (10, 10), (20, 2)), "ok": base[::2]}, path)
    out = read_checkpoint(path)  # strided but disjoint views are fine
    assert out["t"].shape == (10, 10) and out["ok"].shape == (100,)


def _torch_zip(path: Path, pickled: bytes, storages: dict[str, tuple[int, int]]) -> None:
    """A torch-format archive: data.pkl as given, each storage ``name: (bytes, zip method)``
    of zeros written in chunks (a deflated entry of zeros is tiny on disk)."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickled)
        archive.writestr("archive/byteorder", "little")
        for name, (size, method) in storages.items():
            info = zipfile.ZipInfo(f"archive/data/{name}")
            info.compress_type = method
            with archive.open(info, "w", force_zip64=True) as f:
                chunk = bytes(1 << 20)
                for _ in range(size >> 20):
                    f.write(chunk)


def _storage_pickle(numel: int) -> bytes:
    """A pickle of one float tensor on storage '0' (what torch.save writes for it)."""
    class Storage:
        def __reduce__(self):
            return torch.FloatStorage, ()

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", torch.FloatStorage, "0", "cpu", numel) if isinstance(obj, Storage) else None

    class Tensor:
        def __reduce__(self):
            return torch._utils._rebuild_tensor_v2, (Storage(), 0, (numel,), (1,), False, None)

    import io

    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump({"t": Tensor()})
    return buffer.getvalue()


def test_a_compressed_storage_bomb_is_refused_before_reading(tmp_path):
    path = tmp_path / "bomb.pt"
    _torch_zip(path, _storage_pickle(64 << 20), {"0": (256 << 20, zipfile.ZIP_DEFLATED)})
    assert path.stat().st_size < 2 << 20
    out = run_limited(f"read_checkpoint({str(path)!r})", budget_gb=0.2)
    assert "CheckpointLimitError" in out and "compressed storages are refused" in out, out


def test_a_storage_smaller_than_declared_is_refused(tmp_path):
    path = tmp_path / "short.pt"
    _torch_zip(path, _storage_pickle(1 << 20), {"0": (1 << 20, zipfile.ZIP_STORED)})  # 1 MB for 4 MB declared
    with pytest.raises(CheckpointLimitError, match=r"declares 1048576 x 4 bytes, the archive holds 1048576"):
        read_checkpoint(path)


def test_pickle_size_and_tensor_count_are_bounded(tmp_path):
    path = tmp_path / "many.pt"
    torch.save({"model": None, "t": [torch.zeros(2) for _ in range(10)]}, path)
    assert len(read_checkpoint(path)["t"]) == 10
    with pytest.raises(CheckpointLimitError, match="more than 5 tensors"):
        read_checkpoint(path, ReadLimits(max_tensors=5))
    with pytest.raises(CheckpointLimitError, match="data.pkl of .* exceeds ReadLimits.max_pickle_bytes"):
        read_checkpoint(path, ReadLimits(max_pickle_bytes=100))
    bare = tmp_path / "bare.pkl"
    bare.write_bytes(pickle.dumps({"x": list(range(1000))}, protocol=2))
    with pytest.raises(CheckpointLimitError, match="bare pickle of .* exceeds"):
        read_checkpoint(bare, ReadLimits(max_pickle_bytes=100))
    deflated = tmp_path / "pkl_bomb.pt"
    with zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", bytes(128 << 20))
    assert deflated.stat().st_size < 1 << 20
    with pytest.raises(CheckpointLimitError, match="exceeds ReadLimits.max_pickle_bytes"):
        read_checkpoint(deflated)


def test_only_regular_files_are_read(tmp_path):
    zero = tmp_path / "zero.pt"
    zero.symlink_to("/dev/zero")
    out = run_limited(f"read_checkpoint({str(zero)!r})", timeout=30)
    assert "CheckpointLimitError" in out and "not a regular file" in out, out
    with pytest.raises(CheckpointLimitError, match="not a regular file"):
        read_checkpoint(tmp_path)
    good = tmp_path / "good.pt"
    torch.save({"model": _model()}, good)
    link = tmp_path / "link.pt"
    link.symlink_to(good)
    assert "model" in read_checkpoint(link)  # a symlink to a regular file is fine


def test_a_deeply_nested_yaml_is_a_clear_error(tmp_path):
    nested: list = []
    for _ in range(300):
        nested = [nested]
    path = tmp_path / "nested_yaml.pt"
    torch.save({"model": _model({"nc": 1, "backbone": nested})}, path)
    with pytest.raises((CheckpointLimitError, ValueError), match="nests deeper than 8 levels|nests too deeply"):
        extract_model(read_checkpoint(path))
    assert convert_prb.main([str(path), str(tmp_path / "out.safetensors")]) == 1


def test_unknown_classes_are_refused_naming_the_global(tmp_path):
    import collections

    path = tmp_path / "counter.pt"
    path.write_bytes(pickle.dumps({"model": collections.Counter("ab")}, protocol=2))
    with pytest.raises(UnsafeCheckpointError, match=r"collections\.Counter"):
        read_checkpoint(path)
    torch.save({"model": nn.Sequential(nn.Bilinear(1, 1, 1))}, path)  # a torch class no official model uses
    with pytest.raises(UnsafeCheckpointError, match=r"torch\.nn\.modules\.linear\.Bilinear"):
        read_checkpoint(path)


# ---- issue 16 item 7: PRB start-up failures name the file / parameter, quickly ----------

def test_a_corrupt_safetensors_file_is_a_clear_error(tmp_path):
    for name, content in (("truncated.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\""),
                          ("lfs.safetensors", b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\n"),
                          ("empty.safetensors", b"")):
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ValueError, match=f"{name}: not a readable safetensors file"):
            build_detector(PrbConfig(weights=str(path), device="cpu"))


def test_a_stored_spec_that_is_not_an_architecture_is_a_clear_error(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    nested: list = []
    for _ in range(100):
        nested = [nested]
    save_file({"x": torch.zeros(1)}, str(path), metadata={SPEC_METADATA_KEY: json.dumps({"nc": 1, "head": nested})})
    with pytest.raises(WeightsFileError, match="w.safetensors: the stored spec is not a valid architecture"):
        build_detector(PrbConfig(weights=str(path), device="cpu"))


@pytest.mark.parametrize("change, message", [
    ({"depth_multiple": 1e7}, r"depth_multiple must lie in \(0, 4\], got 10000000.0"),
    ({"width_multiple": 1e7}, r"width_multiple must lie in \(0, 4\]"),
    ({"row": [-1, 10 ** 7, "Conv", [64]]}, r"layer 3 \(Conv\): number 10000000 exceeds the limit of 64"),
    ({"row": [-1, 1, "Conv", [64, 10 ** 5, 1]]}, r"layer 3: the network exceeds 2,000,000,000 parameters"),
    ({"row": [-1, 1, "Conv", [10 ** 9]]}, r"layer 3: \d+ channels exceeds the limit of 16384"),
])
def test_a_spec_that_would_allocate_without_bound_is_refused_quickly(tmp_path, change, message):
    import time

    import yaml

    spec = variant_spec("prb-fpn-csp-640", nc=1, width_multiple=0.125)
    if "row" in change:
        spec["backbone"][3] = change["row"]
    else:
        spec.update(change)
    path = tmp_path / "huge.yaml"
    path.write_text(yaml.safe_dump(spec))
    start = time.perf_counter()
    with pytest.raises(SpecError, match=f"huge.yaml: .*{message}"):
        build_detector(PrbConfig(architecture=str(path), device="cpu"))
    assert time.perf_counter() - start < 5.0


def test_a_plain_checkpoint_loads_through_every_limit(tmp_path):
    """fp16 storages, numpy scalars, model and ema entries: what training writes."""
    path = tmp_path / "small.pt"
    torch.save({"model": None, "ema": nn.Sequential(nn.Conv2d(1, 2, 1)).half(), "epoch": np.int64(3),
                "best_fitness": np.float64(0.5)}, path)
    ckpt = read_checkpoint(path)
    assert ckpt["ema"]._modules["0"]._parameters["weight"].dtype == torch.float16
    assert ckpt["epoch"] == 3 and ckpt["best_fitness"] == 0.5
