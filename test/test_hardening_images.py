"""Bounded image decoding (issue 16.1): codec by magic bytes, header dimensions before any
decoding, one pixel budget for compressed and raw images.

The bombs (conftest's ``image_bombs``) are tiny on disk: a 631-byte JPEG whose frame header
says 30000 x 30000 (2.7 GB decoded) and a 17.6 KB PNG of 12000 x 12000 (432 MB decoded). They
are decoded in a child process whose address space is capped (RLIMIT_AS) a little above
what it uses after its imports, so a decoder that allocated for them fails the test
instead of endangering the machine.
"""
import json
import subprocess
import sys
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from smiletrack_ros.image_codec import (
    DEFAULT_MAX_PIXELS,
    ImageBudget,
    ImageError,
    compressed_to_bgr,
    jpeg_dimensions,
    png_dimensions,
    raw_to_bgr_numpy,
    sniff_format,
)

RNG = np.random.default_rng(3)


def _encode(ext: str, image: np.ndarray, *params: int) -> bytes:
    ok, data = cv2.imencode(ext, image, list(params))
    assert ok
    return data.tobytes()


def _compressed(data: bytes, fmt: str = "jpeg") -> SimpleNamespace:
    return SimpleNamespace(format=fmt, data=data)


@pytest.mark.parametrize("height, width", [(1, 1), (37, 53), (480, 640), (1080, 1920)])
def test_header_readers_give_the_encoded_size(height, width):
    image = RNG.integers(0, 256, (height, width, 3), dtype=np.uint8)
    for data in (_encode(".jpg", image), _encode(".jpg", image, cv2.IMWRITE_JPEG_PROGRESSIVE, 1)):
        assert sniff_format(data) == "jpeg" and jpeg_dimensions(data) == (width, height)
    data = _encode(".png", image)
    assert sniff_format(data) == "png" and png_dimensions(data) == (width, height)
    np.testing.assert_array_equal(compressed_to_bgr(_compressed(data, "png")), image)


def test_bombs_are_tiny_and_their_headers_say_so(image_bombs):
    jpeg, png = image_bombs["jpeg"], image_bombs["png"]
    assert len(jpeg) < 1000 and len(png) < 20_000
    assert jpeg_dimensions(jpeg) == (30000, 30000) and png_dimensions(png) == (12000, 12000)


_CHILD = r"""
import json, resource, sys, time
from types import SimpleNamespace
import cv2, numpy
from smiletrack_ros.image_codec import ImageError, compressed_to_bgr

def status(key):
    line = next(l for l in open("/proc/self/status") if l.startswith(key + ":"))
    return int(line.split()[1]) * 1024

limit = status("VmSize") + (256 << 20)
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
out = {}
for path in sys.argv[1:]:
    start = time.perf_counter()
    try:
        compressed_to_bgr(SimpleNamespace(format="jpeg", data=open(path, "rb").read()))
        out[path] = "decoded"
    except ImageError as exc:
        out[path] = exc.reason
    except BaseException as exc:
        out[path] = type(exc).__name__
    out[path + ":us"] = (time.perf_counter() - start) * 1e6
out["peak_rss"] = status("VmHWM")
print(json.dumps(out))
"""


def test_bombs_are_refused_before_decoding_within_a_memory_budget(tmp_path, repo_dir, image_bombs):
    paths = [tmp_path / "bomb.jpg", tmp_path / "bomb.png"]
    paths[0].write_bytes(image_bombs["jpeg"])
    paths[1].write_bytes(image_bombs["png"])
    done = subprocess.run([sys.executable, "-c", _CHILD, *map(str, paths)], capture_output=True, text=True,
                          timeout=120, env={"PYTHONPATH": str(repo_dir), "OPENCV_LOG_LEVEL": "ERROR"})
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert [out[str(p)] for p in paths] == ["too_many_pixels", "too_many_pixels"], out
    assert out["peak_rss"] < 300 << 20
    assert max(out[f"{p}:us"] for p in paths) < 50_000        # header reads, not decodes (generous for CI)


@pytest.mark.parametrize("ext", [".bmp", ".tiff", ".webp", ".ppm", ".jp2", ".hdr", ".pfm", ".ras"])
def test_other_codecs_are_refused_whatever_the_format_field_says(ext):
    image = RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    if ext in (".hdr", ".pfm"):
        image = image.astype(np.float32) / 255
    try:
        data = _encode(ext, image)
    except cv2.error:
        pytest.skip(f"this OpenCV cannot write {ext}")
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is not None   # OpenCV would decode it
    with pytest.raises(ImageError) as info:
        compressed_to_bgr(_compressed(data, "jpeg"))
    assert info.value.reason == "format_not_allowed"
    assert sniff_format(data) != "unknown", "the refusal names the codec"


