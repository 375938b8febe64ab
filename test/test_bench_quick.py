"""CI smoke test of the benchmark suite: bench/run's quickest path on tiny inputs.

Runs the real entry point (speed tracker + embedder + detector parts, memory)
without peers or the node, then checks the reports exist and parse and that the
figures in them are real measurements.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

# bench/ is the checkout's (test/conftest.py makes it importable without a sys.path entry)
from bench.suite.framecache import CachedFrame, FrameCache, load_if_matching
from bench.suite.longrun import LongRun, long_tracker_run
from bench.suite.measure import slope
from bench.suite.synthetic import SyntheticConfig, SyntheticStream, synthetic_cache

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, repo_dir):
    out = tmp_path_factory.mktemp("bench")
    env = dict(os.environ, SMILETRACK_PYTHON=sys.executable)
    done = subprocess.run([str(repo_dir / "bench" / "run"), "--quick", "--only", "speed,memory", "--frames", "300",
                           "--no-peers", "--no-progress", "--speed-parts", "tracker,embedder,detector",
                           "--out", str(out)], cwd=repo_dir, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return out, done.stdout


def test_quick_run_writes_reports_that_parse(quick_run):
    out, stdout = quick_run
    index = (out / "report.md").read_text()
    for suite in ("speed", "memory"):
        assert f"({suite}/report.md)" in index
        report = (out / suite / "report.md").read_text()
        assert report.startswith("# ")
        json.loads((out / suite / "results.json").read_text())
        pngs = list((out / suite).glob("*.png"))
        assert pngs and all(p.read_bytes()[:8] == PNG_MAGIC for p in pngs)
        for png in pngs:
            assert f"]({png.name})" in report
    assert "update() ms per frame" in stdout


def test_quick_run_measures_every_preset_and_the_embedder(quick_run):
    out, _ = quick_run
    speed = json.loads((out / "speed" / "results.json").read_text())
    assert set(speed["tracker_ms"]) == {"ours-paper", "ours-official", "ours-bytetrack"}
    for per_size in speed["tracker_ms"].values():
        assert set(per_size) == {"10", "50", "200"}
        assert all(np.isfinite(v) and v > 0 for v in per_size.values())
    assert [row[1] for row in speed["embedder"]] == [1, 8]
    assert all(row[3] > 0 for row in speed["embedder"])


def test_quick_run_memory_covers_the_requested_frames(quick_run):
    out, _ = quick_run
    memory = json.loads((out / "memory" / "results.json").read_text())
    assert memory["frames"][-1] == 300
    assert len(memory["rss_kb"]) == len(memory["frames"]) >= 20
    assert np.isfinite(memory["rss_slope_kb_per_1000"])
    assert max(memory["live"]) < 60  # ~30 objects in view: retired tracks really leave


def test_detector_timed_on_real_frames_when_shared_data_is_here(quick_run, shared_dir):
    out, _ = quick_run
    rows = json.loads((out / "speed" / "results.json").read_text())["detector"]
    assert any(r[0].startswith("YOLOX-Nano") and r[4] > 0 for r in rows)


def test_frame_cache_round_trip_and_staleness(tmp_path):
    cache = synthetic_cache(SyntheticConfig(num_objects=5, num_frames=12, seed=3))
    path = cache.save(tmp_path / "c.npz")
    again = FrameCache.load(path)
    assert len(again) == 12 and again.has_embeddings and again.frame_rate == cache.frame_rate
    for a, b in zip(cache, again, strict=True):
        assert a.frame == b.frame
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.embeddings, b.embeddings)
    assert load_if_matching(path, cache.meta) is not None
    assert load_if_matching(path, {**cache.meta, "other": 1}) is None


def test_frame_cache_allows_empty_frames_without_embeddings():
    d = 4
    frames = [CachedFrame(1, np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), None),
              CachedFrame(2, np.ones((2, 4), np.float32), np.ones(2, np.float32), np.zeros(2, np.int64),
                          np.ones((2, d), np.float32))]
    cache = FrameCache.from_frames(frames, 25.0, {})
    items = list(cache)
    assert cache.has_embeddings and items[0].embeddings.shape == (0, d) and items[1].embeddings.shape == (2, d)


def test_synthetic_stream_is_seeded_and_replaces_identities():
    config = SyntheticConfig(num_objects=10, num_frames=200, mean_lifetime=20.0, seed=1)
    first = [(f.boxes.copy(), ids) for f, ids in SyntheticStream(config)]
    second = [(f.boxes.copy(), ids) for f, ids in SyntheticStream(config)]
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(first, second, strict=True))
    seen = set(np.concatenate([ids for _, ids in first]).tolist())
    assert len(seen) > 30  # lifetimes ~20 frames over 200 frames: identities come and go


def test_slope_fits_a_line():
    x = np.arange(10.0)
    assert slope(x, 3.0 * x + 1.0) == pytest.approx(3.0)
    assert np.isnan(slope([1.0], [2.0]))


def _soak(repo_dir, out, *extra):
    """bench.soak on 1000 frames, judged on memory alone (a 10-frame latency window drifts by chance)."""
    done = subprocess.run([sys.executable, "-m", "bench.soak", "--frames", "1000", "--no-progress",
                           "--no-heap-pass", "--max-rss-slope", "1000", "--max-latency-drift", "1e9", "--out", str(out),
                           *extra], cwd=repo_dir, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True,
                          text=True, timeout=300)
    return done, json.loads((out / "results.json").read_text())["tracker"]


def test_soak_flags_a_deliberate_leak_and_passes_without_it(repo_dir, tmp_path):
    clean, clean_data = _soak(repo_dir, tmp_path / "clean")
    assert clean.returncode == 0, clean.stdout[-2000:] + clean.stderr[-2000:]
    assert clean_data["flat"] and len(clean_data["rss_trimmed_kb"]) == len(clean_data["frames"]) == 100
    leaky, leaky_data = _soak(repo_dir, tmp_path / "leaky", "--inject-leak-kb", "4000")
    assert leaky.returncode == 1 and not leaky_data["flat"]
    assert leaky_data["judged_rss_slope_kb_per_1000"] > 3000


def test_long_run_heap_trace_sees_a_deliberate_leak_at_its_size():
    run = long_tracker_run(300, samples=30, show_progress=False, trace_heap=True, leak_kb_per_1000=4000.0)
    assert len(run.heap_kb) == len(run.rss_trimmed_kb) == len(run.frames) == 30 and run.identities >= 30
    assert 3500 < run.heap_slope_kb_per_1000() < 5000
    assert run.leak_slope_kb_per_1000() > 3000

def test_long_run_judges_trimmed_rss_when_it_has_it():
    frames = list(range(100, 1100, 100))
    swinging = [80_000 + (900 if i % 2 else 0) + (0 if i < 5 else 1500) for i in range(10)]  # fragmentation steps
    run = LongRun(frames=frames, rss_kb=swinging, ms_p50=[1.0] * 10,
                  rss_trimmed_kb=[79_000 + 2 * i for i in range(10)], heap_kb=[500.0 + 0.064 * f for f in frames])
    assert run.leak_slope_kb_per_1000() == pytest.approx(20.0)
    assert run.rss_slope_kb_per_1000() > 1000.0
    assert run.heap_slope_kb_per_1000() == pytest.approx(64.0)
    raw_only = LongRun(frames=frames, rss_kb=swinging, ms_p50=[1.0] * 10)
    assert raw_only.leak_slope_kb_per_1000() == raw_only.rss_slope_kb_per_1000()
    assert np.isnan(raw_only.heap_slope_kb_per_1000())


def test_long_run_judges_latency_drift_on_cpu_time_when_it_has_it():
    frames = list(range(100, 1100, 100))
    busy_machine = [1.0 + 0.2 * i for i in range(10)]  # wall time stretched by other processes
    run = LongRun(frames=frames, rss_kb=[0] * 10, ms_p50=busy_machine, cpu_ms_p50=[1.0] * 10)
    assert run.judged_latency() is run.cpu_ms_p50 and run.latency_drift() == pytest.approx(0.0)
    wall_only = LongRun(frames=frames, rss_kb=[0] * 10, ms_p50=busy_machine)
    assert wall_only.latency_drift() == pytest.approx(2.0 / np.mean(busy_machine[1:]))  # +2 ms over 1000 frames
