"""Identity crops from MOT-format sequences with ground truth, for metric learning.

Each ground-truth box is cut once, with a context margin around it, into a
fixed-size uint8 tensor; training then jitters the box inside that context
(crop jitter) and resizes to the network input with the same ``roi_align`` path
the embedder uses on full frames.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .crops import clip_boxes, crop_boxes


@dataclass(frozen=True)
class CropSettings:
    """``margin``: context added on each side, as a fraction of the box size."""

    height: int = 224
    width: int = 80
    margin: float = 0.125

    @property
    def context_size(self) -> tuple[int, int]:
        scale = 1 + 2 * self.margin
        return round(self.height * scale), round(self.width * scale)

    def inner_box(self) -> tuple[float, float, float, float]:
        """Where the ground-truth box lies inside a context crop."""
        ch, cw = self.context_size
        f = self.margin / (1 + 2 * self.margin)
        return cw * f, ch * f, cw * (1 - f), ch * (1 - f)


@dataclass(frozen=True)
class IdentityCrops:
    """``ids`` -1: a crop without identity (from detections), used by distillation only.
    ``teacher``: a teacher's embedding of each (un-augmented) box, when distilling."""

    crops: torch.Tensor      # (N, 3, Hc, Wc) uint8 BGR context crops
    ids: np.ndarray          # (N,) int64, unique across sequences; -1 unknown
    sequences: np.ndarray    # (N,) int64 index into ``names``
    frames: np.ndarray       # (N,) int64
    names: tuple[str, ...]
    settings: CropSettings
    teacher: np.ndarray | None = None  # (N, D) float32 unit vectors

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, mask: np.ndarray) -> IdentityCrops:
        index = torch.from_numpy(np.flatnonzero(mask))
        return IdentityCrops(self.crops[index], self.ids[mask], self.sequences[mask], self.frames[mask],
                             self.names, self.settings, None if self.teacher is None else self.teacher[mask])


EmbedFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def load_identity_crops(seq_dirs: Sequence[str | Path], settings: CropSettings = CropSettings(),
                        min_visibility: float = 0.3, min_height: float = 40.0,
                        max_frames: int | None = None, teacher: EmbedFn | None = None) -> IdentityCrops:
    """Cut every usable pedestrian gt box of each sequence (MOT15 or MOT17 layout).

    Boxes below ``min_height`` pixels or (MOT17) ``min_visibility`` are skipped:
    they carry little identity and mostly teach the occluder. With ``teacher``, each
    box is also embedded by it, on the full frame (its own crop path and resolution).
    """
    from smiletrack_ros.mot.io import read_ground_truth

    def boxes(seq_dir: Path) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        gt = read_ground_truth(seq_dir / "gt" / "gt.txt").pedestrians()
        keep = (gt.boxes[:, 3] - gt.boxes[:, 1]) >= min_height
        if gt.mot17:
            keep &= gt.visibility >= min_visibility
        gt = gt.select(keep)
        return {int(k): (gt.boxes[gt.frames == k], gt.ids[gt.frames == k]) for k in np.unique(gt.frames)}

    return _cut_sequences(seq_dirs, boxes, settings, max_frames, teacher, "ground-truth")


def load_box_crops(seq_dirs: Sequence[str | Path], settings: CropSettings = CropSettings(),
                   min_height: float = 40.0, min_score: float = 0.5, max_frames: int | None = None,
                   teacher: EmbedFn | None = None) -> IdentityCrops:
    """Cut the boxes of each sequence's ``det/det.txt`` (any detector's, MOT format) without
    identities (ids -1): material for distillation, which needs only a teacher."""
    from smiletrack_ros.mot.io import read_detections

    def boxes(seq_dir: Path) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        out = {}
        for k, det in read_detections(seq_dir / "det" / "det.txt", min_score=min_score, rescale="minmax").items():
            keep = (det.boxes[:, 3] - det.boxes[:, 1]) >= min_height
            if keep.any():
                out[k] = (det.boxes[keep], np.full(int(keep.sum()), -1, np.int64))
        return out

    return _cut_sequences(seq_dirs, boxes, settings, max_frames, teacher, "detection")


