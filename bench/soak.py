"""Soak test: >= 10,000 frames of synthetic input through the tracker (and, with
``--node``, through the real tracker node over DDS at a high input rate); prints
resident memory and latency over time and their fitted slopes.

    .venv/bin/python -m bench.soak [--frames 10000] [--node] [--rate 200] [--max-rss-slope 64]

Exit status 1 when memory grows faster than ``--max-rss-slope`` KB per 1000
frames after the warm-up tenth (a leak), or when the fitted median latency
changes by more than ``--max-latency-drift`` of itself over the run. For the
tracker, memory means RSS after ``malloc_trim(0)`` (raw RSS swings with heap
fragmentation, see bench/suite/longrun.py) and, from a second tracemalloc pass
over the same frames, the Python heap; both must stay flat. The node's RSS (a
separate process) is judged raw. ``--inject-leak-kb`` keeps that many KB per 1000
frames alive on purpose: the soak must then fail (its self-check).
"""
from __future__ import annotations

import argparse
import os
import sys
from functools import partial
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from bench.suite.longrun import LongRun, long_tracker_run
from bench.suite.measure import machine_line
from bench.suite.report import Report, new_figure

REPO = Path(__file__).resolve().parents[1]


def timeline(run: LongRun, label: str, report: Report, rows_shown: int = 10) -> None:
    step = max(1, len(run.frames) // rows_shown)
    trimmed = bool(run.rss_trimmed_kb)
    rows = [[run.frames[i], run.rss_kb[i] / 1024, *([run.rss_trimmed_kb[i] / 1024] if trimmed else []),
             run.ms_mean[i], run.ms_p50[i], run.ms_p99[i], run.live[i]]
            for i in range(0, len(run.frames), step)]
    report.table(f"{label}: over time (latency over the window ending at that frame)",
                 ["frame", "RSS MB", *(["RSS after malloc_trim MB"] if trimmed else []), "latency mean ms",
                  "p50 ms", "p99 ms", "tracks"],
                 rows, digits=2)


def verdict(run: LongRun, label: str, args: argparse.Namespace, report: Report) -> bool:
    rss_slope, leak_slope, heap_slope = (run.rss_slope_kb_per_1000(), run.leak_slope_kb_per_1000(),
                                         run.heap_slope_kb_per_1000())
    ms_slope, drift = run.ms_slope_per_1000(), run.latency_drift()
    drift_of = "CPU" if run.judged_latency() is run.cpu_ms_p50 else "wall"
    memory_ok = leak_slope <= args.max_rss_slope and not heap_slope > args.max_rss_slope  # nan: not traced
    ok = memory_ok and abs(drift) <= args.max_latency_drift
    report.table(f"{label}: slopes (after the first 10%)",
                 ["frames", "RSS slope KB/1000 frames", "judged RSS slope KB/1000 frames",
                  "Python heap slope KB/1000 frames", "latency slope ms/1000 frames",
                  "latency drift over run (judged: p50 of update() time)", "verdict"],
                 [[run.frames[-1], rss_slope, leak_slope, heap_slope, ms_slope, f"{100 * drift:+.1f}% ({drift_of})",
                   "flat" if ok else "GROWING"]], digits=3)
    report.data[label] = {"frames": run.frames, "rss_kb": run.rss_kb, "rss_trimmed_kb": run.rss_trimmed_kb,
                          "heap_kb": run.heap_kb, "cpu_ms_p50": run.cpu_ms_p50, "ms_mean": run.ms_mean,
                          "ms_p50": run.ms_p50, "ms_p99": run.ms_p99, "live": run.live,
                          "rss_slope_kb_per_1000": rss_slope,
                          "judged_rss_slope_kb_per_1000": leak_slope, "heap_slope_kb_per_1000": heap_slope,
                          "ms_slope_per_1000": ms_slope, "latency_drift": drift, "latency_drift_of": drift_of,
                          "flat": ok}
    fig, (mem, lat) = new_figure(11.0, 4.0, columns=2)
    mem.plot(run.frames, [r / 1024 for r in run.rss_kb], marker=".", label="RSS")
    if run.rss_trimmed_kb:
        mem.plot(run.frames, [r / 1024 for r in run.rss_trimmed_kb], marker=".", label="RSS after malloc_trim")
    mem.legend()
    mem.set_xlabel("frame"), mem.set_ylabel("RSS (MB)"), mem.set_title(f"{label}: {leak_slope:+.1f} KB/1000 frames")
    lat.plot(run.frames, run.ms_p50, label="p50"), lat.plot(run.frames, run.ms_p99, label="p99")
    if run.cpu_ms_p50:
        lat.plot(run.frames, run.cpu_ms_p50, label="p50 CPU time")
    lat.set_xlabel("frame"), lat.set_ylabel("latency (ms)"), lat.legend()
    report.figure(fig, f"soak_{label.replace(' ', '_')}", f"{label}: memory and latency over the run")
    return ok


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=10_000, help="synthetic frames (>= 1000)")
    p.add_argument("--objects", type=int, default=30, help="objects in view at any time")
    p.add_argument("--preset", default="paper", help="tracker preset")
    p.add_argument("--node", action="store_true", help="also soak the real node over DDS")
    p.add_argument("--rate", type=float, default=200.0, help="node input rate, frames per second")
    p.add_argument("--max-rss-slope", type=float, default=64.0, help="KB per 1000 frames counted as a leak")
    p.add_argument("--max-latency-drift", type=float, default=0.5,
                   help="allowed change of the median latency over the run, as a fraction of it")
    p.add_argument("--out", type=Path, default=REPO / "out" / "bench" / "soak")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-heap-pass", action="store_true", help="skip the tracemalloc pass (~4x the run's time)")
    p.add_argument("--inject-leak-kb", type=float, default=0.0,
                   help="self-check: leak this many KB per 1000 frames in the tracker run (must exit 1)")
    args = p.parse_args(argv)
    if args.frames < 1000:
        p.error("--frames must be >= 1000 for meaningful slopes")
    if args.inject_leak_kb < 0:
        p.error("--inject-leak-kb must be >= 0")
    report = Report("Soak", args.out)
    report.text(machine_line())
    report.text(f"{args.frames} synthetic frames, {args.objects} objects in view, identities living ~150 frames, "
                f"preset `{args.preset}`; samples every {max(1, args.frames // 100)} frames. `tracks`: live tracks "
                f"(tracker) or tracks in the node's last output message (node).")
    if args.inject_leak_kb:
        report.text(f"**Self-check: {args.inject_leak_kb:g} KB per 1000 frames leaked on purpose.**")
    tracker_run = partial(long_tracker_run, args.frames, args.objects, preset=args.preset, samples=100,
                          seed=args.seed, show_progress=not args.no_progress, leak_kb_per_1000=args.inject_leak_kb)
    run = tracker_run()
    if not args.no_heap_pass:
        run.heap_kb = tracker_run(trace_heap=True).heap_kb
    report.text("Tracker memory judged on RSS sampled right after `malloc_trim(0)` (free heap pages handed back; "
                "raw RSS swings ~1 MB with heap fragmentation as track arrays are reallocated)"
                + ("" if args.no_heap_pass else " and on the Python heap traced by tracemalloc in a second pass over "
                                                 "the same frames (latencies come from the untraced pass)") + ".")
    timeline(run, "tracker", report)
    ok = verdict(run, "tracker", args, report)
    if args.node:
        from bench.suite import node_probe

        node_run = node_probe.soak(args.frames, args.objects, args.rate, args.seed, not args.no_progress, report)
        if node_run is not None:
            timeline(node_run, "node", report)
            ok = verdict(node_run, "node", args, report) and ok
    report.write()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
