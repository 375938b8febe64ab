"""Shared test set-up: DDS isolation, the optional ../shared data, the checkout's bench/."""
import importlib.util
import os
import struct
import sys
import zlib
from pathlib import Path

import pytest

# Keep DDS traffic on this machine and away from other test processes: a domain
# id per pytest process, chosen before any test imports rclpy.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SMILETRACK_SHARED", REPO.parent / "shared"))


def _import_bench() -> None:
    """Make the checkout's bench/ (not installed) importable as ``bench``, by its path.

    A sys.path entry for the checkout would do it too, but would also put the
    checkout's smiletrack_ros ahead of the installed copy that tools/test.sh tests.
    """
    if importlib.util.find_spec("bench") is not None:  # python -m pytest from the root: found already
        return
    spec = importlib.util.spec_from_file_location("bench", REPO / "bench" / "__init__.py",
                                                  submodule_search_locations=[str(REPO / "bench")])
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench"] = module
    spec.loader.exec_module(module)


_import_bench()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared (docs, data, models); tests needing it skip cleanly without it."""
    if not (SHARED / "data").is_dir():
        pytest.skip(f"shared data not found at {SHARED} (set SMILETRACK_SHARED)")
    return SHARED


@pytest.fixture(scope="session")
def repo_dir() -> Path:
    return REPO


@pytest.fixture(scope="session")
def image_bombs() -> dict[str, bytes]:
    """Decompression bombs, tiny on disk (issue 16.1): ``jpeg``, 631 bytes: a real 8x8 JPEG whose
    frame header is rewritten to 30000x30000 (2.7 GB decoded); ``png``, 17.6 KB: a valid 1-bit
    grey PNG of 12000x12000 zeros (432 MB decoded as BGR)."""
    import cv2
    import numpy as np

    ok, enc = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 50])
    jpeg = bytearray(enc.tobytes())
    struct.pack_into(">HH", jpeg, jpeg.index(b"\xff\xc0") + 5, 30000, 30000)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    side = 12000
    row = b"\x00" * (1 + (side + 7) // 8)
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
           + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return {"jpeg": bytes(jpeg), "png": png}
