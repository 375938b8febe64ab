"""Score MOT result files against MOTChallenge ground truth with TrackEval.

    python -m smiletrack_ros.cli.evaluate_mot SEQ_DIR [SEQ_DIR ...] --results RESULTS_DIR [--json OUT.json]

Each SEQ_DIR holds gt/gt.txt (MOT15 10-column or MOT17 9-column) and usually
seqinfo.ini; its results are RESULTS_DIR/<sequence name>.txt.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from smiletrack_ros.mot.evaluate import MAX_EVAL_BYTES, evaluate_files, format_table
from smiletrack_ros.mot.io import MotFormatError, load_sequence_info


def sequence_name(seq_dir: Path) -> str:
    try:
        return load_sequence_info(seq_dir).name
    except MotFormatError:
        return seq_dir.name


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m smiletrack_ros.cli.evaluate_mot",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("sequences", nargs="+", type=Path, help="sequence folders with gt/gt.txt")
    p.add_argument("--results", type=Path, required=True, help="folder of <sequence>.txt result files")
    p.add_argument("--json", type=Path, help="also write the metrics here")
    p.add_argument("--metrics", nargs="+", default=["HOTA", "DetA", "AssA", "MOTA", "IDF1", "IDSW"],
                   help="columns to print")
    p.add_argument("--max-memory-gib", type=float, default=MAX_EVAL_BYTES / 2 ** 30,
                   help="refuse a sequence whose scoring would need more memory than this")
    p.add_argument("--verbose", action="store_true", help="let TrackEval print its configuration")
    args = p.parse_args(argv)
    pairs = {}
    for seq_dir in args.sequences:
        name = sequence_name(seq_dir)
        pairs[name] = (seq_dir / "gt" / "gt.txt", args.results / f"{name}.txt")
    try:
        metrics = evaluate_files(pairs, verbose=args.verbose, max_bytes=args.max_memory_gib * 2 ** 30)
        table = format_table(metrics, tuple(args.metrics))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(table)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
