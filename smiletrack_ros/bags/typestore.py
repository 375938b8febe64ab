"""A rosbags typestore that knows vision_msgs and smiletrack_ros messages, read from their .msg files.

rosbags ships the core ROS 2 types (std_msgs, sensor_msgs, geometry_msgs) but
not vision_msgs. The definitions come from, in this order: paths the caller
passes, the ament index (an installed package's ``share/<pkg>/msg``), the
running Python's prefix (``sys.prefix/share/<pkg>/msg``, where this project's
venv build installs them, found even without AMENT_PREFIX_PATH), and this
source tree (``compat/vision_msgs/msg`` and ``msg/``).
"""
from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

EXTRA_PACKAGES = ("vision_msgs", "smiletrack_ros")
_REPO = Path(__file__).resolve().parents[2]
_SOURCE_MSG_DIRS = {"vision_msgs": _REPO / "compat" / "vision_msgs" / "msg", "smiletrack_ros": _REPO / "msg"}


class MessageDefinitionsError(LookupError):
    """The .msg files of a needed package were not found."""


def _ament_msg_dir(package: str) -> Path | None:
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:
        return None
    try:
        folder = Path(get_package_share_directory(package)) / "msg"
    except (PackageNotFoundError, LookupError, ValueError, OSError):  # OSError: AMENT_PREFIX_PATH unset
        return None
    return folder if any(folder.glob("*.msg")) else None


def find_msg_dir(package: str, msg_dirs: Mapping[str, str | Path] | None = None) -> Path:
    """The folder holding ``package``'s .msg files (see the module docstring for the search order)."""
    if msg_dirs and package in msg_dirs:
        folder = Path(msg_dirs[package])
        if not any(folder.glob("*.msg")):
            raise MessageDefinitionsError(f"no .msg files for {package} in {folder}")
        return folder
    folder = _ament_msg_dir(package)
    if folder is not None:
        return folder
    for folder in (Path(sys.prefix) / "share" / package / "msg", _SOURCE_MSG_DIRS.get(package)):
        if folder is not None and any(folder.glob("*.msg")):
            return folder
    raise MessageDefinitionsError(
        f"cannot find the .msg files of {package}: not in the ament index (AMENT_PREFIX_PATH), "
        f"{sys.prefix}/share nor the source tree; pass msg_dirs={{'{package}': PATH}}")


def build_typestore(msg_dirs: Mapping[str, str | Path] | None = None) -> Typestore:
    """ROS 2 Kilted core types plus every .msg of vision_msgs and smiletrack_ros."""
    store = get_typestore(Stores.ROS2_KILTED)
    for package in EXTRA_PACKAGES:
        types = {}
        for path in sorted(find_msg_dir(package, msg_dirs).glob("*.msg")):
            types.update(get_types_from_msg(path.read_text(), f"{package}/msg/{path.stem}"))
        store.register(types)
    return store
