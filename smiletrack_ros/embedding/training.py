"""Metric learning for the SLM: batch-hard triplet loss over PK batches, optionally
plus an identity (cross-entropy) loss through a training-only cosine classifier.

Each epoch: PK batches of augmented identity crops, then validation on held-out
identities (pair AUC, rank-1; of mirror-averaged embeddings with ``flip_average``,
which the card then asks the embedder to use too). Every epoch writes ``last.*``
(weights, card, optimizer/scheduler/classifier state) so a run can resume; the best
validation AUC is kept as ``best.safetensors`` + ``best.json``.
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .backbones import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB, load_mobilenet_v2_imagenet
from .card import ModelCard
from .dataset import (
    Augmenter,
    CropSettings,
    IdentityCrops,
    load_box_crops,
    load_identity_crops,
    pk_batches,
    split_by_identity,
)
from .distill import (
    DISTILL_LOSSES,
    FeatureHead,
    cache_key,
    distill_loss,
    load_cached,
    save_cached,
    teacher_config,
    window_batches,
)
from .errors import EmbedderConfigError
from .metrics import score_embeddings
from .slm import SLMNet, SlmSpec
from .weights import card_path, load_safetensors_weights, save_weights


@dataclass(frozen=True)
class TrainConfig:
    sequences: tuple[str, ...]
    out_dir: str
    backbone: str = "mobilenet_v2"
    init_weights: str | None = None    # our .safetensors (warm start, its card's spec) or ImageNet MobileNetV2
    normalise: str = "auto"            # "none" (raw BGR 0..255), "imagenet", "auto": imagenet iff ImageNet init
    freeze_blocks: int = 0             # first N top-level backbone modules stay fixed (eval-mode BN)
    cached_views: int = 0              # > 0: precompute the frozen part for this many augmented views
    epochs: int = 10
    batches_per_epoch: int = 0         # 0: about one pass over the training crops
    p: int = 16
    k: int = 4
    lr: float = 3e-4
    weight_decay: float = 5e-4
    margin: float = 0.3
    val_fraction: float = 0.2
    seed: int = 0
    device: str = "cpu"
    max_minutes: float = 0.0           # > 0: stop after the epoch that passes this budget
    min_visibility: float = 0.3
    min_height: float = 40.0
    max_frames: int | None = None
    sequence_batches: bool = False     # each PK batch from one sequence, sequences drawn uniformly
    id_loss_weight: float = 0.0        # > 0: add this times the identity cross-entropy loss
    flip_average: bool = False         # validate (and ship) mirror-averaged embeddings
    storage_dtype: str = "float32"
    teacher: str | None = None         # BACKEND:WEIGHTS: distil this model (see distill.py)
    distill: str = "kl"                # similarity | kl | feature
    distill_weight: float = 1.0
    tau: float = 0.1                   # temperature of the kl loss
    triplet_weight: float = 1.0        # the identity (triplet) loss where ground truth exists
    unlabelled: tuple[str, ...] = ()   # sequences whose det/det.txt boxes add crops without identities
    unlabelled_min_score: float = 0.5
    window: int = 10                   # frames per batch of unlabelled crops
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        checks = {
            "sequences": len(self.sequences) > 0,
            "normalise": self.normalise in ("auto", "none", "imagenet"),
            "freeze_blocks": self.freeze_blocks >= 0,
            "cached_views": self.cached_views >= 0 and (self.cached_views == 0 or self.freeze_blocks > 0),
            "epochs": self.epochs >= 1,
            "batches_per_epoch": self.batches_per_epoch >= 0,
            "p": self.p >= 2,
            "k": self.k >= 2,
            "lr": self.lr > 0,
            "weight_decay": self.weight_decay >= 0,
            "margin": self.margin > 0,
            "val_fraction": 0 < self.val_fraction < 1,
            "max_minutes": self.max_minutes >= 0,
            "id_loss_weight": self.id_loss_weight >= 0,
            "min_visibility": 0 <= self.min_visibility <= 1,
            "min_height": self.min_height >= 0,
            "distill": self.distill in DISTILL_LOSSES,
            "distill_weight": self.distill_weight >= 0,
            "tau": self.tau > 0,
            "triplet_weight": self.triplet_weight >= 0,
            "unlabelled": not self.unlabelled or self.teacher is not None,
            "window": self.window >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise EmbedderConfigError(name, f"invalid value {getattr(self, name)!r}")
        if self.init_weights is not None and not self.warm_start and self.backbone != "mobilenet_v2":
            raise EmbedderConfigError("init_weights", "besides SLM .safetensors, only ImageNet MobileNetV2 features "
                                      f"can be loaded (backbone is {self.backbone!r})")

    @property
    def warm_start(self) -> bool:
        return self.init_weights is not None and str(self.init_weights).endswith(".safetensors")

    def spec(self) -> SlmSpec:
        if self.warm_start:
            spec = ModelCard.read(card_path(self.init_weights)).spec
            if spec.backbone != self.backbone:
                raise EmbedderConfigError("init_weights", f"{self.init_weights} holds a {spec.backbone} SLM, "
                                          f"not {self.backbone}")
            return spec
        imagenet = self.normalise == "imagenet" or (self.normalise == "auto" and self.init_weights is not None)
        if imagenet:
            return SlmSpec(backbone=self.backbone, channel_order="rgb", mean=IMAGENET_MEAN_RGB, std=IMAGENET_STD_RGB)
        return SlmSpec(backbone=self.backbone)


def batch_hard_triplet_loss(embeddings: torch.Tensor, ids: torch.Tensor, margin: float) -> torch.Tensor:
    """Mean over anchors of relu(hardest positive distance - hardest negative distance + margin)."""
    sim = embeddings @ embeddings.T
    dist = torch.sqrt((2 - 2 * sim).clamp_min(1e-12))
    same = ids[:, None] == ids[None, :]
    eye = torch.eye(len(ids), dtype=torch.bool, device=ids.device)
    hardest_pos = dist.masked_fill(~same | eye, -math.inf).amax(dim=1)
    hardest_neg = dist.masked_fill(same, math.inf).amin(dim=1)
    valid = torch.isfinite(hardest_pos) & torch.isfinite(hardest_neg)
    return F.relu(hardest_pos - hardest_neg + margin)[valid].mean()


# The identity classifier compares unit embeddings with unit class vectors; the scale
# turns cosines into logits that can reach a confident softmax, the smoothing keeps
# it from chasing certainty on a few dozen training people (common re-ID practice).
ID_LOGIT_SCALE = 16.0
ID_LABEL_SMOOTHING = 0.1
MAX_AGREEMENT_CROPS = 1024  # the validation distillation loss compares at most this many crops, all pairs


class IdentityClassifier(nn.Module):
    """Training-only cosine classifier over the training identities; never exported,
    so the shipped network stays the SLM. ``imprint`` sets its class vectors before
    training."""

    def __init__(self, ids: np.ndarray, dim: int) -> None:
        super().__init__()
        self.classes = np.unique(ids)
        self.weight = nn.Parameter(torch.zeros(len(self.classes), dim))

    @torch.no_grad()
    def imprint(self, embeddings: torch.Tensor, ids: np.ndarray) -> None:
        """Each class vector starts as its identity's mean embedding, so the loss starts
        in agreement with the network's features (a warm start keeps what it learnt)
        instead of pulling them towards random directions that the slow, small
        learning rate would take long to move."""
        for c, identity in enumerate(self.classes):
            self.weight[c] = F.normalize(embeddings[torch.from_numpy(ids == identity)].mean(dim=0), dim=0)

    def loss(self, embeddings: torch.Tensor, ids: np.ndarray) -> torch.Tensor:
        labels = torch.from_numpy(np.searchsorted(self.classes, ids)).to(embeddings.device)
        logits = ID_LOGIT_SCALE * F.normalize(embeddings, dim=1) @ F.normalize(self.weight, dim=1).T
        return F.cross_entropy(logits, labels, label_smoothing=ID_LABEL_SMOOTHING)


class SplitBackbone:
    """The backbone as ``frozen`` (the first N modules: fixed weights, eval-mode
    BatchNorm, no gradients) followed by ``rest``; the backbones' forward is the
    sequence of their child modules, so the two parts compose to the whole."""

    def __init__(self, net: SLMNet, n_frozen: int) -> None:
        children = list(net.backbone.children())
        if n_frozen > len(children):
            raise EmbedderConfigError(
                "freeze_blocks", f"the {net.spec.backbone} backbone has only {len(children)} modules")
        self.net = net
        self.frozen, self.rest = nn.Sequential(*children[:n_frozen]), nn.Sequential(*children[n_frozen:])
        self.frozen.requires_grad_(False)

    def train_mode(self) -> None:
        self.net.train()
        self.frozen.eval()

    @torch.no_grad()
    def frozen_features(self, crops: torch.Tensor) -> torch.Tensor:
        self.frozen.eval()
        return self.frozen(self.net.normalise(crops))

    def embed_from_frozen(self, features: torch.Tensor) -> torch.Tensor:
        return self.net.head(self.rest(features))


class FeatureSource:
    """Inputs for ``embed_from_frozen``: computed per batch from augmented crops, or
    (``views`` > 0) from a cache of ``views`` augmented views per crop computed once,
    which makes fine-tuning the top of a frozen trunk many times cheaper on a CPU."""

    def __init__(self, split: SplitBackbone, crops: IdentityCrops, augmenter: Augmenter, device: torch.device,
                 views: int, seed: int, batch: int = 64) -> None:
        self.split, self.crops, self.augmenter, self.device, self.views = split, crops, augmenter, device, views
        self.cache = None
        if views:
            gen = torch.Generator().manual_seed(seed)
            per_view = []
            for _ in range(views):
                chunks = [split.frozen_features(augmenter(crops.crops[i:i + batch], gen).to(device)).half()
                          for i in range(0, len(crops), batch)]
                per_view.append(torch.cat(chunks))
            self.cache = torch.stack(per_view)

    def batch(self, index: np.ndarray, gen: torch.Generator) -> torch.Tensor:
        if self.cache is None:
            images = self.augmenter(self.crops.crops[torch.from_numpy(index)], gen).to(self.device)
            return self.split.frozen_features(images)
        view = torch.randint(0, self.views, (len(index),), generator=gen).to(self.device)
        return self.cache[view, torch.from_numpy(index).to(self.device)].float()


@torch.no_grad()
def plain_frozen_features(split: SplitBackbone, crops: IdentityCrops, augmenter: Augmenter, device: torch.device,
                          batch: int = 64, mirrored: bool = False) -> torch.Tensor:
    """The frozen part's output for the un-augmented (or mirrored) crops: fixed
    during training, so validation computes it once."""
    def plain(i: int) -> torch.Tensor:
        images = augmenter.plain(crops.crops[i:i + batch])
        return images.flip(3) if mirrored else images

    return torch.cat([split.frozen_features(plain(i).to(device)) for i in range(0, len(crops), batch)])


@torch.no_grad()
def embed_features(split: SplitBackbone, features: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """Eval-mode embeddings (on the CPU) of the frozen part's outputs."""
    split.net.eval()
    return torch.cat([split.embed_from_frozen(features[i:i + batch]).float().cpu()
                      for i in range(0, len(features), batch)])


