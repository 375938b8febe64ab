"""Embedder throughput: crops per second for batches of 1, 8, 32 and 128 boxes (``--batches``),
for any backend (``--embedder BACKEND[:WEIGHTS]``, repeatable; default: the shipped SLM), each in
every one of ``--runtimes`` it can run in (``embedder.runtime``; default: auto).

    python -m bench.bench_embedder [--embedder slm] [--embedder osnet:PATH.pth] \\
        [--embedder onnx:PATH.onnx] [--embedder openvino:PATH.xml] [--repeats 5] [--threads N] \\
        [--batches 1,10,30] [--runtimes torch,onnxruntime,openvino]

Times the whole call (box clipping, crops, network, copy back) on a 1280x720 frame:
on the CPU in float32 always, and for the torch backends on CUDA in float16 and
float32 when a GPU is present (same script). The embedders take turns call by call,
so their ratios hold on a loaded machine. Reports the median of --repeats calls.
"""
from __future__ import annotations

import argparse
import dataclasses

import torch

from smiletrack_ros.embedding import EmbedderConfig, build_embedder
from smiletrack_ros.embedding.config import BACKEND_RUNTIMES
from smiletrack_ros.embedding.evaluation import THROUGHPUT_BATCHES as BATCHES
from smiletrack_ros.embedding.evaluation import throughput


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--embedder", action="append", default=[], help="BACKEND[:WEIGHTS] (repeatable)")
    ap.add_argument("--weights", help="older spelling of --embedder slm:WEIGHTS ('untrained' allowed)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads of every runtime (0: its default)")
    ap.add_argument("--batches", default=",".join(map(str, BATCHES)), help="boxes per call, comma-separated")
    ap.add_argument("--runtimes", default="auto", help="the torch backends' runtimes (embedder.runtime), "
                                                       "comma-separated")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    specs = args.embedder or [f"slm:{args.weights or 'default'}"]
    setups = [("cpu", "fp32")]
    if torch.cuda.is_available():
        setups += [("cuda:0", "fp16"), ("cuda:0", "fp32")]
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}")
    for device, precision in setups:
        embedders = {}
        for spec in specs:
            config = EmbedderConfig.from_spec(spec, device=device, precision=precision, threads=args.threads)
            if device != "cpu" and config.backend not in ("slm", "osnet"):
                continue
            for runtime in args.runtimes.split(","):
                if runtime != "auto" and (runtime not in BACKEND_RUNTIMES[config.backend]
                                          or (device != "cpu" and runtime != "torch")):
                    continue
                embedder = build_embedder(dataclasses.replace(config, runtime=runtime))
                embedders[f"{embedder.name} {embedder.runtime} {device} {precision}"] = embedder
        rates = throughput(embedders, tuple(int(b) for b in args.batches.split(",")), args.repeats)
        for name, by_batch in rates.items():
            print(name)
            for n, rate in by_batch.items():
                print(f"  batch {n:>4}: {rate:9.1f} crops/s  ({1000 * n / rate:8.2f} ms per call)")


if __name__ == "__main__":
    main()
