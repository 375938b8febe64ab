"""The compat vision_msgs 3D messages have the real package's type hashes (RIHS01).

The real vision_msgs source is in ../shared/ros2-tools/sources.tar.gz; its .msg files are
hashed with rosbags (whose hashes equal rosidl's: test_bags_roundtrip) and compared with the
hashes rosidl wrote for the compat package built here.
"""
from __future__ import annotations

import json
import tarfile

import pytest

from smiletrack_ros.bags.typestore import find_msg_dir

MESSAGES = ("BoundingBox3D", "Detection3D", "Detection3DArray", "Detection2D", "Detection2DArray", "BoundingBox2D",
            "ObjectHypothesisWithPose", "ObjectHypothesis", "Pose2D", "Point2D")
_SOURCE = "src/vision_msgs/vision_msgs/msg/"


def _real_definitions(shared) -> dict[str, str]:
    archive = shared / "ros2-tools" / "sources.tar.gz"
    if not archive.is_file():
        pytest.skip(f"real vision_msgs source not found ({archive})")
    with tarfile.open(archive) as tar:
        return {m.name[len(_SOURCE):-4]: tar.extractfile(m).read().decode()
                for m in tar.getmembers() if m.isfile() and m.name.startswith(_SOURCE) and m.name.endswith(".msg")}


def test_compat_3d_messages_hash_like_the_real_vision_msgs(shared_dir):
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    real = _real_definitions(shared_dir)
    store = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for name, text in real.items():
        types.update(get_types_from_msg(text, f"vision_msgs/msg/{name}"))
    store.register(types)
    installed = find_msg_dir("vision_msgs")
    checked = 0
    for name in MESSAGES:
        description = installed / f"{name}.json"
        if not description.is_file():
            pytest.skip("the vision_msgs in use is not a rosidl build of the compat package (no .json)")
        hashes = json.loads(description.read_text())["type_hashes"]
        built = next(h["hash_string"] for h in hashes if h["type_name"] == f"vision_msgs/msg/{name}")
        assert built == store.hash_rihs01(f"vision_msgs/msg/{name}"), name
        checked += 1
    assert checked == len(MESSAGES)


def test_3d_messages_import_and_carry_the_real_fields():
    from vision_msgs.msg import BoundingBox3D, Detection3D, Detection3DArray

    assert list(Detection3D.get_fields_and_field_types()) == ["header", "results", "bbox", "id"]
    assert list(BoundingBox3D.get_fields_and_field_types()) == ["center", "size"]
    assert Detection3DArray.get_fields_and_field_types()["detections"] == "sequence<vision_msgs/Detection3D>"