def _cut_sequences(seq_dirs: Sequence[str | Path], boxes_of: Callable[[Path], dict], settings: CropSettings,
                   max_frames: int | None, teacher: EmbedFn | None, what: str) -> IdentityCrops:
    from smiletrack_ros.mot.io import iter_frames

    crops, ids, seqs, frames, names, taught = [], [], [], [], [], []
    id_offset = 0
    for s, seq_dir in enumerate(seq_dirs):
        seq_dir = Path(seq_dir)
        by_frame = boxes_of(seq_dir)
        names.append(seq_dir.name)
        stop = None if max_frames is None else max_frames + 1
        seq_max = -1
        for k, image in iter_frames(seq_dir, stop=stop):
            if k not in by_frame:
                continue
            here, here_ids = by_frame[k]
            crops.append(context_crops(image, here, settings))
            ids.append(np.where(here_ids >= 0, here_ids + id_offset, -1))
            seq_max = max(seq_max, int(here_ids.max()))
            seqs.append(np.full(len(here), s))
            frames.append(np.full(len(here), k))
            if teacher is not None:
                taught.append(np.asarray(teacher(image, here), np.float32))
        id_offset += seq_max + 1
    if not crops:
        raise ValueError(f"no usable {what} boxes in {[str(d) for d in seq_dirs]}")
    return IdentityCrops(torch.cat(crops), np.concatenate(ids).astype(np.int64), np.concatenate(seqs).astype(np.int64),
                         np.concatenate(frames).astype(np.int64), tuple(names), settings,
                         np.concatenate(taught) if teacher is not None else None)


def context_crops(image_bgr: np.ndarray, boxes: np.ndarray, settings: CropSettings) -> torch.Tensor:
    """(N, 4) boxes -> (N, 3, Hc, Wc) uint8 crops of each box plus its margin."""
    image = torch.from_numpy(np.ascontiguousarray(image_bgr)).permute(2, 0, 1)[None].float()
    b = torch.as_tensor(boxes, dtype=torch.float32)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    m = settings.margin
    grown = torch.stack([b[:, 0] - m * w, b[:, 1] - m * h, b[:, 2] + m * w, b[:, 3] + m * h], dim=1)
    # Context beyond the image border is zero-filled (roi_align samples zeros there)
    # rather than clipped, so the box keeps its known place inside the crop.
    out = crop_boxes(image, grown, settings.context_size)
    return out.round().clamp(0, 255).to(torch.uint8)


def split_by_identity(crops: IdentityCrops, val_fraction: float, seed: int) -> tuple[IdentityCrops, IdentityCrops]:
    """Disjoint identities in train and validation, drawn per sequence."""
    rng = np.random.default_rng(seed)
    val_ids = []
    for s in range(len(crops.names)):
        ids = np.unique(crops.ids[crops.sequences == s])
        n_val = int(round(len(ids) * val_fraction))
        val_ids.extend(rng.choice(ids, size=n_val, replace=False).tolist())
    in_val = np.isin(crops.ids, val_ids)
    return crops.subset(~in_val), crops.subset(in_val)


def pk_batches(ids: np.ndarray, p: int, k: int, n_batches: int, rng: np.random.Generator,
               sequences: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """``n_batches`` index arrays of P identities x K crops each (with replacement
    only for identities with fewer than K crops); identities need >= 2 crops.

    With ``sequences``, each batch draws its identities from one sequence, picked
    uniformly: every scene gets the same share of batches however many people it
    has, and batch-hard mining finds its negatives among people of the same scene,
    the pairs that evaluation and tracking compare (P shrinks to the scene's count).
    """
    groups = np.zeros(len(ids), np.int64) if sequences is None else np.asarray(sequences)
    pools = []
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)
        by_id = {i: members[ids[members] == i] for i in np.unique(ids[members])}
        usable = np.array([i for i, idx in by_id.items() if len(idx) >= 2])
        if len(usable) >= 2:
            pools.append((by_id, usable))
    if not pools:
        raise ValueError("PK batches need at least 2 identities with 2 or more crops"
                         + (" in some sequence" if sequences is not None else ""))
    for _ in range(n_batches):
        by_id, usable = pools[int(rng.integers(len(pools)))] if len(pools) > 1 else pools[0]
        chosen = rng.choice(usable, size=min(p, len(usable)), replace=False)
        yield np.concatenate([rng.choice(by_id[i], size=k, replace=len(by_id[i]) < k) for i in chosen])


