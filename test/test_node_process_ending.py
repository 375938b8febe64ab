"""The node process's teardown is bounded by the kernel (``process.end_within``): once spinning
has stopped, SIGINT is ignored, SIGTERM ends the process at once and an alarm ends a teardown
that got stuck, whatever the interpreter is doing. Each case runs in its own child process."""
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from smiletrack_ros.ros.process import same_package_env


def _child(seconds: int, then: str = "time.sleep(30)  # a teardown that never returns") -> subprocess.Popen:
    """A child that begins its ending (``end_within(seconds)``), says so, then runs ``then``."""
    code = textwrap.dedent(f"""
        import sys, time
        from smiletrack_ros.ros.process import end_within, teardown_done
        end_within({seconds})
        print("ending", flush=True)
    """) + textwrap.dedent(then)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env=same_package_env({"PATH": "/usr/bin:/bin"}))
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ending", "child did not start"
    return proc


def _ended(proc: subprocess.Popen, timeout: float) -> tuple[int, float]:
    start = time.monotonic()
    code = proc.wait(timeout=timeout)
    return code, time.monotonic() - start


def test_a_stuck_teardown_is_ended_by_the_alarm():
    proc = _child(1)
    code, seconds = _ended(proc, 10)
    assert code == -signal.SIGALRM and seconds < 3


def test_sigterm_ends_the_teardown_at_once_and_sigint_does_not():
    proc = _child(30)
    proc.send_signal(signal.SIGINT)    # the second Ctrl-C that launch forwards
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(timeout=0.5)
    proc.send_signal(signal.SIGTERM)
    code, seconds = _ended(proc, 5)
    assert code == -signal.SIGTERM and seconds < 1


def test_a_finished_teardown_disarms_the_alarm():
    proc = _child(1, """
        teardown_done()
        time.sleep(1.5)
        sys.exit(0)
    """)
    assert _ended(proc, 10)[0] == 0
