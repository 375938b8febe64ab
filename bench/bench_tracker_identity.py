"""Do two checkouts' trackers give bit-identical outputs? Every preset, on real and synthetic inputs.

A change meant to leave behaviour alone (a speed-up, a refactor) is checked by
running this checkout's ``SmileTracker`` and another checkout's (``--base``, e.g. a
``git worktree`` of main) on the same inputs, each in its own process, and
comparing a digest of every output of every frame: each field of every confirmed
track returned and of every live track (tentative and lost included), the
rejected-row counters, and the errors raised. Inputs:

- TUD-Campus / TUD-Stadtmitte public detections (``--shared``) at 25 fps, and
  TUD-Campus every 5th frame at 5 fps; embeddings are colour histograms of the
  boxes' crops, so appearance gates both pass and refuse; one run with
  camera-motion compensation on the video;
- synthetic pedestrian scenes with a pillar (people hidden for seconds);
- ``bench_tracker_peers`` scenes with 50 and 200 objects.

Each is run per preset (paper, official, bytetrack, reid) as given ("plain"),
motion only without timestamps ("motion"), and "hard": jittered stamps with
gaps, two classes and ``class_aware``, ``bank_size`` 7 then 4 (a config swap
mid-run), the ``both`` re-ID gate, unusable rows (nan / zero-size boxes, nan
and zero embeddings) and a backwards timestamp every 13th frame (an
``InputError`` the tracker must survive unchanged).

    .venv/bin/python -m bench.bench_tracker_identity --base ../core-base [--shared ../shared]   # from the root

Prints one line per run that differs, and exits 1 if any does.
"""
from __future__ import annotations

import os

os.environ.update(dict.fromkeys(("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"), "1"))

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PRESETS = ("paper", "official", "bytetrack", "reid")
VARIANTS = ("plain", "motion", "hard")


