"""SLM embedder throughput: crops per second for batches of 1, 8, 32 and 128 boxes.

    python -m bench.bench_embedder [--weights default|untrained|PATH] [--repeats 5] [--threads N]

Times the whole ``Embedder`` call (frame upload, box clipping, roi_align crops,
network, copy back) on a 1280x720 frame: CPU float32 always, and CUDA float16 and
float32 when a GPU is present (same script). Reports the median of --repeats runs.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from bench.suite.model_timing import BATCHES, crops_per_second, random_boxes
from smiletrack_ros.embedding import Embedder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default="default", help="'default', 'untrained' or a weights path")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    weights = None if args.weights == "untrained" else args.weights
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    setups = [("cpu", "fp32")]
    if torch.cuda.is_available():
        setups += [("cuda:0", "fp16"), ("cuda:0", "fp32")]
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}, weights {args.weights}")
    for device, precision in setups:
        embedder = Embedder(weights=weights, device=device, precision=precision)
        name = torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu"
        spec = embedder.spec
        print(f"{name} {precision} ({spec.backbone}, {spec.input_height}x{spec.input_width})")
        for n in BATCHES:
            rate = crops_per_second(embedder, image, random_boxes(n, 1280, 720, rng), args.repeats)
            print(f"  batch {n:>4}: {rate:9.1f} crops/s  ({1000 * n / rate:8.2f} ms per call)")


if __name__ == "__main__":
    main()
