"""PRB-FPN forward time: the 640 (3-level) and 1280 (4-level, SMILEtrack's MOT) variants.

    python bench/bench_detector.py [--repeats 3] [--threads N] [--onnx MODEL.onnx --frames SEQ_DIR]

Random weights (no trained PRB weights are reachable): the figures are the
network's compute cost, not its accuracy. CPU float32 always; CUDA float16 too when
a GPU is present. With --onnx, also the full ONNX detector call (letterbox, run,
decode, NMS) per frame of a sequence.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from smiletrack_ros.detection import DetectorConfig, build_detector
from smiletrack_ros.detection.prb.network import PRBNet
from smiletrack_ros.detection.prb.variants import variant_spec

CASES = (("prb-2py-elan-640", 640), ("prb-2py-e6e-1280", 1280))


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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--onnx", help="also time this ONNX detector end to end")
    p.add_argument("--frames", help="MOT sequence folder for --onnx")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}, "
          f"CUDA {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")
    for name, size in CASES:
        torch.manual_seed(0)
        net = PRBNet(variant_spec(name))
        params = sum(t.numel() for t in net.parameters()) / 1e6
        print(f"{name} @ {size}: {conv_gflops(net, size):.0f} GFLOPs (convolutions)")
        runs = [("cpu fp32", torch.device("cpu"), False)]
        if torch.cuda.is_available():
            runs.append(("cuda fp16", torch.device("cuda"), True))
        for label, device, half in runs:
            t = time_forward(net, size, device, half, a.repeats)
            print(f"{name} @ {size}: {params:.1f} M params, {label}: median {1000 * statistics.median(t):.1f} ms "
                  f"(min {1000 * min(t):.1f}, {len(t)} runs)")
            net = net.float().cpu()
    if a.onnx:
        from smiletrack_ros.mot.io import iter_frames

        det = build_detector(DetectorConfig(backend="onnx", weights=a.onnx, device="cpu"))
        times = []
        for k, image in iter_frames(a.frames, stop=31):
            start = time.perf_counter()
            det(image)
            if k > 1:
                times.append(time.perf_counter() - start)
        print(f"onnx {a.onnx} ({det.layout}, {det.input_size}) end to end on {len(times)} frames: "
              f"median {1000 * np.median(times):.1f} ms/frame")


if __name__ == "__main__":
    main()
