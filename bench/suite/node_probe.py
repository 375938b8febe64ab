"""The node's end-to-end latency and sustainable input rate (speed suite) and its
soak (bench/soak.py), measured by ``node_driver`` in a separate process that
uses the installed package (the node needs its generated messages)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.suite.longrun import LongRun
from bench.suite.report import Report, new_figure
from bench.suite.settings import SuiteSettings

REPO = Path(__file__).resolve().parents[2]
RATES = (15, 30, 60, 120, 240, 480)
QUICK_RATES = (15, 60)


def _child_env() -> dict[str, str]:
    """Our interpreter (the project venv: rclpy) without the caller's PYTHONPATH: the driver runs
    from the repository root, importing this checkout (its generated messages from the installed copy)."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


def _drive(args: list[str], timeout_s: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="smiletrack_node_probe_") as tmp:
        result = Path(tmp) / "result.json"
        done = subprocess.run([sys.executable, "-m", "bench.suite.node_driver", *args, "--result", str(result)],
                              cwd=REPO,
                              env=_child_env(),
                              capture_output=True, text=True, timeout=timeout_s)
        if done.returncode != 0 or not result.is_file():
            raise RuntimeError(f"node driver failed (exit {done.returncode}): {done.stderr.strip()[-1500:]}")
        return json.loads(result.read_text())


def installed() -> tuple[bool, str]:
    probe = subprocess.run([sys.executable, "-c", "import rclpy, smiletrack_ros.msg, vision_msgs.msg"],
                           env=_child_env(),
                           cwd=tempfile.gettempdir(), capture_output=True, text=True)
    if probe.returncode != 0:
        last = probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else "import failed"
        return False, f"the node needs rclpy and the installed package with its messages (tools/setup_env.sh): {last}"
    return True, ""


def run(settings: SuiteSettings, report: Report) -> None:
    """Rate sweep: the section's text, table and plot go into ``report``."""
    report.text("## Node end-to-end latency over DDS")
    ok, why = installed()
    if not ok:
        report.text(f"Not measured: {why}.")
        return
    rates = QUICK_RATES if settings.quick else RATES
    seconds = 2.0 if settings.quick else 4.0
    result = _drive(["rates", "--rates", ",".join(map(str, rates)), "--seconds", str(seconds),
                     "--seed", str(settings.seed)], timeout_s=120 + len(rates) * (seconds + 5) * 2)
    report.text(f"The tracker node as its own process, fed {result['image']} raw images + external "
                f"Detection2DArray ({result['objects']} objects) over DDS on this machine (FastDDS, localhost); "
                f"embedder off, preset `{result['preset']}`, reliable inputs (history 10) so that frames the node "
                f"cannot keep up with are dropped by its latest-frame worker; a lock-step warm-up first. Latency: "
                f"publish to receipt of the frame's tracks. **Sustainable input rate** (>= 95% of frames "
                f"answered): **" + (f"{result['sustainable_rate']:.0f} fps" if result["sustainable_rate"] > 0 else
                                    "none of the rates tried") + "**.")
    rows = [[r["rate"], r["achieved_input_rate"], r["sent"], r["answered"], 100.0 * r["answered"] / r["sent"],
             r["p50"], r["p99"]] for r in result["rates"]]
    report.table("node latency vs input rate", ["input fps", "achieved fps", "frames", "answered",
                                                 "answered %", "p50 ms", "p99 ms"], rows, digits=1)
    report.data["node"] = result
    fig, ax = new_figure()
    ax.plot([r[0] for r in rows], [r[5] for r in rows], marker="o", label="p50")
    ax.plot([r[0] for r in rows], [r[6] for r in rows], marker="s", label="p99")
    ax.set_xscale("log"), ax.set_yscale("log"), ax.set_xlabel("input frames per second"), ax.set_ylabel("ms")
    ax.legend()
    report.figure(fig, "node_latency_vs_rate", "Node end-to-end latency (publish -> tracks received) vs input rate")


def soak(frames: int, objects: int, rate: float, seed: int, show_progress: bool, report: Report) -> LongRun | None:
    ok, why = installed()
    if not ok:
        report.text(f"Node soak not run: {why}.")
        return None
    if show_progress:
        print(f"node soak: {frames} frames at {rate:.0f} fps (~{frames / rate:.0f} s)...", file=sys.stderr, flush=True)
    result = _drive(["soak", "--frames", str(frames), "--rate", str(rate), "--objects", str(objects),
                     "--seed", str(seed)], timeout_s=120 + 3 * frames / rate)
    run = LongRun(frames=result["frames"], rss_kb=result["rss_kb"], ms_mean=result["ms_mean"],
                  ms_p50=result["ms_p50"], ms_p99=result["ms_p99"], live=result["live"])
    answered = result["answered_total"]
    report.text(f"Node soak: {frames} frames published at {result['achieved_input_rate']:.0f} fps "
                f"({result['image']} images + detections over DDS), {answered} answered "
                f"({100.0 * answered / frames:.1f}%; the rest dropped by the node's latest-frame worker while busy). "
                f"Node RSS from /proc; latency per window of answered frames.")
    report.data["node_soak_answered"] = answered
    if not np.isfinite(run.ms_p50).all():
        report.text("Some windows had no answered frame (latency nan there).")
    return run
