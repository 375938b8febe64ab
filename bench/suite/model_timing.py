"""The PRB cases the detector benchmarks time (bench/run's speed suite); the embedder's timing
helpers live in ``smiletrack_ros.embedding.evaluation`` (eval_appearance --speed uses them too)."""
from __future__ import annotations

from smiletrack_ros.detection.prb.variants import VARIANTS, variant_spec

# every named PRB variant at its native input size
PRB_CASES = tuple((name, int(variant_spec(name)["input_size"])) for name in VARIANTS)
