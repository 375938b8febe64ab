"""Tracker update() time: our presets vs BoxMOT's ByteTrack and BoT-SORT on equal inputs.

For 10, 50, 200 and 500 objects a seeded synthetic scene (pedestrian-sized
boxes moving at constant velocity, box jitter, 10% misses, 5% false
positives, a fifth of the boxes low-score, 128-d unit embeddings per
identity plus noise) is replayed through every tracker; only update() is
timed, one thread each, camera-motion compensation off on both sides. Each
tracker replays the scene ``--repeats`` times from scratch, the trackers taking
turns, and the repeat with the lowest mean CPU time counts; wall time is printed beside the calling
thread's CPU time, and the ratios use CPU time, which other processes on a
shared machine disturb far less than wall time.

BoxMOT (AGPL) never enters the project's venv: the first run creates
out/peers/venv (seeing the project's torch through a .pth file), installs
boxmot==25.0.0 there and runs the peer in a subprocess with that python.

``--base DIR`` also times another checkout's tracker (DIR: its root, e.g. a
``git worktree`` of main) in a subprocess that takes its turn with the others,
so a change's before / after comes from one interleaved run.

    .venv/bin/python -m bench.bench_tracker_peers [--sizes 10 50 200 500] [--frames 100] [--no-peers] [--base DIR]
"""
from __future__ import annotations

import os

# One thread each, set before numpy loads its BLAS.
os.environ.update(dict.fromkeys(("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"), "1"))

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

PRESETS = ("paper", "official", "bytetrack", "reid")
PEERS = ("bytetrack", "botsort")
WARMUP = 10
FRAME_RATE = 30.0
EMBEDDING_DIM = 128


def make_scenario(n: int, frames: int, seed: int) -> dict[str, np.ndarray]:
    """Detections per frame, padded to a common width; ``counts`` holds each frame's real count."""
    rng = np.random.default_rng(seed)
    # Keep the crowd density of ~50 people in a 1920x1080 frame at every size.
    scale = max(1.0, np.sqrt(n / 50.0))
    width, height = 1920.0 * scale, 1080.0 * scale
    size = np.column_stack([rng.uniform(30, 60, n), rng.uniform(80, 160, n)])
    pos = np.column_stack([rng.uniform(0, width - 60, n), rng.uniform(0, height - 160, n)])
    vel = rng.normal(0, 2.0, (n, 2))
    identity = rng.normal(size=(n, EMBEDDING_DIM))
    identity /= np.linalg.norm(identity, axis=1, keepdims=True)
    cap = int(n * 1.1) + 2
    boxes = np.zeros((frames, cap, 4), np.float32)
    scores = np.zeros((frames, cap), np.float32)
    embs = np.zeros((frames, cap, EMBEDDING_DIM), np.float32)
    counts = np.zeros(frames, np.int64)
    for t in range(frames):
        pos += vel
        seen = rng.random(n) > 0.1
        xy = pos[seen] + rng.normal(0, 1.5, (seen.sum(), 2))
        b = np.column_stack([xy, xy + size[seen]])
        e = identity[seen] + rng.normal(0, 0.05, (seen.sum(), EMBEDDING_DIM))
        n_fp = rng.binomial(n, 0.05)
        fp_xy = np.column_stack([rng.uniform(0, width, n_fp), rng.uniform(0, height, n_fp)])
        b = np.concatenate([b, np.column_stack([fp_xy, fp_xy + [40, 100]])])
        e = np.concatenate([e, rng.normal(size=(n_fp, EMBEDDING_DIM))])
        m = int(seen.sum())
        s = np.where(rng.random(m) < 0.2, rng.uniform(0.1, 0.5, m), rng.uniform(0.5, 1.0, m))
        s = np.concatenate([s, rng.uniform(0.1, 0.6, n_fp)])
        order = rng.permutation(len(b))
        k = min(len(b), cap)
        boxes[t, :k] = b[order][:k]
        scores[t, :k] = s[order][:k]
        embs[t, :k] = (e / np.linalg.norm(e, axis=1, keepdims=True))[order][:k]
        counts[t] = k
    return {"boxes": boxes, "scores": scores, "embeddings": embs, "counts": counts,
            "frame_rate": np.array(FRAME_RATE)}


Run = tuple[np.ndarray, np.ndarray, np.ndarray]   # wall ms, CPU ms, confirmed outputs per frame


def replay_ours(scn: dict[str, np.ndarray], preset: str) -> Run:
    # Imported here: a --replay-checkout worker first puts that checkout on sys.path.
    from smiletrack_ros.tracking import SmileTracker, TrackerConfig

    tracker = SmileTracker(TrackerConfig.from_preset(preset, cmc=False), frame_rate=float(scn["frame_rate"]))
    times, cpu, outputs = [], [], []
    for t in range(len(scn["counts"])):
        n = int(scn["counts"][t])
        boxes, scores, embs = scn["boxes"][t, :n], scn["scores"][t, :n], scn["embeddings"][t, :n]
        start, start_cpu = time.perf_counter(), time.thread_time()
        out = tracker.update(boxes, scores, embeddings=embs, timestamp=t / FRAME_RATE)
        times.append((time.perf_counter() - start) * 1e3)
        cpu.append((time.thread_time() - start_cpu) * 1e3)
        outputs.append(len(out))
    return np.asarray(times), np.asarray(cpu), np.asarray(outputs)


