"""PRB-FPN forward time of every named variant (PRB-FPN-CSP, the fast 3-level one, and the
E6E 4-level one SMILEtrack used for MOT) at 640 and 1280.

    python -m bench.bench_detector [--repeats 3] [--threads N] [--sizes 640 1280] [--no-prb] \
        [--onnx MODEL.onnx --frames SEQ_DIR [--onnx-threads 1] [--views]]

Random weights (no trained PRB weights are reachable): the figures are the network's
compute cost, not its accuracy. The network timed is the deploy form the ``prb`` backend
runs (Conv + BatchNorm and RepConv fused). CPU float32 always; CUDA float16 batch 1 too
when a GPU is present. With --onnx, also the full ONNX detector call (letterbox, run,
decode, NMS) per frame of a sequence; with --views, for each test-time view setting
too (tiles, flips), taking turns frame by frame so that a shared machine's load
weighs on every setting alike.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from smiletrack_ros.detection import OnnxConfig, build_detector
from smiletrack_ros.detection.prb.network import PRBNet
from smiletrack_ros.detection.prb.reparam import fuse
from smiletrack_ros.detection.prb.variants import VARIANTS, variant_spec

VIEW_CASES = (("full frame", {}), ("flip, nms", {"flip": True}), ("flip, wbf", {"flip": True, "merge": "wbf"}),
              ("2x1 tiles, nms", {"tiles": "2x1"}), ("2x1 tiles, wbf", {"tiles": "2x1", "merge": "wbf"}),
              ("2x1 tiles + flip, nms", {"tiles": "2x1", "flip": True}),
              ("2x1 tiles + flip, wbf", {"tiles": "2x1", "flip": True, "merge": "wbf"}),
              ("2x2 tiles, nms", {"tiles": "2x2"}))


def conv_gflops(net: torch.nn.Module, size: int) -> float:
    """Multiply-adds x 2 of every convolution for one size x size image."""
    total = 0

    def count(module, _inputs, output):
        nonlocal total
        k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
        total += 2 * k * output.numel()

    hooks = [m.register_forward_hook(count) for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.inference_mode():
        net.eval()(torch.zeros(1, 3, size, size))
    for h in hooks:
        h.remove()
    return total / 1e9


def time_forward(net: torch.nn.Module, size: int, device: torch.device, half: bool, repeats: int) -> list[float]:
    net = net.to(device).eval()
    if half:
        net.half()
    x = torch.rand(1, 3, size, size, device=device, dtype=torch.float16 if half else torch.float32)
    times = []
    with torch.inference_mode():
        for i in range(repeats + 1):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            net(x)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i:  # the first run is warm-up
                times.append(time.perf_counter() - start)
    return times


def time_prb(repeats: int, sizes: list[int]) -> None:
    """Every variant at every size, the variants taking turns run by run (a shared machine's
    load weighs on each alike), on the CPU in fp32 and, where CUDA exists, in fp16."""
    torch.manual_seed(0)
    nets = {name: fuse(PRBNet(variant_spec(name)).eval()) for name in VARIANTS}
    runs = [("cpu fp32", torch.device("cpu"), False)]
    if torch.cuda.is_available():
        runs.append(("cuda fp16", torch.device("cuda"), True))
    for size in sizes:
        for name, net in nets.items():
            params = sum(t.numel() for t in net.parameters()) / 1e6
            print(f"{name} @ {size}: {params:.1f} M params, {conv_gflops(net, size):.0f} GFLOPs (convolutions)")
        for label, device, half in runs:
            times: dict[str, list[float]] = {name: [] for name in nets}
            for _ in range(repeats):
                for name, net in nets.items():
                    times[name] += time_forward(net, size, device, half, 1)
                    nets[name] = net.float().cpu()
            first = statistics.median(times[VARIANTS[0]])
            for name, t in times.items():
                print(f"{name} @ {size}: {label}: median {1000 * statistics.median(t):.1f} ms "
                      f"(min {1000 * min(t):.1f}, {len(t)} runs, {1 / statistics.median(t):.2f} FPS, "
                      f"{statistics.median(t) / first:.2f}x {VARIANTS[0]})")


def time_onnx(model: str, frames: str, threads: int, views: bool, count: int = 30) -> None:
    """Median ms per detector call on the first ``count`` frames (after one warm-up frame)."""
    from smiletrack_ros.mot.io import iter_frames

    base = OnnxConfig(weights=model, device="cpu", cpu_threads=threads)
    cases = VIEW_CASES if views else VIEW_CASES[:1]
    detectors = [(label, build_detector(base.replace(**changes))) for label, changes in cases]
    times: dict[str, list[float]] = {label: [] for label, _ in cases}
    for k, image in iter_frames(frames, stop=count + 1):
        for label, det in detectors:
            start = time.perf_counter()
            det(image)
            if k > 1:
                times[label].append(time.perf_counter() - start)
    first = detectors[0][1]
    print(f"onnx {model} ({first.layout}, {first.input_size}, {threads or 'all'} thread(s)), {count} frames, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs:")
    reference = float(np.median(times[cases[0][0]]))
    for label, t in times.items():
        print(f"  {label:24s} median {1000 * np.median(t):7.1f} ms/frame  ({np.median(t) / reference:.1f}x)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--sizes", type=int, nargs="+", default=[640, 1280], help="input sizes to time")
    p.add_argument("--no-prb", action="store_true", help="skip the PRB-FPN forward timings")
    p.add_argument("--onnx", help="also time this ONNX detector end to end")
    p.add_argument("--frames", help="MOT sequence folder for --onnx")
    p.add_argument("--onnx-threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: every core)")
    p.add_argument("--views", action="store_true", help="--onnx with every test-time view setting too")
    a = p.parse_args()
    if a.onnx and not a.frames:
        p.error("--onnx needs --frames")
    if a.threads:
        torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}, "
          f"CUDA {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")
    if not a.no_prb:
        time_prb(a.repeats, a.sizes)
    if a.onnx:
        time_onnx(a.onnx, a.frames, a.onnx_threads, a.views)


if __name__ == "__main__":
    main()