class Augmenter:
    """Batched training augmentation on context crops: crop jitter, horizontal
    flip, colour jitter and random erasing; returns network-size float crops."""

    def __init__(self, settings: CropSettings, jitter: float = 0.08, colour: float = 0.25,
                 erase_prob: float = 0.5, flip_prob: float = 0.5) -> None:
        self.settings, self.jitter, self.colour = settings, jitter, colour
        self.erase_prob, self.flip_prob = erase_prob, flip_prob

    def plain(self, context: torch.Tensor) -> torch.Tensor:
        """The un-augmented crop of the box (validation)."""
        box = torch.tensor([self.settings.inner_box()]).expand(len(context), 4)
        return crop_boxes(context.float(), box, (self.settings.height, self.settings.width),
                          batch_index=torch.arange(len(context)))

    def __call__(self, context: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        n = len(context)
        ch, cw = self.settings.context_size
        x1, y1, x2, y2 = self.settings.inner_box()
        w, h = x2 - x1, y2 - y1
        shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * self.jitter * torch.tensor([w, h])
        scale = 1 + (torch.rand(n, 2, generator=gen) * 2 - 1) * self.jitter
        cx, cy = (x1 + x2) / 2 + shift[:, 0], (y1 + y2) / 2 + shift[:, 1]
        hw, hh = w * scale[:, 0] / 2, h * scale[:, 1] / 2
        boxes = clip_boxes(torch.stack([cx - hw, cy - hh, cx + hw, cy + hh], dim=1), cw, ch)
        out = crop_boxes(context.float(), boxes, (self.settings.height, self.settings.width),
                         batch_index=torch.arange(n))
        flip = torch.rand(n, generator=gen) < self.flip_prob
        out = torch.where(flip[:, None, None, None], out.flip(3), out)
        out = self._colour(out, gen)
        return self._erase(out, gen)

    def _colour(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        n = len(x)

        def factor() -> torch.Tensor:
            return (1 + (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * self.colour)

        grey = x.mean(dim=1, keepdim=True)
        x = grey + (x - grey) * factor()                      # saturation
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = mean + (x - mean) * factor()                      # contrast
        x = x * factor()                                      # brightness
        return x.clamp(0, 255)

    def _erase(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        n, _, h, w = x.shape
        erase = torch.rand(n, generator=gen) < self.erase_prob
        area = 0.02 + torch.rand(n, generator=gen) * 0.2
        aspect = torch.exp((torch.rand(n, generator=gen) * 2 - 1) * 1.0)
        eh = (torch.sqrt(area * aspect) * h).clamp(1, h)
        ew = (torch.sqrt(area / aspect) * w).clamp(1, w)
        top = torch.rand(n, generator=gen) * (h - eh)
        left = torch.rand(n, generator=gen) * (w - ew)
        ys = torch.arange(h).view(1, h, 1)
        xs = torch.arange(w).view(1, 1, w)
        inside = ((ys >= top.view(n, 1, 1)) & (ys < (top + eh).view(n, 1, 1)) &
                  (xs >= left.view(n, 1, 1)) & (xs < (left + ew).view(n, 1, 1)) & erase.view(n, 1, 1))
        noise = torch.rand(x.shape, generator=gen) * 255
        return torch.where(inside[:, None], noise, x)
