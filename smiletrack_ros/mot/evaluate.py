"""Score tracker results against MOTChallenge ground truth with TrackEval.

TrackEval's MotChallenge2DBox loader does the benchmark's own preprocessing
(MOT17: pedestrians with conf 1 only, tracker boxes matched to distractor
classes removed; MOT15: every conf != 0 box), so we feed it a temporary
MOTChallenge folder rather than re-implementing those rules. Its Evaluator
prints unconditionally, so we drive the per-sequence steps ourselves.

Files are scored as they are: the temporary copies differ from them only in
the id column, renumbered 1..n in the same order (TrackEval sizes arrays by
the largest id, and renumbers ids that way itself, so scores are unchanged).
What TrackEval allocates grows with gt ids x tracker ids and with the boxes
of one frame; both are checked against a memory budget before it runs.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io as _io
import os
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


# What TrackEval holds, in float64s: HOTA keeps ~20 (gt ids x tracker ids) arrays (one per
# alpha, plus sums), Identity and CLEAR a few more; each frame's IoU and match arrays are
# (gt boxes x tracker boxes). Measured: 5000 ids x 5000 ids in 5000-box frames, 6.5 GB RSS.
_BYTES_PER_ID_PAIR = 8 * 24
_BYTES_PER_BOX_PAIR = 8 * 8
MAX_EVAL_BYTES = 4 * 2 ** 30


def _dense_ids(ids: np.ndarray) -> np.ndarray:
    """Ids renumbered 1..n keeping their order (what TrackEval does after reading them)."""
    return np.unique(ids, return_inverse=True)[1].reshape(-1) + 1 if len(ids) else ids


def _check_size(name: str, gt: GroundTruth, results: np.ndarray, max_bytes: float) -> None:
    gt_ids, res_ids = np.unique(gt.ids).size, np.unique(results[:, 1]).size
    frames = np.union1d(gt.frames, results[:, 0]).astype(np.int64)
    per_frame = (np.bincount(np.searchsorted(frames, gt.frames), minlength=len(frames))
                 * np.bincount(np.searchsorted(frames, results[:, 0].astype(np.int64)), minlength=len(frames)))
    need = _BYTES_PER_ID_PAIR * gt_ids * res_ids + _BYTES_PER_BOX_PAIR * int(per_frame.max(initial=0))
    if need > max_bytes:
        raise ValueError(f"sequence {name}: scoring would need ~{need / 2 ** 30:.1f} GiB ({gt_ids} gt ids x "
                         f"{res_ids} tracker ids, up to {int(per_frame.max(initial=0))} box pairs in one frame); "
                         f"the limit is {max_bytes / 2 ** 30:.1f} GiB")


def _copy_with_dense_ids(src: Path, dst: Path) -> None:
    """``src`` line for line with its id column (the second) renumbered; all else as written."""
    lines = [line.split(",", 2) for line in src.read_text().splitlines() if line.strip()]
    ids = np.array([int(float(f[1])) for f in lines], np.int64)  # TrackEval reads ids this way
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text("".join(f"{f[0]},{i},{f[2]}\n" for f, i in zip(lines, _dense_ids(ids).tolist(), strict=True)))


def evaluate(sequences: Mapping[str, tuple[GroundTruth, np.ndarray]],
             num_frames: Mapping[str, int] | None = None, verbose: bool = False,
             max_bytes: float = MAX_EVAL_BYTES) -> dict[str, dict[str, float]]:
    """Evaluate named sequences: name -> (ground truth, result rows (N, 7)
    frame, id, x1, y1, x2, y2, score as ``io.read_results`` gives them).

    The arrays are written as MOT files (boxes to 2 decimals) for TrackEval;
    ``evaluate_files`` scores files exactly as they are. ``num_frames[name]``
    is the sequence length (default: the last gt or result frame). Returns
    name -> metrics (HOTA, DetA, AssA, LocA, MOTA, MOTP, IDF1, IDP, IDR in
    percent; IDSW, FP, FN, MT, ML, Frag and counts), plus ``COMBINED`` over
    all sequences when there are several. A sequence too large to score
    within ``max_bytes`` is refused (ValueError) before anything is allocated.
    """
    if not sequences:
        raise ValueError("nothing to evaluate: no sequences given")
    num_frames = dict(num_frames or {})
    with tempfile.TemporaryDirectory(prefix="smiletrack_eval_") as tmp:
        root = Path(tmp)
        entries = {}
        for name, (gt, results) in sequences.items():
            results = _as_rows(results)
            last = int(max(gt.frames.max(initial=0), results[:, 0].max(initial=0)))
            length = int(num_frames.get(name, last)) or 1
            _check_results(name, results, length)
            _check_size(name, gt, results, max_bytes)
            gt_file, res_file = root / "given" / name / "gt.txt", root / "given" / name / "res.txt"
            write_ground_truth(gt_file, dataclasses.replace(gt, ids=_dense_ids(gt.ids)))
            write_results(res_file, np.column_stack([results[:, 0], _dense_ids(results[:, 1]), results[:, 2:]]))
            entries[name] = (gt.mot17, gt_file, res_file, length)
        return _score(entries, root, verbose)


def evaluate_files(pairs: Mapping[str, tuple[str | Path, str | Path]], verbose: bool = False,
                   use_seqinfo: bool = True, max_bytes: float = MAX_EVAL_BYTES) -> dict[str, dict[str, float]]:
    """Evaluate name -> (gt.txt path, results path), the files as written. With
    ``use_seqinfo`` the length comes from ``seqinfo.ini`` beside the ``gt/``
    folder when present, else it is the last gt or result frame."""
    if not pairs:
        raise ValueError("nothing to evaluate: no sequences given")
    with tempfile.TemporaryDirectory(prefix="smiletrack_eval_") as tmp:
        root = Path(tmp)
        entries = {}
        for name, (gt_path, res_path) in pairs.items():
            gt, results = read_ground_truth(gt_path), read_results(res_path)  # checks the format, names the file
            length = sequence_length(Path(gt_path).parent.parent) if use_seqinfo else None
            if length is None:
                length = int(max(gt.frames.max(initial=0), results[:, 0].max(initial=0))) or 1
            _check_results(name, results, length)
            _check_size(name, gt, results, max_bytes)
            entries[name] = (gt.mot17, Path(gt_path), Path(res_path), length)
        return _score({name: (mot17, *_dense_copies(root, name, gt_path, res_path), length)
                       for name, (mot17, gt_path, res_path, length) in entries.items()}, root, verbose)


def _dense_copies(root: Path, name: str, gt_path: Path, res_path: Path) -> tuple[Path, Path]:
    gt_copy, res_copy = root / "given" / name / "gt.txt", root / "given" / name / "res.txt"
    _copy_with_dense_ids(gt_path, gt_copy)
    _copy_with_dense_ids(res_path, res_copy)
    return gt_copy, res_copy


def _score(entries: Mapping[str, tuple[bool, Path, Path, int]], root: Path,
           verbose: bool) -> dict[str, dict[str, float]]:
    """TrackEval on name -> (MOT17 layout?, gt file, results file, length), files used as they are."""
    import trackeval

    metrics = _metrics(verbose)
    names = [m.get_name() for m in metrics]
    per_seq: dict[str, dict[str, dict]] = {}
    for convention in (False, True):
        group = {n: e for n, e in entries.items() if e[0] == convention}
        if not group:
            continue
        bench = "MOT17" if convention else "MOT15"
        for name, (_, gt_file, res_file, _) in group.items():
            (root / bench / "gt" / name / "gt").mkdir(parents=True)
            (root / bench / "trackers" / _TRACKER / "data").mkdir(parents=True, exist_ok=True)
            os.link(gt_file, root / bench / "gt" / name / "gt" / "gt.txt")
            os.link(res_file, root / bench / "trackers" / _TRACKER / "data" / f"{name}.txt")
        config = {"GT_FOLDER": str(root / bench / "gt"), "TRACKERS_FOLDER": str(root / bench / "trackers"),
                  "BENCHMARK": bench, "SKIP_SPLIT_FOL": True, "SEQ_INFO": {n: e[3] for n, e in group.items()},
                  "TRACKERS_TO_EVAL": [_TRACKER], "PRINT_CONFIG": verbose, "DO_PREPROC": True}
        with contextlib.nullcontext() if verbose else contextlib.redirect_stdout(_io.StringIO()):
            dataset = trackeval.datasets.MotChallenge2DBox(config)
            for name in group:
                try:
                    res = trackeval.eval.eval_sequence(name, dataset, _TRACKER, ["pedestrian"], metrics, names)
                except trackeval.utils.TrackEvalException as err:
                    raise ValueError(f"sequence {name}: {err}") from None
                per_seq[name] = res["pedestrian"]
    out = {name: _flatten(per_seq[name]) for name in entries}
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
