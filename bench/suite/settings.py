"""The suite's command-line settings, validated once."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SUITES = ("accuracy", "speed", "memory", "scaling")
PRECISIONS = ("fp32", "fp16")
# The accuracy suite's parts: our presets and the peers at native rate, the frame-rate x embedder
# grid, and the synthetic long-occlusion scenes.
ACCURACY_PARTS = ("presets", "rates", "occlusion")
# The synthetic long-occlusion scenes shown by default; other seeds are held out from tuning.
OCCLUSION_SEEDS = (0, 1, 2, 3)


@dataclass(frozen=True)
class SuiteSettings:
    out_dir: Path
    shared_dir: Path | None       # ../shared (data, models); None: suites needing it skip
    quick: bool = False
    frames: int | None = None     # override of each suite's frame count
    peers: bool = True
    device: str = "cpu"
    precisions: tuple[str, ...] = ("fp32",)
    progress: bool = True
    seed: int = 0
    embedder_weights: Path | None = None   # None: the package's shipped SLM weights, else untrained
    sequences: tuple[str, ...] | None = None  # accuracy: only these sequences (None: all, or the quick ones)
    # accuracy: BACKEND[:WEIGHTS] specs ("none": no embeddings); () = models.DEFAULT_EMBEDDERS
    embedders: tuple[str, ...] = ()
    accuracy_parts: tuple[str, ...] = ACCURACY_PARTS
    ablation: bool = True         # accuracy: the ablation rows of the reid preset
    occlusion_seeds: tuple[int, ...] = OCCLUSION_SEEDS   # accuracy: the synthetic long-occlusion scenes

    def __post_init__(self) -> None:
        if self.frames is not None and self.frames < 10:
            raise ValueError(f"--frames must be >= 10, got {self.frames}")
        bad = [p for p in self.precisions if p not in PRECISIONS]
        if bad or not self.precisions:
            raise ValueError(f"--precision must list some of {PRECISIONS}, got {self.precisions}")
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ValueError(f"--device must be cpu or cuda[:N], got {self.device!r}")
        bad = [p for p in self.accuracy_parts if p not in ACCURACY_PARTS]
        if bad or not self.accuracy_parts:
            raise ValueError(f"--accuracy-parts must list some of {ACCURACY_PARTS}, got {self.accuracy_parts}")
        if not self.occlusion_seeds or len(set(self.occlusion_seeds)) != len(self.occlusion_seeds) \
                or min(self.occlusion_seeds) < 0:
            raise ValueError(f"--occlusion-seeds must list distinct seeds >= 0, got {self.occlusion_seeds}")
        if len(set(self.embedders)) != len(self.embedders):
            raise ValueError(f"--embedder given twice: {self.embedders}")

    def folder(self, suite: str) -> Path:
        path = self.out_dir / suite
        path.mkdir(parents=True, exist_ok=True)
        return path

    def pick(self, quick: int, full: int) -> int:
        """A run length: --frames when given, else the quick or full default."""
        if self.frames is not None:
            return self.frames
        return quick if self.quick else full

    def cap(self, quick: int, full: int) -> int:
        """A frame count that --frames can only lower."""
        default = quick if self.quick else full
        return default if self.frames is None else min(self.frames, default)