# ---------------------------------------------------------------- inputs (parent)
def _crop_histograms(image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """128-d sqrt colour histograms (8 hue x 4 saturation x 4 value) of the boxes' crops;
    zeros for a box with no pixel inside the image (a missing embedding)."""
    import cv2

    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
    h, w = image.shape[:2]
    out = np.zeros((len(boxes), 128), np.float32)
    for k, (x1, y1, x2, y2) in enumerate(np.round(boxes).astype(int)):
        x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
        if x2 > x1 and y2 > y1:
            hist = cv2.calcHist([hsv[y1:y2, x1:x2]], [0, 1, 2], None, [8, 4, 4], [0, 180, 0, 256, 0, 256])
            out[k] = np.sqrt(hist.ravel())
    return out


def _frames_from_video(video: Path) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(image)
    cap.release()
    return frames


def _tud(seq_dir: Path, step: int) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
    table = np.loadtxt(seq_dir / "det" / "det.txt", delimiter=",", ndmin=2)
    rate = float(next(line.split("=")[1] for line in (seq_dir / "seqinfo.ini").read_text().splitlines()
                      if line.startswith("frameRate")))
    images = _frames_from_video(seq_dir / f"{seq_dir.name}.mp4")
    frames = []
    for k in range(1, len(images) + 1, step):
        rows = table[table[:, 0] == k]
        boxes = np.column_stack([rows[:, 2:4], rows[:, 2:4] + rows[:, 4:6]]).astype(np.float32)
        frames.append((boxes, rows[:, 6].astype(np.float32), _crop_histograms(images[k - 1], boxes), (k - 1) / rate))
    return _pack(frames, rate / step), [images[k - 1] for k in range(1, len(images) + 1, step)]


def _scene(seed: int) -> dict[str, np.ndarray]:
    from smiletrack_ros.scene.config import SceneConfig
    from smiletrack_ros.scene.scene import generate_scene

    config = SceneConfig(num_frames=150, num_people=8, seed=seed, occluders=((0.4, 0.55),))
    frames = [(f.detections.boxes, f.detections.scores, _crop_histograms(f.image, f.detections.boxes),
               (f.index - 1) / config.fps) for f in generate_scene(config).frames()]
    return _pack(frames, config.fps)


def _crowd(n: int, frames: int) -> dict[str, np.ndarray]:
    from bench.bench_tracker_peers import make_scenario

    scn = make_scenario(n, frames, seed=n)
    rate = float(scn["frame_rate"])
    return _pack([(scn["boxes"][t, :c], scn["scores"][t, :c], scn["embeddings"][t, :c], t / rate)
                  for t, c in enumerate(scn["counts"])], rate)


def _pack(frames: list[tuple[np.ndarray, np.ndarray, np.ndarray, float]], rate: float) -> dict[str, np.ndarray]:
    counts = np.array([len(b) for b, _, _, _ in frames])
    return {"counts": counts, "rate": np.array(rate), "stamps": np.array([s for _, _, _, s in frames]),
            "boxes": np.concatenate([b for b, _, _, _ in frames]).reshape(-1, 4),
            "scores": np.concatenate([s for _, s, _, _ in frames]),
            "embeddings": np.concatenate([e for _, _, e, _ in frames]).reshape(-1, 128)}


def make_inputs(shared: Path | None, folder: Path) -> list[str]:
    """Write each input as folder/NAME.npz (and TUD-Campus's frames for the CMC run) -> names."""
    inputs: dict[str, dict[str, np.ndarray]] = {}
    mot = None if shared is None else shared / "data" / "MOT15"
    if mot is not None and (mot / "TUD-Campus").is_dir():
        inputs["tud-campus"], images = _tud(mot / "TUD-Campus", 1)
        np.save(folder / "tud-campus-images.npy", np.stack(images))
        inputs["tud-campus-5fps"], _ = _tud(mot / "TUD-Campus", 5)
        if (mot / "TUD-Stadtmitte").is_dir():
            inputs["tud-stadtmitte"], _ = _tud(mot / "TUD-Stadtmitte", 1)
    else:
        print("no ../shared MOT15 data: synthetic inputs only", file=sys.stderr)
    for seed in (0, 1):
        inputs[f"scene-{seed}"] = _scene(seed)
    inputs["crowd-50"] = _crowd(50, 100)
    inputs["crowd-200"] = _crowd(200, 40)
    for name, arrays in inputs.items():
        np.savez(folder / f"{name}.npz", **arrays)
    return list(inputs)


# ---------------------------------------------------------------- runs (worker)
def _spoil(boxes: np.ndarray, scores: np.ndarray, embs: np.ndarray, k: int):
    """Every 7th frame: a nan box, a zero-size box, a nan and a zero embedding row."""
    if k % 7 or len(boxes) < 4:
        return boxes, scores, embs
    boxes, embs = boxes.copy(), embs.copy()
    boxes[0, 0] = np.nan
    boxes[1, 2] = boxes[1, 0]
    embs[2, 5] = np.nan
    embs[3] = 0.0
    return boxes, scores, embs


def run_one(tracking, data: dict[str, np.ndarray], preset: str, variant: str, images: np.ndarray | None) -> str:
    """The digest of one run: every output of every frame, in order."""
    overrides = {"cmc": images is not None}
    if variant == "hard":
        overrides.update(class_aware=True, bank_size=7, reid_gate="both")
    tracker = tracking.SmileTracker(tracking.TrackerConfig.from_preset(preset, **overrides),
                                    frame_rate=float(data["rate"]))
    digest = hashlib.sha256()
    rng = np.random.default_rng(7)
    ends = np.cumsum(data["counts"])
    stamp = 0.0
    for k, end in enumerate(ends):
        start = end - data["counts"][k]
        boxes, scores, embs = data["boxes"][start:end], data["scores"][start:end], data["embeddings"][start:end]
        kwargs: dict = {"embeddings": embs, "timestamp": float(data["stamps"][k])}
        if variant == "motion":
            kwargs = {}
        elif variant == "hard":
            boxes, scores, embs = _spoil(boxes, scores, embs, k)
            step = max(0.1, 1.0 + 0.3 * rng.standard_normal()) * (3.0 if k % 17 == 16 else 1.0)
            stamp += step / float(data["rate"])
            kwargs = {"embeddings": embs, "timestamp": stamp, "class_ids": rng.integers(0, 2, len(boxes))}
            if k % 13 == 12:
                try:
                    tracker.update(boxes, scores, **{**kwargs, "timestamp": kwargs["timestamp"] - 1.0})
                except tracking.InputError as err:
                    digest.update(str(err).encode())
            if k == len(ends) // 2:
                tracker.config = replace(tracker.config, bank_size=4)
        if images is not None:
            kwargs["image"] = images[k]
        out = tracker.update(boxes, scores, **kwargs)
        digest.update(repr((tracker.last_rejected, tracker.last_missing_appearance, tracker.frame_count)).encode())
        for track in out + [None] + tracker.live_tracks():
            digest.update(b"|" if track is None else repr((
                track.track_id, track.box.tobytes(), track.score, track.class_id, int(track.state), track.age,
                track.hits, track.frames_since_update, track.velocity, track.appearance_similarity,
                track.detection_index)).encode())
    return digest.hexdigest()


def worker(checkout: Path, folder: Path, names: list[str]) -> dict[str, str]:
    """Runs in a process whose PYTHONPATH starts with ``checkout``."""
    import smiletrack_ros
    from smiletrack_ros import tracking

    if not Path(smiletrack_ros.__file__).resolve().is_relative_to(checkout.resolve()):
        raise SystemExit(f"imported {smiletrack_ros.__file__}, not the checkout {checkout}")
    digests = {}
    for name in names:
        data = dict(np.load(folder / f"{name}.npz"))
        for preset in PRESETS:
            for variant in VARIANTS:
                digests[f"{name}/{preset}/{variant}"] = run_one(tracking, data, preset, variant, None)
        if name == "tud-campus":
            images = np.load(folder / "tud-campus-images.npy")
            for preset in PRESETS:
                digests[f"{name}/{preset}/cmc"] = run_one(tracking, data, preset, "plain", images)
    return digests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, help="the other checkout (its root folder)")
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--inputs", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("names", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(worker(args.worker, args.inputs, args.names)))
        return 0
    if args.base is None:
        parser.error("--base is required")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        names = make_inputs(args.shared if args.shared.is_dir() else None, folder)
        digests = []
        for checkout in (args.base, REPO):
            # As a script, not a module: its folder, then PYTHONPATH, lead sys.path, so the checkout's package loads.
            done = subprocess.run([sys.executable, __file__, "--worker", str(checkout), "--inputs", str(folder),
                                   *names], capture_output=True, text=True,
                                  env={**os.environ, "PYTHONPATH": os.pathsep.join(
                              [str(checkout.resolve()), *filter(None, [os.environ.get("PYTHONPATH")])])})
            if done.returncode != 0:
                raise SystemExit(f"{checkout}: {done.stderr[-3000:]}")
            digests.append(json.loads(done.stdout.strip().splitlines()[-1]))
    base, ours = digests
    differ = [run for run in base if base[run] != ours.get(run)]
    for run in differ:
        print(f"DIFFERENT {run}")
    print(f"{len(base) - len(differ)} of {len(base)} runs identical ({', '.join(names)}; presets {', '.join(PRESETS)})")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
