"""The compat vision_msgs (built here when no ROS 2 install provides vision_msgs) is wire-compatible
with the real ros-perception/vision_msgs: every message we ship, and our TrackArray built on it,
has the same RIHS01 type hash as the real package's (its source is in ../shared/ros2-tools)."""
import json
import tarfile

import pytest

pytest.importorskip("rosbags")
from smiletrack_ros.bags.typestore import build_typestore, find_msg_dir  # noqa: E402

REAL_MSGS = "src/vision_msgs/vision_msgs/msg/"


@pytest.fixture(scope="module")
def real_vision_msgs(shared_dir, tmp_path_factory):
    archive = shared_dir / "ros2-tools" / "sources.tar.gz"
    if not archive.is_file():
        pytest.skip(f"{archive} not found")
    out = tmp_path_factory.mktemp("real_vision_msgs")
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(REAL_MSGS) and m.name.endswith(".msg")]
        for member in members:
            member.name = member.name[len(REAL_MSGS):]
        tar.extractall(out, members=members, filter="data")
    return out


def test_compat_vision_msgs_hashes_equal_the_real_package(real_vision_msgs, repo_dir):
    compat = repo_dir / "compat" / "vision_msgs" / "msg"
    real = build_typestore({"vision_msgs": real_vision_msgs, "smiletrack_ros": repo_dir / "msg"})
    ours = build_typestore({"vision_msgs": compat, "smiletrack_ros": repo_dir / "msg"})
    names = [f"vision_msgs/msg/{p.stem}" for p in sorted(compat.glob("*.msg"))]
    names += [f"smiletrack_ros/msg/{p.stem}" for p in sorted((repo_dir / "msg").glob("*.msg"))]
    assert len(names) >= 10
    differ = {n: (ours.hash_rihs01(n), real.hash_rihs01(n)) for n in names
              if ours.hash_rihs01(n) != real.hash_rihs01(n)}
    assert not differ, differ


def test_installed_interfaces_carry_the_real_hashes(real_vision_msgs):
    """Where rosidl built vision_msgs (a .json type description beside each .msg), its hashes
    are the real package's too: what DDS peers compare."""
    real = build_typestore({"vision_msgs": real_vision_msgs})
    descriptions = list(find_msg_dir("vision_msgs").glob("*.json"))
    if not descriptions:
        pytest.skip("the installed vision_msgs has no rosidl type descriptions")
    for description in descriptions:
        name = f"vision_msgs/msg/{description.stem}"
        hashes = json.loads(description.read_text())["type_hashes"]
        assert next(h["hash_string"] for h in hashes if h["type_name"] == name) == real.hash_rihs01(name), name
