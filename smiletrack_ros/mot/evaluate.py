"""Score tracker results against MOTChallenge ground truth with TrackEval.

TrackEval's MotChallenge2DBox loader does the benchmark's own preprocessing
(MOT17: pedestrians with conf 1 only, tracker boxes matched to distractor
classes removed; MOT15: every conf != 0 box), so we feed it a temporary
MOTChallenge folder rather than re-implementing those rules. Its Evaluator
prints unconditionally, so we drive the per-sequence steps ourselves.
"""
from __future__ import annotations

import contextlib
import io as _io
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from smiletrack_ros.mot.io import (
    GroundTruth,
    MotFormatError,
    load_sequence_info,
    read_ground_truth,
    read_results,
    write_ground_truth,
    write_results,
)

COMBINED = "COMBINED"
# TrackEval field -> our key; fractions are reported in percent like TrackEval's tables.
_PERCENT_FIELDS = {"HOTA": "HOTA", "DetA": "DetA", "AssA": "AssA", "LocA": "LocA", "MOTA": "MOTA",
                   "MOTP": "MOTP", "IDF1": "IDF1", "IDP": "IDP", "IDR": "IDR"}
_COUNT_FIELDS = {"IDSW": "IDSW", "CLR_FP": "FP", "CLR_FN": "FN", "MT": "MT", "ML": "ML", "Frag": "Frag",
                 "Dets": "Dets", "GT_Dets": "GT_Dets", "IDs": "IDs", "GT_IDs": "GT_IDs"}
_TRACKER = "tracker"


def _metrics(verbose: bool):
    import trackeval

    quiet = {"PRINT_CONFIG": verbose}
    return [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR(dict(quiet)), trackeval.metrics.Identity(dict(quiet)),
            trackeval.metrics.Count()]


def _flatten(per_metric: Mapping[str, Mapping[str, object]]) -> dict[str, float]:
    merged: dict[str, object] = {}
    for fields in per_metric.values():
        merged.update(fields)
    out = {ours: 100.0 * float(np.mean(merged[theirs])) for theirs, ours in _PERCENT_FIELDS.items()}
    out.update({ours: float(merged[theirs]) for theirs, ours in _COUNT_FIELDS.items()})
    return out


def _as_rows(results: np.ndarray) -> np.ndarray:
    return np.asarray(results, np.float64).reshape(-1, 7) if np.size(results) else np.zeros((0, 7))


def _check_results(name: str, results: np.ndarray, num_frames: int) -> np.ndarray:
    frames = results[:, 0]
    if frames.size and (frames.min() < 1 or frames.max() > num_frames):
        raise ValueError(f"sequence {name}: result frames span {int(frames.min())}..{int(frames.max())}, "
                         f"outside the evaluated 1..{num_frames}")
    keys = results[:, 0] * (1 << 32) + results[:, 1]
    if np.unique(keys).size != keys.size:
        raise ValueError(f"sequence {name}: a track id appears twice in one frame")
    return results


def evaluate(sequences: Mapping[str, tuple[GroundTruth, np.ndarray]],
             num_frames: Mapping[str, int] | None = None, verbose: bool = False) -> dict[str, dict[str, float]]:
    """Evaluate named sequences: name -> (ground truth, result rows (N, 7)
    frame, id, x1, y1, x2, y2, score as ``io.read_results`` gives them).

    ``num_frames[name]`` is the sequence length (default: the last gt or
    result frame). Returns name -> metrics (HOTA, DetA, AssA, LocA, MOTA,
    MOTP, IDF1, IDP, IDR in percent; IDSW, FP, FN, MT, ML, Frag and counts),
    plus ``COMBINED`` over all sequences when there are several.
    """
    import trackeval

    if not sequences:
        raise ValueError("nothing to evaluate: no sequences given")
    num_frames = dict(num_frames or {})
    metrics = _metrics(verbose)
    names = [m.get_name() for m in metrics]
    per_seq: dict[str, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory(prefix="smiletrack_eval_") as tmp:
        root = Path(tmp)
        for convention in (False, True):
            group = {n: v for n, v in sequences.items() if v[0].mot17 == convention}
            if not group:
                continue
            bench = "MOT17" if convention else "MOT15"
            lengths = {}
            for name, (gt, results) in group.items():
                results = _as_rows(results)
                last = int(max(gt.frames.max(initial=0), results[:, 0].max(initial=0)))
                lengths[name] = int(num_frames.get(name, last)) or 1
                write_ground_truth(root / bench / "gt" / name / "gt" / "gt.txt", gt)
                write_results(root / bench / "trackers" / _TRACKER / "data" / f"{name}.txt",
                              _check_results(name, results, lengths[name]))
            config = {"GT_FOLDER": str(root / bench / "gt"), "TRACKERS_FOLDER": str(root / bench / "trackers"),
                      "BENCHMARK": bench, "SKIP_SPLIT_FOL": True, "SEQ_INFO": lengths,
                      "TRACKERS_TO_EVAL": [_TRACKER], "PRINT_CONFIG": verbose, "DO_PREPROC": True}
            with contextlib.nullcontext() if verbose else contextlib.redirect_stdout(_io.StringIO()):
                dataset = trackeval.datasets.MotChallenge2DBox(config)
                for name in group:
                    try:
                        res = trackeval.eval.eval_sequence(name, dataset, _TRACKER, ["pedestrian"], metrics, names)
                    except trackeval.utils.TrackEvalException as err:
                        raise ValueError(f"sequence {name}: {err}") from None
                    per_seq[name] = res["pedestrian"]
    out = {name: _flatten(per_seq[name]) for name in sequences}
    if len(per_seq) > 1:
        out[COMBINED] = _flatten({m.get_name(): m.combine_sequences({s: r[m.get_name()] for s, r in per_seq.items()})
                                  for m in metrics})
    return out


def sequence_length(seq_dir: Path) -> int | None:
    """seqinfo.ini's length, or None when the folder has none."""
    try:
        return load_sequence_info(seq_dir).length
    except MotFormatError:
        return None


def evaluate_files(pairs: Mapping[str, tuple[str | Path, str | Path]], verbose: bool = False,
                   use_seqinfo: bool = True) -> dict[str, dict[str, float]]:
    """Evaluate name -> (gt.txt path, results path). With ``use_seqinfo`` the
    length comes from ``seqinfo.ini`` beside the ``gt/`` folder when present."""
    sequences, lengths = {}, {}
    for name, (gt_path, res_path) in pairs.items():
        sequences[name] = (read_ground_truth(gt_path), read_results(res_path))
        length = sequence_length(Path(gt_path).parent.parent) if use_seqinfo else None
        if length is not None:
            lengths[name] = length
    return evaluate(sequences, lengths, verbose=verbose)


def format_table(results: Mapping[str, Mapping[str, float]],
                 keys: tuple[str, ...] = ("HOTA", "DetA", "AssA", "MOTA", "IDF1", "IDSW")) -> str:
    """A plain-text table, one row per sequence."""
    known = set(_PERCENT_FIELDS.values()) | set(_COUNT_FIELDS.values())
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; known: {sorted(known)}")
    width = max([len(k) for k in results] + [8])
    lines = [f"{'sequence':<{width}} " + " ".join(f"{k:>7}" for k in keys)]
    for name, metrics in results.items():
        cells = [f"{metrics[k]:7.0f}" if k in _COUNT_FIELDS.values() else f"{metrics[k]:7.2f}" for k in keys]
        lines.append(f"{name:<{width}} " + " ".join(cells))
    return "\n".join(lines)
