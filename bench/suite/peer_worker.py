"""Replays cached detections (and embeddings) through BoxMOT trackers.

Runs INSIDE the peer venv (BoxMOT is AGPL and never enters the project's
environment); the suite starts it as a subprocess:
    PEER_PYTHON -m bench.suite.peer_worker JOB.json
JOB.json: {"result": path, "runs": [{"key", "cache", "trackers": [...],
"frame_rate", "seq_dir" (frames for trackers that want images) or null,
"image_size": [h, w] (a flat grey frame otherwise), "rows_dir" or null}]}.
Writes {key: {tracker: {"ms": [...], "rows": path|null, "error": str|null,
"embeddings": bool}}} to ``result``. Every tracker runs with BoxMOT's packaged
default parameters; only ``frame_rate`` is set, to the sequence's own.
"""
from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from bench.suite.framecache import FrameCache


def build_tracker(name: str, frame_rate: float):
    from boxmot import create_tracker
    from boxmot.trackers.config import load_tracker_config
    from boxmot.trackers.registry import get_tracker_definition
    from boxmot.trackers.specs import TrackerSpec

    definition = get_tracker_definition(name)
    defaults = load_tracker_config(definition.config_name or definition.name, None, {})
    options = (("frame_rate", int(round(frame_rate))),) if "frame_rate" in defaults else ()
    return create_tracker(TrackerSpec(name=name, options=options))


def load_frames(run: dict, cache: FrameCache) -> dict[int, np.ndarray]:
    if run.get("seq_dir"):
        from smiletrack_ros.mot.io import iter_frames

        wanted = set(int(f) for f in cache.frames)
        first, last = int(cache.frames.min()), int(cache.frames.max())
        return {k: img for k, img in iter_frames(run["seq_dir"], first, last + 1) if k in wanted}
    h, w = run.get("image_size", (1080, 1920))
    flat = np.full((int(h), int(w), 3), 114, np.uint8)
    return {int(f): flat for f in cache.frames}


def replay(name: str, cache: FrameCache, frames: dict[int, np.ndarray],
           frame_rate: float) -> tuple[list, np.ndarray, bool]:
    import torch
    from boxmot.structures.detections import Detections
    from boxmot.structures.geometry import Boxes

    tracker = build_tracker(name, frame_rate)
    wants_embeddings = bool(tracker.requirements.embeddings)
    if wants_embeddings and not cache.has_embeddings:
        raise RuntimeError("needs appearance embeddings and the cache has none")
    times, rows = [], []
    for item in cache:
        n = len(item.boxes)
        # BoxMOT 25 ignores embeddings given beside a numpy array; they go in through its Detections.
        dets = Detections(geometry=Boxes(torch.from_numpy(np.ascontiguousarray(item.boxes).reshape(n, 4))),
                          scores=torch.from_numpy(np.ascontiguousarray(item.scores)),
                          class_ids=torch.from_numpy(np.ascontiguousarray(item.class_ids)), sample_id=str(item.frame),
                          embeddings=torch.from_numpy(np.ascontiguousarray(item.embeddings))
                          if wants_embeddings else None)
        image = frames[item.frame]
        start = time.perf_counter()
        out = tracker.update(dets, image)
        times.append((time.perf_counter() - start) * 1e3)
        boxes = out.geometry.values.detach().numpy().reshape(-1, 4)
        ids = out.track_ids.detach().numpy() if hasattr(out.track_ids, "detach") else np.asarray(out.track_ids)
        scores = out.scores.detach().numpy()
        rows.append(np.column_stack([np.full(len(ids), item.frame), ids, boxes, scores]))
    table = np.concatenate(rows) if rows else np.zeros((0, 7))
    return times, table.astype(np.float64), wants_embeddings


def main(job_path: str) -> int:
    import torch

    torch.set_num_threads(1)
    job = json.loads(Path(job_path).read_text())
    results: dict[str, dict] = {}
    for run in job["runs"]:
        cache = FrameCache.load(run["cache"])
        frames = load_frames(run, cache)
        per_tracker = results.setdefault(run["key"], {})
        for name in run["trackers"]:
            entry = {"ms": [], "rows": None, "error": None, "embeddings": False}
            try:
                entry["ms"], table, entry["embeddings"] = replay(name, cache, frames, float(run["frame_rate"]))
                if run.get("rows_dir"):
                    path = Path(run["rows_dir"]) / f"{name}.npy"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    np.save(path, table)
                    entry["rows"] = str(path)
            except Exception as err:  # noqa: BLE001 - one peer failing must not stop the others
                entry["error"] = f"{type(err).__name__}: {err}"
                traceback.print_exc(file=sys.stderr)
            per_tracker[name] = entry
            print(f"peer {run['key']} {name}: {'error ' + entry['error'] if entry['error'] else 'ok'}",
                  file=sys.stderr, flush=True)
    Path(job["result"]).write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