def validate(split: SplitBackbone, features: torch.Tensor, crops: IdentityCrops,
             mirrored: torch.Tensor | None = None,
             agreement: Callable[[torch.Tensor], float] | None = None) -> dict:
    """Validation scores; with ``mirrored`` features, of each crop's embedding
    averaged with its mirror's and renormalised, as the embedder's flip averaging;
    with ``agreement``, its value on the embeddings (the distillation loss against the
    teacher, on the held-out identities) as ``distill_loss``."""
    emb = embed_features(split, features)
    if mirrored is not None:
        emb = F.normalize(emb + embed_features(split, mirrored), dim=1)
    extra = {"distill_loss": round(agreement(emb), 5)} if agreement is not None else {}
    emb = emb.numpy()
    pooled = score_embeddings(emb, crops.ids, crops.frames, groups=crops.sequences).as_dict()
    per_sequence = {}
    for s, name in enumerate(crops.names):
        mask = crops.sequences == s
        if len(np.unique(crops.ids[mask])) >= 2:
            per_sequence[name] = score_embeddings(emb[mask], crops.ids[mask], crops.frames[mask]).pair_auc
    # The mean over sequences keeps one sequence with many crops of few people from
    # deciding alone which epoch is best.
    return {**pooled, **extra, "pair_auc_pooled": pooled["pair_auc"],
            "pair_auc": round(float(np.mean(list(per_sequence.values()))), 4) if per_sequence else pooled["pair_auc"],
            "pair_auc_per_sequence": {k: round(v, 4) for k, v in per_sequence.items()}}


