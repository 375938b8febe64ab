"""Memory: resident set size over a long synthetic run must stay flat."""
from __future__ import annotations

from bench.suite.longrun import long_tracker_run
from bench.suite.measure import machine_line
from bench.suite.report import Report, new_figure
from bench.suite.settings import SuiteSettings


def run(settings: SuiteSettings) -> Report:
    report = Report("Memory over a long run", settings.folder("memory"))
    report.text(machine_line())
    frames = settings.pick(2000, 10_000)
    result = long_tracker_run(frames, seed=settings.seed, show_progress=settings.progress)
    rss_slope, ms_slope = result.rss_slope_kb_per_1000(), result.ms_slope_per_1000()
    report.text(f"`paper` preset, {frames} synthetic frames, 30 objects in view, each identity living ~150 frames "
                f"({result.identities} identities in all), 128-d embeddings. RSS sampled {len(result.frames)} times; "
                f"slopes fitted after the first 10% of the run.")
    report.table("summary", ["frames", "identities", "RSS start MB", "RSS end MB", "RSS slope KB/1000 frames",
                             "update p50 ms (last window)", "p50 latency slope ms/1000 frames", "live tracks (end)"],
                 [[frames, result.identities, result.rss_kb[0] / 1024, result.rss_kb[-1] / 1024, rss_slope,
                   result.ms_p50[-1], ms_slope, result.live[-1]]], digits=3)
    report.data.update(frames=result.frames, rss_kb=result.rss_kb, ms_mean=result.ms_mean, ms_p50=result.ms_p50,
                       ms_p99=result.ms_p99,
                       live=result.live, rss_slope_kb_per_1000=rss_slope, ms_slope_per_1000=ms_slope)
    fig, ax = new_figure()
    ax.plot(result.frames, [r / 1024 for r in result.rss_kb], marker=".", label="RSS")
    ax.set_xlabel("frame"), ax.set_ylabel("RSS (MB)")
    ax.set_title(f"slope {rss_slope:+.1f} KB per 1000 frames")
    twin = ax.twinx()
    twin.plot(result.frames, result.live, color="grey", alpha=0.5, label="live tracks")
    twin.set_ylabel("live tracks")
    report.figure(fig, "rss_over_frames", "Resident memory over the run (grey: live tracks)")
    return report
