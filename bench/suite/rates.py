"""Accuracy across frame rates, detection sources and embedders (issue 13).

Every TUD sequence at its native rate and subsampled (every 2nd / 5th frame: 25,
12.5 and 5 fps), ground truth subsampled the same way and the rate passed on
as the sequence's own; detections from each source; embeddings from each of the
suite's embedders (``--embedder BACKEND:WEIGHTS``, any backend of the package; by
default our SLM and OSNet x0.25 through the ``onnx`` backend). Our presets (the
``reid`` one, the paper's, and ablations of ``reid``) and BoxMOT's trackers replay
the same cached inputs; TrackEval scores the TUD sequences combined.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from bench.suite.framecache import FrameCache
from bench.suite.measure import progress
from bench.suite.models import NO_EMBEDDER
from bench.suite.peers import APPEARANCE_PEERS, PEER_TRACKERS, PeerRun, find_peer_python, peer_note, run_peers
from bench.suite.report import Report, new_figure

METRICS = ("HOTA", "DetA", "AssA", "IDF1", "IDSW")
STEPS = (1, 2, 5)
SOURCES = ("public", "yolox")
MOTION_PEERS = tuple(p for p in PEER_TRACKERS if p not in APPEARANCE_PEERS)


def _reid_stages(**change):
    from smiletrack_ros.tracking.config import REID_STAGES

    return tuple(replace(s, **change) if s.name == "reid" else s for s in REID_STAGES)


def ours(ablation: bool = True) -> dict[str, tuple[str, dict]]:
    """Our presets, then (``ablation``) the ablation of each part of ``reid`` (one part changed at a time),
    and the candidate changes tried for issue 13's 25 fps gap (``attempts``)."""
    from smiletrack_ros.tracking.config import PAPER_STAGES

    presets = {
        "ours-reid": ("reid", {}),
        "ours-paper": ("paper", {}),
        "ours-official": ("official", {}),
        "ours-bytetrack": ("bytetrack", {}),
    }
    if not ablation:
        return presets
    return presets | {
        "abl-reid-no-reid-stage": ("reid", {"stages": PAPER_STAGES}),
        "abl-reid-1s-memory": ("reid", {"lost_track_seconds": 1.0}),
        "abl-reid-motion-in-seconds": ("reid", {"motion_reference_fps": 30.0}),
        "abl-reid-ema-feature": ("reid", {"track_feature": "ema"}),
        "abl-reid-fixed-radius": ("reid", {"reid_max_speed": 0.0}),
        "abl-reid-gate-mahalanobis": ("reid", {"reid_gate": "mahalanobis"}),
        "abl-reid-gate-both": ("reid", {"reid_gate": "both"}),
        "abl-reid-high-boxes-only": ("reid", {"stages": _reid_stages(detections="high")}),
        "abl-reid-no-appearance-gate": ("reid", {"appearance_gate": None}),
        "abl-reid-no-impostor-floor": ("reid", {"reid_impostor_quantile": None}),
        "abl-reid-impostor-pairs-counted-once": ("reid", {"impostor_reference_fps": None}),
        "abl-reid-ambiguous-matches-allowed": ("reid", {"reid_margin": None}),
        "abl-reid-every-box-updates-appearance": ("reid", {"appearance_min_score": None}),
    } | {name: ("reid", change) for name, change in attempts().items()}


def attempts() -> dict[str, dict]:
    """Changes to ``reid`` tried for the 25 fps gap and not adopted (each judged on every cell; the one
    adopted, appearance from confident boxes only, is now ``reid``'s and its ablation row above):
    - stage 1 on the feature bank: a track's best template, not its latest feature (which may come
      from a partly hidden view just before it was lost), scores every confirmed track;
    - a lost-track stage on the bank: tracked tracks take the high boxes first (fused, latest
      feature), then lost ones, on the bank, before stage 2;
    - re-identification in the low band too: a person coming out from behind an occluder is
      partly hidden, so scores low; the re-ID stage (its gates unchanged) also sees those boxes."""
    from smiletrack_ros.tracking.config import REID_STAGES, Stage

    stage1, stage2, reid, unconfirmed = REID_STAGES
    lost_bank = Stage("stage1-lost", tracks="lost", detections="high", cost="bank", threshold="stage1_match_threshold")
    reid_low = Stage("reid-low", tracks="lost", detections="low", cost="reid", threshold="reid_match_threshold")
    return {
        "abl-reid-stage1-bank": {"stages": (replace(stage1, cost="bank"), stage2, reid, unconfirmed)},
        "abl-reid-lost-bank-stage": {"stages": (replace(stage1, tracks="tracked"), lost_bank, stage2, reid,
                                                unconfirmed)},
        "abl-reid-reid-low-band": {"stages": (stage1, stage2, reid, reid_low, unconfirmed)},
    }