def load_training_crops(cfg: TrainConfig, out: Path) -> tuple[IdentityCrops, IdentityCrops | None]:
    """The identity crops of ``cfg.sequences`` and the detection crops of ``cfg.unlabelled``;
    with a teacher, each with its teacher embeddings, computed once and cached in ``out``."""
    settings = CropSettings()
    labelled_args = (cfg.min_visibility, cfg.min_height, cfg.max_frames)
    unlabelled_args = (cfg.min_height, cfg.unlabelled_min_score, cfg.max_frames)
    if cfg.teacher is None:
        return load_identity_crops(cfg.sequences, settings, *labelled_args), None
    teacher = None

    def load(kind: str, loader, sequences: tuple[str, ...], args: tuple) -> IdentityCrops:
        nonlocal teacher
        key = cache_key(cfg.teacher, [kind, *sequences, settings, *args])
        cache = out / f"teacher_{kind}.npz"
        cached = load_cached(cache, key)
        if cached is not None:
            crops = loader(sequences, settings, *args)
            if len(crops) == len(cached):
                return replace(crops, teacher=cached)
        if teacher is None:
            from .factory import build_embedder

            teacher = build_embedder(teacher_config(cfg.teacher, cfg.device))
        crops = loader(sequences, settings, *args, teacher=teacher)
        save_cached(cache, key, crops.teacher)
        return crops

    crops = load("labelled", load_identity_crops, cfg.sequences, labelled_args)
    extra = load("unlabelled", load_box_crops, cfg.unlabelled, unlabelled_args) if cfg.unlabelled else None
    return crops, extra


