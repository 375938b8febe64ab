"""The shared half of the runtimes fed host arrays (ONNX Runtime, OpenVINO): boxes
checked and clipped once, crops cut as network input by OpenCV (the torch path's
bilinear samples, ``crops.crop_inputs``), preprocessing from the sidecar card /
overrides, chunks bounded in pixels (crops are cut chunk by chunk), fixed-batch
models fed padded chunks, outputs L2-normalised float32.
"""
from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby
from operator import itemgetter
from pathlib import Path

import numpy as np
import torch

from .config import EmbedderConfig
from .crops import checked_pairs, clip_boxes, crop_inputs
from .errors import EmbedderConfigError, WeightsError
from .preprocessing import MAX_EMBEDDING_DIM, Preprocessing, is_count
from .reid_card import ReidCard

# At most this many crop pixels per runtime call (the float32 input of a chunk stays
# under ~200 MB whatever the model's input size and max_batch).
MAX_CHUNK_PIXELS = 1 << 24
MAX_MODEL_BYTES = 2 << 30
_LFS_POINTER = b"version https://git-lfs"


def check_model_file(path: str | Path, suffixes: tuple[str, ...]) -> Path:
    """A regular, plausibly sized model file, not a git-lfs pointer; errors name the file."""
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise WeightsError(f"{path}: expected a {' or '.join(suffixes)} model file")
    if not path.is_file():
        raise WeightsError(f"{path}: model file not found (or not a regular file)")
    size = path.stat().st_size
    if size == 0 or size > MAX_MODEL_BYTES:
        raise WeightsError(f"{path}: implausible model file size {size} bytes")
    with path.open("rb") as f:
        head = f.read(len(_LFS_POINTER))
    if head == _LFS_POINTER:
        raise WeightsError(f"{path}: is a git-lfs pointer, not the model (run `git lfs pull`)")
    return path


def model_input_size(config: EmbedderConfig, shape: list, base: Preprocessing, card: ReidCard | None,
                     source: str) -> Preprocessing:
    """Preprocessing = backend convention < card < overrides; a fixed model input size wins
    over both and contradicting it is an error (a fixed-size model cannot take another)."""
    pre = config.preprocessing(card.preprocessing(base) if card else base)
    if len(shape) != 4 or (isinstance(shape[1], int) and shape[1] != 3):
        raise WeightsError(f"{source}: expected an N x 3 x H x W image input, got shape {shape}")
    fixed = {}
    for name, dim in (("height", shape[2]), ("width", shape[3])):
        if isinstance(dim, int) and dim > 0:
            asked = getattr(config, f"input_{name}")
            if asked is not None and asked != dim:
                raise EmbedderConfigError(f"input_{name}", f"the model's input is fixed at {dim}, not {asked}")
            fixed[name] = dim
    try:
        return pre.merged(**fixed)
    except EmbedderConfigError as exc:
        raise WeightsError(f"{source}: model input {shape}: {exc}") from exc


def fixed_batch(shape: list) -> int | None:
    """The model's batch size when it is fixed, None when dynamic."""
    return shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None


def check_dim(dim: object, card: ReidCard | None, source: str) -> int:
    if not is_count(dim, MAX_EMBEDDING_DIM):
        raise WeightsError(f"{source}: implausible embedding size {dim!r} (at most {MAX_EMBEDDING_DIM})")
    if card is not None and card.embedding_dim is not None and card.embedding_dim != dim:
        raise WeightsError(f"{source}: embedding_dim: the card says {card.embedding_dim}, the model gives {dim}")
    return int(dim)  # type: ignore[arg-type]


class ArrayEmbedder:
    """Subclasses set ``preprocessing``, ``dim``, ``batch`` (fixed batch or None),
    ``input_dtype`` and implement ``_run`` ((B, 3, H, W) array -> (B, D) array)."""

    config: EmbedderConfig
    preprocessing: Preprocessing
    dim: int
    batch: int | None
    input_dtype: type = np.float32
    name: str
    device: str

    def _run(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _chunk_size(self) -> int:
        pixels = self.preprocessing.height * self.preprocessing.width
        size = max(1, min(self.config.max_batch, MAX_CHUNK_PIXELS // pixels))
        return self.batch * max(1, size // self.batch) if self.batch else size

    def _warm_up(self) -> None:
        height, width = self.preprocessing.size
        self(np.zeros((height, width, 3), np.uint8), np.array([[0, 0, width, height]] * 2, np.float32))

    def __call__(self, image_bgr: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """HxWx3 uint8 BGR image, (N, 4) x1, y1, x2, y2 boxes -> (N, dim) float32 unit vectors."""
        return self.embed_many([(image_bgr, boxes)])[0]

    def embed_many(self, pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        """(image, boxes) of several images (cameras) -> their embeddings, the crops of all in the
        same chunks (one runtime call per chunk, not per image); a chunk's crops are cut when it runs."""
        kept, counts = checked_pairs(pairs)
        if not kept:
            return [np.zeros((0, self.dim), np.float32) for _ in pairs]
        rois = [clip_boxes(torch.from_numpy(boxes), image_bgr.shape[1], image_bgr.shape[0]).numpy()
                for image_bgr, boxes in kept]
        rows = [(k, j) for k, r in enumerate(rois) for j in range(len(r))]    # (image, box) of each crop
        step, outs = self._chunk_size(), []
        for start in range(0, len(rows), step):
            # one call per image in the chunk: its region is normalised once for all its boxes there
            cut = [crop_inputs(kept[k][0], rois[k][[j for _, j in run]], self.preprocessing, self.input_dtype)
                   for k, run in groupby(rows[start:start + step], key=itemgetter(0))]
            outs.append(self._forward(np.concatenate(cut)))
        out = np.concatenate(outs).astype(np.float32, copy=False)
        out = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return np.split(out, np.cumsum(counts)[:-1])

    def _forward(self, x: np.ndarray) -> np.ndarray:
        """One runtime call per chunk; a fixed-batch model gets batch-sized pieces, the last padded."""
        if self.batch is None:
            return self._output(self._run(x), len(x))
        n, outs = len(x), []
        for start in range(0, n, self.batch):
            piece = x[start:start + self.batch]
            if len(piece) < self.batch:
                piece = np.concatenate([piece, np.zeros((self.batch - len(piece), *piece.shape[1:]), piece.dtype)])
            outs.append(self._output(self._run(piece), self.batch)[:min(self.batch, n - start)])
        return np.concatenate(outs)

    def _output(self, y: np.ndarray, n: int) -> np.ndarray:
        y = np.asarray(y).reshape(n, -1)
        if y.shape[1] != self.dim:
            raise WeightsError(f"{self.name}: the model gave {y.shape[1]}-d outputs, expected {self.dim}")
        return y.astype(np.float32, copy=False)
