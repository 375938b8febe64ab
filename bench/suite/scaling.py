"""Scaling: accuracy and time per frame as the synthetic crowd grows (5..300 people)."""
from __future__ import annotations

import time

import numpy as np

from bench.suite import models
from bench.suite.framecache import CachedFrame, FrameCache
from bench.suite.measure import machine_line, progress
from bench.suite.ours import run_preset
from bench.suite.report import Report, new_figure
from bench.suite.settings import SuiteSettings

DENSITIES = (5, 10, 20, 50, 100, 200, 300)
QUICK_DENSITIES = (5, 20)
SCALING_PRESETS = ("paper", "bytetrack")
# Embedding every box costs ~N crops a frame: on a CPU the appearance preset stops here.
CPU_EMBED_MAX_PEOPLE = 100


def scene_inputs(people: int, frames: int, seed: int, embedder, show_progress: bool):
    """The scene's simulated detections with our embeddings (``embedder`` None: none), its
    ground truth, and embed ms per frame."""
    from smiletrack_ros.mot.io import PEDESTRIAN_CLASS, GroundTruth
    from smiletrack_ros.scene import SceneConfig, generate_scene

    config = SceneConfig(width=1280, height=720, num_people=people, num_frames=frames, seed=seed)
    cached, embed_ms, truth = [], [], []
    for f in progress(generate_scene(config).frames(), frames, f"scene {people} people", show_progress):
        d = f.detections
        start = time.perf_counter()
        vectors = embedder(f.image, d.boxes) if embedder is not None and len(d) else None
        embed_ms.append((time.perf_counter() - start) * 1e3)
        cached.append(CachedFrame(f.index, d.boxes.astype(np.float32), d.scores.astype(np.float32),
                                  d.class_ids.astype(np.int64), vectors))
        t = f.truth
        truth.append((np.full(len(t), f.index), t.ids, t.boxes, t.visibility))
    frames_, ids, boxes, vis = (np.concatenate(c) for c in zip(*truth, strict=True))
    gt = GroundTruth(frames=frames_.astype(np.int64), ids=ids.astype(np.int64), boxes=boxes.reshape(-1, 4),
                     conf=(vis > 0).astype(np.float32), classes=np.full(len(ids), PEDESTRIAN_CLASS, np.int64),
                     visibility=vis.astype(np.float32), mot17=True)
    return FrameCache.from_frames(cached, config.fps, {"people": people}), gt, embed_ms


def run(settings: SuiteSettings) -> Report:
    from smiletrack_ros.mot.evaluate import evaluate

    report = Report("Scaling with crowd density", settings.folder("scaling"))
    report.text(machine_line())
    densities = QUICK_DENSITIES if settings.quick else DENSITIES
    frames = settings.cap(20, 30)
    embedder = models.embedder(settings.embedder_weights, settings.device)
    rows, series = [], {}
    for people in densities:
        embed = settings.device != "cpu" or people <= CPU_EMBED_MAX_PEOPLE
        cache, gt, embed_ms = scene_inputs(people, frames, settings.seed, embedder.model if embed else None,
                                           settings.progress)
        for preset in SCALING_PRESETS if embed else ("bytetrack",):
            result = run_preset(cache, preset)
            m = evaluate({"scene": (gt, result.rows)}, {"scene": frames})["scene"]
            per_frame = float(np.mean(result.ms)) + (float(np.mean(embed_ms)) if preset == "paper" else 0.0)
            rows.append([people, preset, cache.mean_count(), m["HOTA"], m["MOTA"], m["IDF1"], int(m["IDSW"]),
                         float(np.mean(result.ms)), per_frame])
            series.setdefault(preset, []).append((people, m["HOTA"], m["IDF1"], per_frame))
    report.text(f"Scene generator at 1280x720, {frames} frames per density, its simulated detector; `paper` uses "
                f"our embedder ({embedder.description['embedder']}) on the rendered frames, "
                "`bytetrack` is motion only. "
                "ms/frame = tracker update() + (paper only) embedding of that frame's boxes."
                + (f" On a CPU `paper` runs up to {CPU_EMBED_MAX_PEOPLE} people (embedding every box of a larger "
                   "crowd takes seconds a frame; the speed suite has the embedder's crops/s)."
                   if settings.device == "cpu" and max(densities) > CPU_EMBED_MAX_PEOPLE else ""))
    headers = ["people", "preset", "dets/frame", "HOTA", "MOTA", "IDF1", "IDSW", "update ms", "ms/frame"]
    report.table("accuracy and time vs crowd", headers, rows, digits=2)
    report.data["rows"] = [dict(zip(headers, r, strict=True)) for r in rows]
    fig, (left, right) = new_figure(11.0, 4.0, columns=2)
    for preset, pts in series.items():
        x = [p[0] for p in pts]
        left.plot(x, [p[1] for p in pts], marker="o", label=f"{preset} HOTA")
        left.plot(x, [p[2] for p in pts], marker="s", linestyle="--", label=f"{preset} IDF1")
        right.plot(x, [p[3] for p in pts], marker="o", label=preset)
    left.set_xlabel("people in the scene"), left.set_ylabel("%"), left.legend(fontsize=7)
    right.set_xlabel("people in the scene"), right.set_ylabel("ms per frame"), right.set_yscale("log")
    right.legend(fontsize=7)
    report.figure(fig, "scaling", "Accuracy (left) and time per frame (right) vs crowd density")
    return report
