"""Tests run from a fresh clone's root against its own source, and tools/test.sh keeps the installed copy.

A clone of this repository (committed files only) gets a probe test and a source
edit; ``python -m pytest`` from its root must import the clone's ``smiletrack_ros``
(edit included, no reinstall) together with the generated ``smiletrack_ros.msg``
from the installed copy, and pass ``test/test_tracking_lifecycle.py``. The venv's
``pytest`` script (what tools/test.sh runs) must import the installed copy instead.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = '''
import smiletrack_ros


def test_probe():
    print("IMPORTED", smiletrack_ros.__file__)
    from smiletrack_ros.tracking import probe_edit

    print("MARK", probe_edit.MARK)
'''


def _installed_copy() -> Path | None:
    """The installed smiletrack_ros (with its generated msg/), seen from outside any checkout."""
    done = subprocess.run([sys.executable, "-P", "-c", "import smiletrack_ros, os; print(os.path.dirname("
                           "smiletrack_ros.__file__))"], capture_output=True, text=True, cwd="/", timeout=60)
    path = Path(done.stdout.strip()) if done.returncode == 0 else None
    return path if path is not None and (path / "msg" / "__init__.py").is_file() else None


@pytest.fixture(scope="module")
def clone(tmp_path_factory, repo_dir):
    if shutil.which("git") is None or not (repo_dir / ".git").exists():
        pytest.skip("needs git and a git checkout")
    if _installed_copy() is None:
        pytest.skip("the package is not installed in this environment (tools/setup_env.sh installs it)")
    target = tmp_path_factory.mktemp("clone") / "smiletrack_ros"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(repo_dir), str(target)], check=True, timeout=120)
    (target / "smiletrack_ros" / "tracking" / "probe_edit.py").write_text("MARK = 'edited after cloning'\n")
    (target / "test" / "test_probe_source.py").write_text(PROBE)
    return target


def _pytest(clone, *command):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([*command, "-q", "-s", "-p", "no:randomly", "test/test_probe_source.py",
                           "test/test_tracking_lifecycle.py"], cwd=clone, env=env, capture_output=True, text=True,
                          timeout=300)


def test_python_m_pytest_from_a_clone_tests_the_clone_without_reinstalling(clone):
    done = _pytest(clone, sys.executable, "-m", "pytest")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert f"IMPORTED {clone / 'smiletrack_ros' / '__init__.py'}" in done.stdout
    assert "MARK edited after cloning" in done.stdout
    import_msg = subprocess.run([sys.executable, "-c", "import smiletrack_ros.msg as m; print(m.TrackArray)"],
                                cwd=clone, capture_output=True, text=True, timeout=120)
    assert import_msg.returncode == 0, import_msg.stderr[-2000:]


def test_the_venv_pytest_script_tests_the_installed_copy(clone):
    script = Path(sys.executable).with_name("pytest")
    if not script.is_file():
        pytest.skip(f"no pytest script beside {sys.executable}")
    done = _pytest(clone, str(script))
    assert f"IMPORTED {_installed_copy() / '__init__.py'}" in done.stdout, done.stdout[-3000:]
    # the installed copy has no probe_edit module: the probe fails to import it, which is the point
    assert done.returncode == 1 and "MARK" not in done.stdout