def subsample(cache: FrameCache, step: int) -> FrameCache:
    """Every ``step``-th frame (1, 1 + step, ...), original numbers kept, rate divided."""
    frames = [f for f in cache if (f.frame - 1) % step == 0]
    return FrameCache.from_frames(frames, cache.frame_rate / step, {**cache.meta, "step": step})


def run_ours(cache: FrameCache, native_fps: float, preset: str, overrides: dict) -> np.ndarray:
    """Rows (frame, id, x1, y1, x2, y2, score) in original frame numbers; stamps from them."""
    from smiletrack_ros.tracking import SmileTracker, TrackerConfig

    tracker = SmileTracker(TrackerConfig.from_preset(preset, **overrides), frame_rate=cache.frame_rate)
    rows: list[tuple] = []
    for item in cache:
        tracks = tracker.update(item.boxes, item.scores, class_ids=item.class_ids, embeddings=item.embeddings,
                                timestamp=(item.frame - 1) / native_fps)
        rows.extend((item.frame, t.track_id, *map(float, t.box), t.score) for t in tracks)
    return np.asarray(rows, np.float64).reshape(-1, 7)


def _renumbered(rows: np.ndarray, step: int) -> np.ndarray:
    rows = rows[(rows[:, 0].astype(np.int64) - 1) % step == 0].copy()
    rows[:, 0] = (rows[:, 0] - 1) // step + 1
    return rows