def run_peer(python: Path, scenario_path: Path, name: str, repeats: int) -> Run:
    runner = REPO / "bench" / "peers" / "boxmot_runner.py"
    proc = subprocess.run([str(python), str(runner), str(scenario_path), name, str(repeats)],
                          capture_output=True, text=True, env=dict(os.environ))
    if proc.returncode != 0:
        raise RuntimeError(f"BoxMOT {name} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return np.asarray(result["ms"]), np.asarray(result["cpu_ms"]), np.asarray(result["outputs"])


def run_checkout(checkout: Path, scenario_path: Path) -> dict[str, Run]:
    """One replay of every preset by ``checkout``'s tracker, in a subprocess of its own: this file
    run as a script (its folder, then PYTHONPATH, lead sys.path), so the checkout's package loads."""
    proc = subprocess.run([sys.executable, __file__, "--replay-checkout", str(checkout), "--scenario",
                           str(scenario_path)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(
                              [str(checkout.resolve()), *filter(None, [os.environ.get("PYTHONPATH")])])})
    if proc.returncode != 0:
        raise RuntimeError(f"replay with {checkout} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return {p: tuple(np.asarray(v) for v in result[p]) for p in PRESETS}  # type: ignore[misc]


def replay_checkout(checkout: Path, scenario_path: Path) -> None:
    """Worker of ``run_checkout``: replays with the tracker of ``checkout`` and prints JSON."""
    import smiletrack_ros

    if not Path(smiletrack_ros.__file__).resolve().is_relative_to(checkout.resolve()):
        raise SystemExit(f"imported {smiletrack_ros.__file__}, not the checkout {checkout}")
    scn = dict(np.load(scenario_path))
    print(json.dumps({p: [v.tolist() for v in replay_ours(scn, p)] for p in PRESETS}))


def steady(values: np.ndarray) -> np.ndarray:
    return values[WARMUP:] if len(values) > 2 * WARMUP else values


def stats(run: Run) -> tuple[float, float, float, float]:
    """Wall mean, wall p99, CPU mean, confirmed outputs per frame."""
    wall, cpu, outputs = (steady(v) for v in run)
    return float(wall.mean()), float(np.percentile(wall, 99)), float(cpu.mean()), float(outputs.mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 200, 500])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-peers", action="store_true", help="time our presets only")
    parser.add_argument("--base", type=Path, help="also time this checkout's tracker (its root folder)")
    parser.add_argument("--replay-checkout", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--scenario", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.replay_checkout is not None:
        replay_checkout(args.replay_checkout, args.scenario)
        return 0
    from bench.suite.peers import PEER_DIR, ensure_peer_venv

    python = None if args.no_peers else ensure_peer_venv()
    PEER_DIR.mkdir(parents=True, exist_ok=True)
    names = [f"ours-{p}" for p in PRESETS] + ([] if args.base is None else [f"base-{p}" for p in PRESETS]) \
        + ([] if args.no_peers else [f"boxmot-{p}" for p in PEERS])
    if args.base is not None:
        print(f"base: {args.base.resolve()}")
    print(f"update() ms per frame over frames {WARMUP + 1}..{args.frames}, best of {args.repeats} (one thread, "
          f"GMC off, 128-d embeddings): wall mean / wall p99 / CPU mean [confirmed outputs per frame]")
    print(f"{'N':>5} " + " ".join(f"{n:>30}" for n in names))
    table: dict[int, dict[str, tuple[float, float, float, float]]] = {}
    for n in args.sizes:
        scn = make_scenario(n, args.frames, args.seed + n)
        path = PEER_DIR / f"scenario_{n}.npz"
        np.savez(path, **scn)
        # Repeats go round every tracker in turn, so that a machine whose speed drifts
        # (a shared VM) slows every tracker alike; each keeps its best repeat.
        runs: dict[str, list[Run]] = {k: [] for k in names}
        for _ in range(args.repeats):
            for p in PRESETS:
                runs[f"ours-{p}"].append(replay_ours(scn, p))
            if args.base is not None:
                for p, run in run_checkout(args.base, path).items():
                    runs[f"base-{p}"].append(run)
            for p in ([] if python is None else PEERS):
                runs[f"boxmot-{p}"].append(run_peer(python, path, p, 1))
        table[n] = {k: stats(min(rs, key=lambda run: float(steady(run[1]).mean()))) for k, rs in runs.items()}
        cells = ["{:7.2f} / {:7.2f} / {:7.2f} [{:3.0f}]".format(*table[n][k]) for k in names]
        print(f"{n:>5} " + " ".join(f"{c:>30}" for c in cells), flush=True)
    if args.base is not None:
        print("\nratio base / ours, CPU-time means (higher: ours faster)")
        print(f"{'N':>5} " + " ".join(f"{p:>12}" for p in PRESETS))
        for n, row in table.items():
            print(f"{n:>5} " + " ".join(f"{row[f'base-{p}'][2] / row[f'ours-{p}'][2]:12.3f}" for p in PRESETS))
    for side in ([] if args.no_peers else ["ours"] + ([] if args.base is None else ["base"])):
        print(f"\nratio peer / {side}, CPU-time means (higher: {side} faster)")
        print(f"{'N':>5} " + " ".join(f"{f'{p}/{o}':>28}" for p in PEERS for o in PRESETS))
        for n, row in table.items():
            print(f"{n:>5} " + " ".join(f"{row[f'boxmot-{p}'][2] / row[f'{side}-{o}'][2]:28.1f}"
                                         for p in PEERS for o in PRESETS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