def test_allowed_formats_are_a_setting():
    image = RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    only_png = ImageBudget(formats=("png",))
    with pytest.raises(ImageError, match="is jpeg") as info:
        compressed_to_bgr(_compressed(_encode(".jpg", image)), only_png)
    assert info.value.reason == "format_not_allowed"
    assert compressed_to_bgr(_compressed(_encode(".png", image), "jpeg"), only_png).shape == (8, 8, 3)
    for bad in ((), ("bmp",), ("jpeg", "gif")):
        with pytest.raises(ValueError, match="formats"):
            ImageBudget(formats=bad)
    with pytest.raises(ValueError, match="max_pixels"):
        ImageBudget(max_pixels=0)


def test_budget_is_inclusive_and_applies_to_compressed_and_raw():
    image = RNG.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    exact, under = ImageBudget(max_pixels=120), ImageBudget(max_pixels=119)
    raw = SimpleNamespace(height=10, width=12, encoding="bgr8", is_bigendian=0, step=36, data=image.tobytes())
    np.testing.assert_array_equal(raw_to_bgr_numpy(raw, exact), image)
    assert compressed_to_bgr(_compressed(_encode(".png", image)), exact).shape == (10, 12, 3)
    for decode in (lambda: raw_to_bgr_numpy(raw, under),
                   lambda: compressed_to_bgr(_compressed(_encode(".png", image)), under),
                   lambda: compressed_to_bgr(_compressed(_encode(".jpg", image)), under)):
        with pytest.raises(ImageError) as info:
            decode()
        assert info.value.reason == "too_many_pixels"
    assert DEFAULT_MAX_PIXELS >= 3840 * 2160                  # a 4K camera fits the default


def test_a_raw_image_claiming_a_huge_size_is_refused_before_its_length_is_checked():
    raw = SimpleNamespace(height=30000, width=30000, encoding="bgr8", is_bigendian=0, step=90000, data=b"\x00" * 9)
    with pytest.raises(ImageError) as info:
        raw_to_bgr_numpy(raw)
    assert info.value.reason == "too_many_pixels"


@pytest.mark.parametrize("mutate", [
    lambda d: d[:d.index(b"\xff\xc0") + 4],                        # cut inside the frame header
    lambda d: d[:2] + b"\xff\xda" + d[2:],                          # scan before any frame header
    lambda d: d.replace(b"\xff\xc0\x00\x11\x08\x00\x08", b"\xff\xc0\x00\x11\x08\x00\x00"),   # height 0 (DNL)
    lambda d: d[:2] + b"\x00" + d[3:],                               # no marker where one must be
])
def test_malformed_jpeg_headers_are_corrupt(mutate):
    data = mutate(_encode(".jpg", np.zeros((8, 8, 3), np.uint8)))
    with pytest.raises(ImageError) as info:
        compressed_to_bgr(_compressed(data))
    assert info.value.reason == "corrupt_compressed"


def test_a_png_without_ihdr_first_is_corrupt():
    data = _encode(".png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ImageError) as info:
        compressed_to_bgr(_compressed(data[:8] + data[33:], "png"))
    assert info.value.reason == "corrupt_compressed"


@pytest.mark.parametrize("name, value", [
    ("input_limits.max_pixels", 0), ("input_limits.formats", ["gif"]), ("input_limits.formats", []),
    ("input_limits.max_detections", 0), ("input_limits.max_clock_lead", float("inf")),
    ("input_limits.max_clock_lead", -1.0), ("input_limits.max_clock_lead", float("nan")),
])
def test_input_limits_name_their_parameter(name, value):
    from smiletrack_ros.ros.input_limits import InputLimits
    from smiletrack_ros.ros.settings import ParameterError, all_param_specs

    values = {s.name: s.default for s in all_param_specs()}
    limits = InputLimits.from_values(values)
    assert limits.image.max_pixels == DEFAULT_MAX_PIXELS and limits.image.formats == ("jpeg", "png")
    with pytest.raises(ParameterError) as info:
        InputLimits.from_values(values | {name: value})
    assert info.value.name == name
