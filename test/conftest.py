"""Shared test set-up: DDS isolation, the optional ../shared data, the checkout's bench/."""
import importlib.util
import os
import sys
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