def _ground_truth(seq, step: int):
    from smiletrack_ros.mot.io import read_ground_truth

    gt = read_ground_truth(seq.folder / "gt" / "gt.txt")
    gt = gt.select((gt.frames <= seq.length) & ((gt.frames - 1) % step == 0))
    return replace(gt, frames=(gt.frames - 1) // step + 1)


def _score(seqs, step: int, rows: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """TrackEval per sequence, and the sequences combined under ``COMBINED`` (one sequence: itself)."""
    from smiletrack_ros.mot.evaluate import COMBINED, evaluate

    result = evaluate({s.name: (_ground_truth(s, step), _renumbered(rows[s.name], step)) for s in seqs},
                      {s.name: (s.length - 1) // step + 1 for s in seqs})
    result.setdefault(COMBINED, result[seqs[0].name])
    return result


def peer_python(notes: list[str]):
    """The peer venv's python (made when missing), or None; says which in ``notes``."""
    python, description = find_peer_python(install=True)
    notes.append(f"Peers skipped: {description}." if python is None else peer_note(description))
    return python


def run(settings, maker, seqs, report: Report) -> None:
    """Adds the frame-rate tables, the per-embedder table and the HOTA-vs-rate plot to the accuracy ``report``."""
    from smiletrack_ros.mot.evaluate import COMBINED

    seqs = [s for s in seqs if not s.format_check]
    if not seqs:
        return
    embedders = maker.labels
    work = settings.out_dir / "cache" / "rates"
    caches: dict[tuple[str, str, str, int], FrameCache] = {}
    for seq in seqs:
        for src in SOURCES:
            for emb in embedders:
                cache = maker.cache(seq, src, emb)
                for step in STEPS:
                    caches[(seq.name, src, emb, step)] = subsample(cache, step)
    native = {s.name: s.frame_rate for s in seqs}
    runs: dict[tuple[str, str, int, str], dict[str, np.ndarray]] = {}   # (src, emb, step, tracker) -> seq -> rows
    variants = ours(settings.ablation)
    for (name, src, emb, step), cache in progress(caches.items(), len(caches), "ours x rates", settings.progress):
        for label, (preset, overrides) in variants.items():
            runs.setdefault((src, emb, step, label), {})[name] = run_ours(cache, native[name], preset, overrides)
    notes = []
    peers: list[str] = []
    python = peer_python(notes) if settings.peers else None
    if python is not None:
        jobs, keys = [], {}
        for (name, src, emb, step), cache in caches.items():
            # motion-only peers do not depend on the embedder: run once, on the first embedder's cache
            trackers = (APPEARANCE_PEERS if emb != NO_EMBEDDER else ()) + (MOTION_PEERS if emb == embedders[0]
                                                                            else ())
            if not trackers:
                continue
            key = f"{name}__{src}__{emb.replace(':', '-')}__{step}"
            path = cache.save(work / f"{key}.npz")
            seq_dir = next(s.folder for s in seqs if s.name == name)
            jobs.append(PeerRun(key, path, cache.frame_rate, trackers, seq_dir=seq_dir, rows_dir=work / key))
            keys[key] = (name, src, emb, step)
        for key, per_tracker in run_peers(python, jobs, settings.folder("accuracy") / "peers_rates").items():
            name, src, emb, step = keys[key]
            for peer, res in per_tracker.items():
                if res.error:
                    notes.append(f"{peer} on {key} failed: {res.error}")
                    continue
                for e in ((emb,) if peer in APPEARANCE_PEERS else embedders):
                    runs.setdefault((src, e, step, f"boxmot-{peer}"), {})[name] = np.load(res.rows)
        peers = [f"boxmot-{p}" for p in MOTION_PEERS + APPEARANCE_PEERS]
    trackers = [t for t in variants if not t.startswith("abl-")] + peers
    results: dict[tuple[str, str, int, str], dict[str, dict[str, float]]] = {}
    for key, rows in progress(runs.items(), len(runs), "TrackEval", settings.progress):
        if len(rows) == len(seqs):
            results[key] = _score(seqs, key[2], rows)
    scores = {key: result[COMBINED] for key, result in results.items()}
    rate = {step: seqs[0].frame_rate / step for step in STEPS}
    described = ", ".join(f"`{e}` ({maker.description(e)['embedder']})" for e in embedders)
    report.text("## Frame rates x detection sources x embedders (TUD sequences combined)\n\n"
                f"Sequences {', '.join(s.name for s in seqs)} at every frame, every 2nd and every 5th (ground truth "
                "subsampled alike, the rate passed on as the sequence's). Embedders (the package's backends, "
                f"`--embedder`): {described}; "
                "each is fed to every appearance tracker alike (`none`: no embeddings, our presets only); "
                "motion-only peers (bytetrack, ocsort) do not depend on the embedder. No per-sequence tuning.\n\n"
                + "\n".join(f"- {n}" for n in notes))
    table = [[src, emb, rate[step], t, *(_metric(scores[(src, emb, step, t)], m) for m in METRICS)]
             for src in SOURCES for emb in embedders for step in STEPS for t in trackers
             if (src, emb, step, t) in scores]
    report.table("trackers x frame rate x detection source x embedder", ["source", "embedder", "fps", "tracker",
                                                                        *METRICS], table, digits=1)
    _per_embedder(report, results, seqs, embedders, rate)
    if settings.ablation:
        ablation = [[src, emb, rate[step], t, *(_metric(scores[(src, emb, step, t)], m) for m in METRICS)]
                    for src in SOURCES for emb in embedders for step in STEPS
                    for t in ("ours-reid", *(v for v in variants if v.startswith("abl-")))
                    if (src, emb, step, t) in scores]
        report.table("ablation of the reid preset (one part changed at a time)",
                     ["source", "embedder", "fps", "variant", *METRICS], ablation, digits=1)
    report.data["rates"] = {"|".join(map(str, k)): v for k, v in scores.items()}
    report.data["rates_per_sequence"] = {"|".join(map(str, k)): v for k, v in results.items()}
    _plot(report, scores, trackers, rate, embedders)


def _per_embedder(report: Report, results: dict, seqs, embedders: list[str], rate: dict[int, float]) -> None:
    """The node's default preset (``reid``) with each embedder: per sequence and combined, HOTA / IDF1 / IDSW."""
    from smiletrack_ros.mot.evaluate import COMBINED

    names = [s.name for s in seqs] + ([COMBINED] if len(seqs) > 1 else [])
    rows = []
    for step in STEPS:
        for src in SOURCES:
            for emb in embedders:
                result = results.get((src, emb, step, "ours-reid"))
                if result is not None:
                    rows.append([src, rate[step], emb, *(_metric(result[n], m) for n in names
                                                          for m in ("HOTA", "IDF1", "IDSW"))])
    report.table("the reid preset (the node's default) with each embedder",
                 ["source", "fps", "embedder", *(f"{n} {m}" for n in names for m in ("HOTA", "IDF1", "IDSW"))],
                 rows, digits=1)


def _metric(metrics: dict[str, float], key: str) -> float | int:
    return int(metrics[key]) if key == "IDSW" else metrics[key]


def _plot(report: Report, scores: dict, trackers: list[str], rate: dict[int, float], embedders: list[str]) -> None:
    fig, _ = new_figure(5.5 * len(embedders), 7.5)
    fig.clf()
    axes = np.asarray(fig.subplots(2, len(embedders))).reshape(-1)
    for ax, (src, emb) in zip(axes, [(s, e) for s in SOURCES for e in embedders], strict=True):
        for t in trackers:
            values = [scores.get((src, emb, step, t), {}).get("HOTA", np.nan) for step in STEPS]
            ax.plot([rate[s] for s in STEPS], values, marker="o", label=t,
                    linewidth=2.5 if t == "ours-reid" else 1.0)
        ax.set_title(f"{src} detections, {emb} embeddings", fontsize=9)
        ax.set_xlabel("frames per second")
        ax.set_ylabel("HOTA (%)")
        ax.set_xticks([rate[s] for s in STEPS])
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    report.figure(fig, "accuracy_hota_vs_fps", "HOTA against frame rate, TUD combined")