def train(cfg: TrainConfig, crops: IdentityCrops | None = None, progress: bool = True) -> list[dict]:
    """Run (or resume) training; returns the per-epoch history."""
    from tqdm import tqdm

    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(cfg.device)
    torch.manual_seed(cfg.seed)
    if crops is None:
        crops, unlabelled = load_training_crops(cfg, out)
    else:
        unlabelled = None
    train_set, val_set = split_by_identity(crops, cfg.val_fraction, cfg.seed)
    if cfg.teacher is not None and train_set.teacher is None:
        raise EmbedderConfigError("teacher", "the given crops carry no teacher embeddings")
    spec = replace(cfg.spec(), input_height=crops.settings.height, input_width=crops.settings.width)
    net = SLMNet(spec)
    if cfg.warm_start:
        net.load_state_dict(load_safetensors_weights(cfg.init_weights)[0].state_dict())
    elif cfg.init_weights is not None:
        load_mobilenet_v2_imagenet(net.backbone, cfg.init_weights)
    net.to(device)
    split = SplitBackbone(net, cfg.freeze_blocks)
    classifier = IdentityClassifier(train_set.ids, spec.embedding_dim).to(device) \
        if cfg.id_loss_weight > 0 else None
    params = [p for p in net.parameters() if p.requires_grad]
    if classifier is not None:
        params.append(classifier.weight)
    head = FeatureHead(spec.embedding_dim, train_set.teacher.shape[1]).to(device) \
        if cfg.teacher is not None and cfg.distill == "feature" else None
    if head is not None:
        params.extend(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs, eta_min=cfg.lr * 0.05)
    history: list[dict] = []
    start_epoch, best_auc = 0, -1.0
    state_path = out / "last_state.pt"
    resuming = state_path.is_file()
    if resuming:
        resumed, _ = load_safetensors_weights(out / "last.safetensors")
        net.load_state_dict(resumed.state_dict())
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        if classifier is not None:
            if "classifier" not in state:
                raise EmbedderConfigError("id_loss_weight", f"the run in {out} was started without an identity "
                                          "loss; resume it as it was or use a new out_dir")
            classifier.load_state_dict(state["classifier"])
        if head is not None:
            if "head" not in state:
                raise EmbedderConfigError("distill", f"the run in {out} was started without a feature head; "
                                          "resume it as it was or use a new out_dir")
            head.load_state_dict(state["head"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, best_auc, history = int(state["epoch"]), float(state["best_auc"]), list(state["history"])
    augmenter = Augmenter(crops.settings)
    source = FeatureSource(split, train_set, augmenter, device, cfg.cached_views, cfg.seed)
    extra_source = FeatureSource(split, unlabelled, augmenter, device, cfg.cached_views, cfg.seed + 1) \
        if unlabelled is not None else None
    val_features = plain_frozen_features(split, val_set, augmenter, device)
    val_mirrored = plain_frozen_features(split, val_set, augmenter, device, mirrored=True) \
        if cfg.flip_average else None
    if classifier is not None and not resuming:
        train_features = plain_frozen_features(split, train_set, augmenter, device)
        classifier.imprint(embed_features(split, train_features).to(device), train_set.ids)
    n_batches = cfg.batches_per_epoch or max(1, math.ceil(len(train_set) / (cfg.p * cfg.k)))
    card_base = dict(
        data={"sequences": list(crops.names), "train_crops": len(train_set), "val_crops": len(val_set),
              "train_ids": int(len(np.unique(train_set.ids))), "val_ids": int(len(np.unique(val_set.ids))),
              **({"unlabelled_sequences": list(unlabelled.names), "unlabelled_crops": len(unlabelled)}
                 if unlabelled is not None else {})},
        config={k: v for k, v in asdict(cfg).items() if k not in ("out_dir", "extra")} | cfg.extra)
    agreement = None
    if cfg.teacher is not None:
        val_teacher = torch.from_numpy(val_set.teacher[:MAX_AGREEMENT_CROPS])

        @torch.no_grad()
        def agreement(emb: torch.Tensor) -> float:
            # eval mode: the network as it will ship (the feature head is fixed here too)
            emb = emb[:MAX_AGREEMENT_CROPS].to(device)
            return float(distill_loss(cfg.distill, emb, val_teacher.to(device), cfg.tau, head))

        card_base["initial_val_distill_loss"] = state.get("initial_val_distill_loss") if resuming else \
            validate(split, val_features, val_set, agreement=agreement)["distill_loss"]
    started = time.monotonic()
    for epoch in range(start_epoch, cfg.epochs):
        rng = np.random.default_rng(cfg.seed * 1000 + epoch)
        gen = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
        split.train_mode()
        losses, distill_losses = [], []
        batches = pk_batches(train_set.ids, cfg.p, cfg.k, n_batches, rng,
                             train_set.sequences if cfg.sequence_batches else None)
        extra = window_batches(unlabelled.sequences, unlabelled.frames, cfg.p * cfg.k, cfg.window, n_batches, rng) \
            if unlabelled is not None else None
        bar = tqdm(batches, total=n_batches,
                   desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not progress, leave=False)
        for index in bar:
            labels = torch.from_numpy(train_set.ids[index]).to(device)
            embeddings = split.embed_from_frozen(source.batch(index, gen))
            loss = cfg.triplet_weight * batch_hard_triplet_loss(embeddings, labels, cfg.margin)
            if classifier is not None:
                loss = loss + cfg.id_loss_weight * classifier.loss(embeddings, train_set.ids[index])
            if cfg.teacher is not None:
                taught = [(embeddings, train_set.teacher[index])]
                if extra is not None:
                    more = next(extra)
                    taught.append((split.embed_from_frozen(extra_source.batch(more, gen)), unlabelled.teacher[more]))
                d = sum(distill_loss(cfg.distill, e, torch.from_numpy(t).to(device), cfg.tau, head)
                        for e, t in taught) / len(taught)
                loss = loss + cfg.distill_weight * d
                distill_losses.append(float(d.detach()))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
        scheduler.step()
        scores = validate(split, val_features, val_set, mirrored=val_mirrored, agreement=agreement)
        entry = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "lr": optimizer.param_groups[0]["lr"],
                 **({"distill_loss": float(np.mean(distill_losses))} if distill_losses else {}),
                 "seconds": round(time.monotonic() - started, 1), **{f"val_{k}": v for k, v in scores.items()}}
        history.append(entry)
        card = ModelCard(spec=spec, name=f"slm-{cfg.backbone}", storage_dtype=cfg.storage_dtype,
                         flip_average=cfg.flip_average,
                         training={**card_base, "epochs_done": epoch + 1},
                         metrics={"validation": {k: v for k, v in entry.items() if k.startswith("val_")}})
        save_weights(net, out / "last.safetensors", card)
        if scores["pair_auc"] > best_auc:
            best_auc = scores["pair_auc"]
            save_weights(net, out / "best.safetensors", card)
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "epoch": epoch + 1,
                    "best_auc": best_auc, "history": history,
                    **({"classifier": classifier.state_dict()} if classifier is not None else {}),
                    **({"head": head.state_dict()} if head is not None else {}),
                    "initial_val_distill_loss": card_base.get("initial_val_distill_loss")}, state_path)
        (out / "history.json").write_text(json.dumps(history, indent=1) + "\n")
        print(json.dumps(entry), flush=True)
        if cfg.max_minutes and time.monotonic() - started > cfg.max_minutes * 60:
            break
    return history
