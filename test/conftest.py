"""Shared test set-up: DDS isolation and the optional ../shared data."""
import os
from pathlib import Path

import pytest

# Keep DDS traffic on this machine and away from other test processes: a domain
# id per pytest process, chosen before any test imports rclpy.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SMILETRACK_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared (docs, data, models); tests needing it skip cleanly without it."""
    if not (SHARED / "data").is_dir():
        pytest.skip(f"shared data not found at {SHARED} (set SMILETRACK_SHARED)")
    return SHARED


@pytest.fixture(scope="session")
def repo_dir() -> Path:
    return REPO
