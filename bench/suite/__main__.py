"""bench/run: the evaluation and benchmark suite.

    bench/run [--quick] [--only accuracy,speed,memory,scaling] [--frames N] [--no-peers]
              [--device cpu|cuda[:N]] [--precision fp32,fp16] [--out out/bench]
              [--embedder BACKEND:WEIGHTS ...] [--accuracy-parts presets,rates,occlusion] [--no-ablation]
              [--occlusion-seeds 0,1,2,3]

Each sub-suite prints its tables and writes out/bench/<suite>/report.md (+ PNGs,
results.json); out/bench/report.md links them all.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from bench.suite.settings import ACCURACY_PARTS, OCCLUSION_SEEDS, SUITES, SuiteSettings

REPO = Path(__file__).resolve().parents[2]
SPEED_PARTS = ("tracker", "embedder", "detector", "node")


def _csv(text: str, allowed: tuple[str, ...], option: str) -> tuple[str, ...]:
    items = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [s for s in items if s not in allowed]
    if bad or not items:
        raise argparse.ArgumentTypeError(f"{option}: unknown {bad or text!r}; choose from {', '.join(allowed)}")
    return items


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--only", type=lambda s: _csv(s, SUITES, "--only"), default=SUITES,
                   help=f"comma-separated sub-suites ({', '.join(SUITES)})")
    p.add_argument("--quick", action="store_true", help="small settings for smoke checks (< 5 min on 2 CPUs)")
    p.add_argument("--frames", type=int,
                   help="length of the memory run; also caps the frames of every other run")
    p.add_argument("--no-peers", action="store_true", help="skip the BoxMOT peers (no peer venv made)")
    p.add_argument("--device", default="cpu", help="device for the models: cpu or cuda[:N]")
    p.add_argument("--precision", type=lambda s: _csv(s, ("fp32", "fp16"), "--precision"), default=("fp32",),
                   help="model precisions to time on a GPU (fp16 is skipped on the CPU)")
    p.add_argument("--speed-parts", type=lambda s: _csv(s, SPEED_PARTS, "--speed-parts"), default=SPEED_PARTS,
                   help="parts of the speed suite")
    p.add_argument("--embedder-weights", type=Path,
                   help="SLM weights (.safetensors); default: the package's shipped weights, else untrained")
    p.add_argument("--embedder", action="append", default=[], metavar="BACKEND[:WEIGHTS]",
                   help="accuracy: an embedder every appearance tracker is run with (repeatable; slm, "
                        "onnx:PATH.onnx, osnet:PATH.pth, openvino:PATH.xml, none = no embeddings; '{shared}' "
                        "stands for --shared); default: slm and the OSNet x0.25 ONNX of ../shared")
    p.add_argument("--accuracy-parts", type=lambda s: _csv(s, ACCURACY_PARTS, "--accuracy-parts"),
                   default=ACCURACY_PARTS, help="parts of the accuracy suite")
    p.add_argument("--occlusion-seeds", type=lambda s: tuple(int(x) for x in s.split(",") if x.strip()),
                   default=OCCLUSION_SEEDS, help="accuracy: seeds of the synthetic long-occlusion scenes (default "
                   f"{','.join(map(str, OCCLUSION_SEEDS))}; others are held out from tuning)")
    p.add_argument("--no-ablation", action="store_true", help="accuracy: skip the ablation rows of the reid preset")
    p.add_argument("--sequences", type=lambda s: tuple(x.strip() for x in s.split(",") if x.strip()),
                   help="accuracy: comma-separated sequence names (default: all; --quick: TUD-Campus, MOT17-02)")
    p.add_argument("--out", type=Path, default=REPO / "out" / "bench", help="output folder")
    p.add_argument("--shared", type=Path, default=Path(os.environ.get("SMILETRACK_SHARED", REPO.parent / "shared")),
                   help="the read-only shared folder (data/, models/)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def write_index(out_dir: Path, done: list[tuple[str, Path, float]]) -> Path:
    lines = ["# Benchmark reports\n"]
    for suite in SUITES:
        for folder in sorted(out_dir.glob(f"{suite}*")):
            if (folder / "report.md").is_file():
                lines.append(f"- [{folder.name}]({folder.name}/report.md)")
    lines.append("\nThis run: " + ", ".join(f"{name} ({seconds:.0f} s)" for name, _, seconds in done))
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    shared = args.shared if (args.shared / "data").is_dir() else None
    try:
        settings = SuiteSettings(out_dir=args.out.resolve(), shared_dir=shared, quick=args.quick, frames=args.frames,
                                 peers=not args.no_peers, device=args.device, precisions=args.precision,
                                 progress=not args.no_progress, seed=args.seed,
                                 embedder_weights=args.embedder_weights, sequences=args.sequences,
                                 embedders=tuple(args.embedder), accuracy_parts=args.accuracy_parts,
                                 ablation=not args.no_ablation, occlusion_seeds=args.occlusion_seeds)
    except ValueError as err:
        print(f"bench/run: {err}", file=sys.stderr)
        return 2
    if shared is None:
        print(f"note: no shared data at {args.shared}; suites needing it are skipped", file=sys.stderr)
    done = []
    for suite in args.only:
        start = time.perf_counter()
        print(f"\n### {suite}", flush=True)
        if suite == "accuracy":
            from bench.suite import accuracy
            report = accuracy.run(settings)
        elif suite == "speed":
            from bench.suite import speed
            report = speed.run(settings, args.speed_parts)
        elif suite == "memory":
            from bench.suite import memory
            report = memory.run(settings)
        else:
            from bench.suite import scaling
            report = scaling.run(settings)
        done.append((suite, report.write(), time.perf_counter() - start))
    print(f"\nindex: {write_index(settings.out_dir, done)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
