"""How the node executable starts and ends as a process: quietly and quickly on SIGINT/SIGTERM.

Loading rclpy, torch or onnxruntime takes seconds; a signal in that window ends the
process at once (no KeyboardInterrupt traceback from deep inside an import). Once
the node exists, rclpy's handlers take over so that spinning stops cleanly. At the
end the process leaves with ``os._exit``: the interpreter's own teardown of loaded
model runtimes can take over a second, and there is nothing left to clean by then.
Only the executable's entry point (``run_node``) calls these; importing the package changes nothing.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def run_node() -> None:
    """The executable's whole body: quiet signals first, then the slow imports and the node."""
    exit_quietly_on_signals()
    from smiletrack_ros.ros.node import main  # rclpy, numpy, maybe torch: seconds to load

    exit_now(main())


def exit_quietly_on_signals() -> None:
    for sig in _SIGNALS:
        signal.signal(sig, lambda signum, _frame: os._exit(128 + signum))


# A node's teardown (workers, DDS entities) takes ~0.05 s; one still running after this long is
# stuck in native code, and launch would escalate to SIGTERM at 5 s.
ENDING_SECONDS = 4


def end_within(seconds: int = ENDING_SECONDS) -> None:
    """Once spinning has stopped, the teardown is bounded by the kernel, not by Python: a terminal's
    Ctrl-C reaches the node twice under ``ros2 launch`` (from the terminal and forwarded by launch),
    so SIGINT is ignored; SIGTERM and an alarm after ``seconds`` take their default action, which
    ends the process even while its main thread is stuck inside a C call holding the interpreter
    (CI saw one teardown in ~230 outlive both SIGINT and SIGTERM, 10 s). ``teardown_done`` disarms."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.alarm(seconds)


def teardown_done() -> None:
    signal.alarm(0)


def restore_default_signals() -> None:
    """Python's own handlers again, for rclpy to install its handlers over."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def exit_now(code: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def node_command(*ros_args: str) -> list[str]:
    """The node as a child process of this interpreter: ``node_command("--params-file", path)``."""
    return [sys.executable, "-m", "smiletrack_ros.ros", "--ros-args", *ros_args]


def same_package_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` with PYTHONPATH leading to the copy of smiletrack_ros that this process imported,
    so that a child node runs the same code (a checkout's or the installed copy), never the other."""
    root = str(Path(__file__).resolve().parents[2])
    rest = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != root]
    return dict(env, PYTHONPATH=os.pathsep.join([root, *rest]))


def stop_node_process(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    """Stop a node started in its own session (``start_new_session=True``), as a launcher
    would: SIGINT to its process group, SIGKILL if it outlives ``timeout`` seconds. Pipes
    the caller opened are drained meanwhile (a full one would block the node's exit)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
