"""The package builds the two ways users install it: colcon in a ROS 2 workspace, and pip."""
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

VENV = Path(sys.prefix)


def _tracked_files(repo: Path) -> list[str]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=repo, check=True,
                         capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if (repo / line).is_file()]


def _copy_source(repo: Path, dest: Path) -> None:
    for rel in _tracked_files(repo):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / rel, dest / rel)


@pytest.mark.slow
def test_colcon_build_installs_where_ros_tools_look(tmp_path, repo_dir):
    colcon = VENV / "bin" / "colcon"
    if not colcon.exists():
        pytest.skip("colcon is not installed in this environment")
    _copy_source(repo_dir, tmp_path / "src" / "smiletrack_ros")
    env = dict(os.environ, AMENT_PREFIX_PATH=str(VENV), CMAKE_PREFIX_PATH=str(VENV))
    result = subprocess.run(
        [str(colcon), "build", "--cmake-args", "-DBUILD_TESTING=OFF", f"-DPython3_EXECUTABLE={sys.executable}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    prefix = tmp_path / "install" / "smiletrack_ros"
    node = prefix / "lib" / "smiletrack_ros" / "tracker_node"
    assert node.is_file() and os.access(node, os.X_OK)
    share = prefix / "share" / "smiletrack_ros"
    assert (share / "launch" / "tracker.launch.py").is_file()
    assert (share / "config" / "tracker.yaml").is_file()
    assert (share / "package.xml").is_file()
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "smiletrack_ros").is_file()
    assert {p.name for p in (share / "msg").glob("*.msg")} >= {"Track.msg", "TrackArray.msg"}
    # The compat vision_msgs stays out of a real workspace (COLCON_IGNORE).
    assert not (tmp_path / "install" / "vision_msgs").exists()

    site = next(prefix.glob("lib/python3*/site-packages"))
    probe = ("from smiletrack_ros.msg import Track, TrackArray; import smiletrack_ros.tracking; "
             "print(smiletrack_ros.__file__)")
    run = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                         env=dict(env, PYTHONPATH=str(site)), timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().startswith(str(site))


@pytest.mark.slow
def test_pip_wheel_holds_the_library_without_ros(tmp_path, repo_dir):
    src = tmp_path / "src"
    _copy_source(repo_dir, src)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"),
         str(src)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("smiletrack_ros-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "smiletrack_ros/tracking/tracker.py" in names
    assert "smiletrack_ros/embedding/weights/slm_default.safetensors" in names
    assert not any(n.startswith("smiletrack_ros/msg/") for n in names)

    # The tracker core imports from the wheel alone, without torch or ROS on the path.
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    probe = ("import sys; import smiletrack_ros.tracking as t; "
             "assert 'torch' not in sys.modules and 'rclpy' not in sys.modules; print(t.__file__)")
    run = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(target)), timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().startswith(str(target))
