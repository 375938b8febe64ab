"""Speed: tracker update() vs number of objects (ours and peers), embedder
crops/s vs batch, detector ms/frame, and node end-to-end latency over DDS.

Each part that cannot run here (no shared models, no peers, no ROS) is noted
in the report and skipped; the others still run. ``--device cuda`` times the
models on the GPU, once per ``--precision``.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from bench.suite import models
from bench.suite.measure import machine_line, progress, summary_ms
from bench.suite.model_timing import PRB_CASES
from bench.suite.ours import PRESETS, run_preset
from bench.suite.peers import PeerRun, find_peer_python, peer_note, run_peers
from bench.suite.report import Report, new_figure
from bench.suite.settings import SuiteSettings
from bench.suite.synthetic import SyntheticConfig, synthetic_cache
from smiletrack_ros.embedding.evaluation import THROUGHPUT_BATCHES as BATCHES
from smiletrack_ros.embedding.evaluation import crops_per_second, random_boxes

SIZES = (10, 20, 50, 100, 200, 500)
QUICK_SIZES = (10, 50, 200)
WARMUP_FRAMES = 10
RATIO_SIZE = 50
DENSITY_REFERENCE = 50   # objects per 1920x1080 view; larger runs grow the view to keep this density


def time_calls(fn: Callable[[], object], min_seconds: float, min_repeats: int = 3) -> list[float]:
    """ms per call after one warm-up call, repeated for at least ``min_seconds``."""
    fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_repeats or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def scenario(n: int, frames: int, seed: int) -> SyntheticConfig:
    grow = max(1.0, math.sqrt(n / DENSITY_REFERENCE))
    return SyntheticConfig(num_objects=n, num_frames=frames, width=int(1920 * grow), height=int(1080 * grow),
                           seed=seed + n)


def tracker_sweep(settings: SuiteSettings, report: Report) -> None:
    sizes = QUICK_SIZES if settings.quick else SIZES
    frames = settings.cap(40, 60)
    work = settings.folder("speed") / "scenarios"
    caches = {n: synthetic_cache(scenario(n, frames, settings.seed)) for n in sizes}
    ms: dict[str, dict[int, float]] = {}
    for n in progress(sizes, len(sizes), "tracker sweep", settings.progress):
        for preset in PRESETS:
            per_frame = run_preset(caches[n], preset).ms[WARMUP_FRAMES:]
            ms.setdefault(f"ours-{preset}", {})[n] = summary_ms(per_frame)["mean"]
    notes = ["Synthetic detections (constant-velocity boxes, 5% misses, 128-d identity embeddings + noise); "
             f"the view grows beyond {DENSITY_REFERENCE} objects to keep the crowd density; {frames} frames per "
             f"size, mean over frames after the first {WARMUP_FRAMES}."]
    if settings.peers:
        python, description = find_peer_python(install=True)
        if python is None:
            notes.append(f"Peers skipped: {description}.")
        else:
            notes.append(peer_note(description) + " Peers get a flat 1080p frame, so their motion "
                         "compensation finds no features and costs little.")
            runs = [PeerRun(f"n{n}", caches[n].save(work / f"n{n}.npz"), caches[n].frame_rate) for n in sizes]
            for key, per_peer in run_peers(python, runs, work).items():
                n = int(key[1:])
                for peer, res in per_peer.items():
                    if res.error:
                        notes.append(f"{peer} at {n} objects failed: {res.error}")
                    else:
                        ms.setdefault(f"boxmot-{peer}", {})[n] = summary_ms(res.ms[WARMUP_FRAMES:])["mean"]
    names = list(ms)
    report.text("## Tracker update() vs number of objects\n\n" + "\n".join(f"- {n}" for n in notes))
    report.table("update() ms per frame (mean)", ["objects", *names],
                 [[n, *(ms[k].get(n, float("nan")) for k in names)] for n in sizes], digits=3)
    report.data["tracker_ms"] = ms
    if RATIO_SIZE in sizes:
        peers = [k for k in names if k.startswith("boxmot-")]
        rows = [[f"ours-{p}", *(ms[f"ours-{p}"][RATIO_SIZE] / ms[k][RATIO_SIZE] for k in peers)] for p in PRESETS]
        if peers:
            report.table(f"time ratio ours / peer at {RATIO_SIZE} objects (below 1: ours faster)",
                         ["ours", *peers], rows, digits=2)
            report.data["ratio_at_50"] = {r[0]: dict(zip(peers, r[1:], strict=True)) for r in rows}
    fig, ax = new_figure()
    for k in names:
        xs = sorted(ms[k])
        ax.plot(xs, [ms[k][x] for x in xs], marker="o", linestyle="-" if k.startswith("ours") else "--", label=k)
    ax.set_xscale("log"), ax.set_yscale("log")
    ax.set_xlabel("objects per frame"), ax.set_ylabel("update() ms per frame")
    ax.legend(fontsize=7)
    report.figure(fig, "tracker_update_vs_objects", "Tracker update() time vs number of objects")


def _precisions(settings: SuiteSettings) -> list[str]:
    return [p for p in settings.precisions if settings.device != "cpu" or p == "fp32"]


def embedder_throughput(settings: SuiteSettings, report: Report) -> None:

    batches = BATCHES[:2] if settings.quick else BATCHES
    rng = np.random.default_rng(settings.seed)
    image = rng.integers(0, 256, (720, 1280, 3), np.uint8)
    rows, curves = [], {}
    for precision in _precisions(settings):
        built = models.embedder(settings.embedder_weights, settings.device, half=precision == "fp16")
        for b in progress(batches, len(batches), f"embedder {precision}", settings.progress):
            crops = crops_per_second(built.model, image, random_boxes(b, 1280, 720, rng), 3 if settings.quick else 5)
            rows.append([precision, b, 1e3 * b / crops, crops])
            curves.setdefault(precision, []).append((b, crops))
    report.text(f"## Embedder on {settings.device}\n\n{built.description['embedder']}. The whole call (frame upload, "
                "box clipping, roi_align crops, network, copy back) on a 1280x720 frame with `batch` boxes, median "
                "of repeated calls (bench/bench_embedder.py's method). Speed depends on the backbone, not on the "
                "weight values.")
    report.table("embedder throughput", ["precision", "batch", "ms/call", "crops/s"], rows, digits=1)
    report.data["embedder"] = rows
    fig, ax = new_figure()
    for precision, pts in curves.items():
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{settings.device} {precision}")
    ax.set_xscale("log"), ax.set_xlabel("boxes per call"), ax.set_ylabel("crops/s"), ax.legend()
    report.figure(fig, "embedder_crops_per_s", "Embedder crops per second vs batch size")


def _sample_frames(settings: SuiteSettings) -> dict[str, np.ndarray]:
    """A real TUD (640x480) and MOT17 (1920x1080) frame when ../shared is here, else synthetic ones."""
    frames = {}
    if settings.shared_dir is not None:
        from smiletrack_ros.mot.io import iter_frames

        for name, folder in (("640x480 TUD-Stadtmitte", "MOT15/TUD-Stadtmitte"),
                             ("1920x1080 MOT17-04", "MOT17-mini/train/MOT17-04-FRCNN")):
            path = settings.shared_dir / "data" / folder
            if path.is_dir():
                frames[name] = next(iter_frames(path, 1, 2))[1]
    if not frames:
        from smiletrack_ros.scene import SceneConfig, generate_scene

        for w, h in ((640, 480), (1920, 1080)):
            scene = generate_scene(SceneConfig(width=w, height=h, num_frames=1, num_people=10))
            frames[f"{w}x{h} synthetic"] = next(iter(scene.frames())).image
    return frames


def detector_latency(settings: SuiteSettings, report: Report) -> None:
    frames = _sample_frames(settings)
    rows, notes = [], []
    if settings.shared_dir is not None:
        # onnxruntime's CUDA provider when installed (onnxruntime-gpu), else its CPU one.
        built = models.yolox_detector(settings.shared_dir, "cpu" if settings.device == "cpu" else "auto")
        for name, image in frames.items():
            t = summary_ms(time_calls(lambda model=built.model, image=image: model(image),
                                      0.3 if settings.quick else 2.0))
            rows.append(["YOLOX-Nano 416 (onnxruntime)", getattr(built.model, "device", "cpu"), "fp32", name,
                         t["p50"], t["p99"]])
    else:
        notes.append("YOLOX-Nano skipped: ../shared/models not found.")

    # On a CPU only the 640 variant, and only in a full run: seconds a frame.
    cases = PRB_CASES if settings.device != "cpu" else tuple(c for c in PRB_CASES if c[1] <= 640 and not settings.quick)
    image = frames[max(frames, key=lambda k: frames[k].size)]
    for precision in _precisions(settings):
        for architecture, size in cases:
            built = models.prb_detector(architecture, size, settings.device, half=precision == "fp16")
            t = summary_ms(time_calls(lambda model=built.model: model(image), 0.5 if settings.quick else 3.0))
            rows.append([f"PRB-FPN {architecture} @{size}", settings.device, precision,
                         f"{image.shape[1]}x{image.shape[0]}", t["p50"], t["p99"]])
    report.text("## Detector latency\n\nWhole call: letterbox, network, decoding, NMS, boxes back to source "
                "pixels. The PRB network (the paper's detector) runs with default-initialised weights, which "
                "sets its cost but not its output (its weights are not available here)."
                + "".join(f"\n- {n}" for n in notes))
    report.table("detector ms per frame", ["detector", "device", "precision", "frame", "p50 ms", "p99 ms"], rows,
                 digits=1)
    report.data["detector"] = rows


def node_latency(settings: SuiteSettings, report: Report) -> None:
    from bench.suite import node_probe

    node_probe.run(settings, report)


PARTS = {"tracker": tracker_sweep, "embedder": embedder_throughput, "detector": detector_latency,
         "node": node_latency}


def run(settings: SuiteSettings, parts: tuple[str, ...] = tuple(PARTS)) -> Report:
    report = Report(f"Speed ({settings.device}, {', '.join(_precisions(settings))})", settings.folder(
        "speed" if settings.device == "cpu" else f"speed_{settings.device.replace(':', '')}"))
    import torch

    report.text(machine_line() + f" torch {torch.__version__}, {torch.get_num_threads()} torch threads, device "
                f"{settings.device}" + (f" ({torch.cuda.get_device_name(settings.device)})"
                                        if settings.device != "cpu" else "") + ".")
    for part in parts:
        try:
            PARTS[part](settings, report)
        except (ImportError, FileNotFoundError, RuntimeError, ValueError) as err:
            report.text(f"## {part}\n\nNot measured: {type(err).__name__}: {err}")
            print(f"speed/{part}: not measured: {err}", flush=True)
    return report
