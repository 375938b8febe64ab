"""Synthetic long-occlusion scenes (issue 13): people hidden for seconds behind pillars
and behind each other, tracked by our presets and BoxMOT's, fed the same detections
and the same SLM embeddings of the rendered crops, at 25, 12.5 and 5 fps.

Scenes come from smiletrack_ros.scene with two static occluders and slow walkers,
so that crossing a pillar hides a person for about 1-5 s. Ground truth is the
scene's; people hidden entirely are not scored (conf 0, as in MOTChallenge). An extra table
scores the same runs with people under a fifth visible ignored (MOTChallenge distractors).
Every embedder of the suite (``--embedder``) embeds the rendered crops in turn.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from bench.suite.framecache import CachedFrame, FrameCache, load_if_matching
from bench.suite.measure import progress
from bench.suite.models import NO_EMBEDDER
from bench.suite.peers import APPEARANCE_PEERS, PEER_TRACKERS, PeerRun, run_peers
from bench.suite.rates import STEPS, peer_python, run_ours, subsample
from bench.suite.report import Report

# Seeds 0, 1 (and 4, 5, ...): two pillars, each a quarter of the width (people hidden about 1-2.5 s); seeds
# 2, 3 (6, 7, ...): one pillar 0.42 of the width (about 2.5-5 s at the same walking speeds): together the 1-5 s
# asked. Seeds beyond the four shown by default (--occlusion-seeds) are held out from any tuning.
LAYOUTS = (((0.2, 0.44), (0.6, 0.84)), ((0.29, 0.71),))
FPS = 25.0
PRESETS = ("reid", "paper", "official", "bytetrack")
ORACLE = "oracle-true-ids"
COLUMNS = ["embedder", "fps", "tracker", "HOTA", "DetA", "AssA", "IDF1", "IDSW"]   # of both tables


def scene_config(seed: int):
    from smiletrack_ros.scene import SceneConfig

    return SceneConfig(num_people=5, num_frames=300, fps=FPS, seed=seed, walk_speed=(0.3, 0.7),
                       occluders=LAYOUTS[(seed // 2) % 2], det_false_positives=0.3)


def scene_code() -> str:
    """Digest of the scene generator's source: a changed renderer or detector model remakes the cache."""
    import smiletrack_ros.scene as scene

    digest = hashlib.sha256()
    for path in sorted(Path(scene.__file__).parent.glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def scene_inputs(seed: int, label: str, embedder, cache_dir: Path,
                 show: bool) -> tuple[FrameCache, np.ndarray, np.ndarray]:
    """(detections + embeddings of ``embedder`` (None: none), ground truth rows frame, id, x1, y1, x2, y2,
    visibility, and per detection the identity it came from (-1: false positive)), cached per scene,
    scene code and embedder."""
    from smiletrack_ros.scene import generate_scene

    config = scene_config(seed)
    description = embedder.description if embedder is not None else {"embedder": NO_EMBEDDER}
    meta = {"scene": {k: list(v) if isinstance(v, tuple) else v for k, v in config.__dict__.items()},
            "scene_code": scene_code(), "embedder": description}
    key = hashlib.sha256(repr(sorted(meta.items())).encode()).hexdigest()[:16]
    path = cache_dir / f"occlusion_{seed}__{label.replace(':', '-')}-{key}.npz"
    cached = load_if_matching(path, meta)
    truth_path, sources_path = path.with_suffix(".truth.npy"), path.with_suffix(".sources.npy")
    if cached is not None and truth_path.is_file() and sources_path.is_file():
        return cached, np.load(truth_path), np.load(sources_path)
    frames, truth, sources = [], [], []
    scene = generate_scene(config)
    for f in progress(scene.frames(), len(scene), f"occlusion scene {seed}", show):
        dets = f.detections
        vectors = embedder.model(f.image, dets.boxes) if len(dets) and embedder is not None else None
        frames.append(CachedFrame(f.index, dets.boxes.astype(np.float32), dets.scores.astype(np.float32),
                                  dets.class_ids.astype(np.int64), vectors))
        truth.append(np.column_stack([np.full(len(f.truth), f.index), f.truth.ids, f.truth.boxes,
                                      f.truth.visibility]))
        sources.append(f.truth.detection_ids)
    cache = FrameCache.from_frames(frames, FPS, meta)
    cache.save(path)
    rows = np.concatenate(truth).astype(np.float64)
    np.save(truth_path, rows)
    detection_ids = np.concatenate(sources).astype(np.int64)
    np.save(sources_path, detection_ids)
    return cache, rows, detection_ids


def oracle_rows(cache: FrameCache, sources: np.ndarray) -> np.ndarray:
    """The detections labelled with the identity each came from, false positives dropped: perfect
    association of these detections, the ceiling of any tracker that reports only what is detected."""
    frames = np.repeat(cache.frames, cache.counts)
    keep = sources >= 0
    return np.column_stack([frames[keep], sources[keep], cache.boxes[keep], cache.scores[keep]]).astype(np.float64)


def hidden_seconds(truth: np.ndarray, visible: float = 0.2) -> np.ndarray:
    """Length of every span in which a person who was seen and is seen again shows less
    than ``visible`` of the body (the simulated detector then finds them rarely)."""
    spans = []
    for pid in np.unique(truth[:, 1]):
        rows = truth[truth[:, 1] == pid]
        seen = rows[rows[:, 6] >= visible, 0]
        gaps = np.diff(np.sort(seen)) - 1
        spans.extend(gaps[gaps > 0] / FPS)
    return np.asarray(spans)


# The extra table's scoring: people showing less than this fraction of the body are ignored.
IGNORED_BELOW = 0.2


def _score(truth: np.ndarray, rows: np.ndarray, step: int, length: int,
           ignore_below: float | None = None) -> dict[str, float]:
    """TrackEval on every ``step``-th frame. People hidden entirely are not scored (conf 0); with
    ``ignore_below``, people showing less than that are MOTChallenge distractors instead: not
    scored, and a tracker box on one is dropped rather than counted as a false positive."""
    from smiletrack_ros.mot.evaluate import evaluate
    from smiletrack_ros.mot.io import DISTRACTOR_CLASS, PEDESTRIAN_CLASS, GroundTruth

    keep = (truth[:, 0].astype(np.int64) - 1) % step == 0
    t = truth[keep]
    if ignore_below is None:
        conf, classes = (t[:, 6] > 0).astype(np.float32), np.full(len(t), PEDESTRIAN_CLASS, np.int64)
    else:
        conf = np.ones(len(t), np.float32)
        classes = np.where(t[:, 6] < ignore_below, DISTRACTOR_CLASS, PEDESTRIAN_CLASS).astype(np.int64)
    gt = GroundTruth(frames=((t[:, 0] - 1) // step + 1).astype(np.int64), ids=t[:, 1].astype(np.int64),
                     boxes=t[:, 2:6].astype(np.float32), conf=conf,
                     classes=classes, visibility=t[:, 6].astype(np.float32), mot17=True)
    r = rows[(rows[:, 0].astype(np.int64) - 1) % step == 0].copy()
    r[:, 0] = (r[:, 0] - 1) // step + 1
    return evaluate({"scene": (gt, r)}, {"scene": (length - 1) // step + 1})["scene"]


def run(settings, maker, report: Report) -> None:
    cache_dir = settings.out_dir / "cache" / "occlusion"
    embedders = maker.labels
    seeds = settings.occlusion_seeds
    inputs = {(seed, emb): scene_inputs(seed, emb, maker.embedder(emb), cache_dir, settings.progress)
              for emb in embedders for seed in seeds}
    truths = {seed: inputs[(seed, embedders[0])][1] for seed in seeds}
    spans = np.concatenate([hidden_seconds(truth) for truth in truths.values()])
    runs: dict[tuple[str, int, str], list[np.ndarray]] = {}
    subsampled = {(seed, emb, step): subsample(cache, step) for (seed, emb), (cache, _, _) in inputs.items()
                  for step in STEPS}
    for (seed, emb, step), cache in subsampled.items():  # seed by seed, in the order given
        for preset in PRESETS:
            runs.setdefault((emb, step, f"ours-{preset}"), []).append(run_ours(cache, FPS, preset, {}))
        full, _, sources = inputs[(seed, emb)]
        runs.setdefault((emb, step, ORACLE), []).append(oracle_rows(full, sources))
    notes = []
    python = peer_python(notes) if settings.peers else None
    if python is not None:
        jobs, keys = [], {}
        for (seed, emb, step), cache in subsampled.items():
            trackers = tuple(p for p in PEER_TRACKERS if (p in APPEARANCE_PEERS and emb != NO_EMBEDDER)
                             or (p not in APPEARANCE_PEERS and emb == embedders[0]))
            if not trackers:
                continue
            key = f"occlusion_{seed}__{emb.replace(':', '-')}__{step}"
            keys[key] = (emb, step)
            jobs.append(PeerRun(key, cache.save(cache_dir / f"{key}.npz"), cache.frame_rate, trackers,
                                seq_dir=None, image_size=(480, 640), rows_dir=cache_dir / key))
        for key, per_tracker in run_peers(python, jobs, settings.folder("accuracy") / "peers_occlusion").items():
            emb, step = keys[key]
            for peer, res in per_tracker.items():
                if res.error:
                    notes.append(f"{peer} on {key} failed: {res.error}")
                    continue
                for e in ((emb,) if peer in APPEARANCE_PEERS else embedders):
                    runs.setdefault((e, step, f"boxmot-{peer}"), []).append(np.load(res.rows))
    length = int(inputs[(seeds[0], embedders[0])][0].frames.max())

    def scored(ignore_below: float | None) -> list[list]:
        table = []
        for (emb, step, tracker), per_seed in runs.items():
            if len(per_seed) < len(seeds):
                continue
            metrics = [_score(truths[seed], rows, step, length, ignore_below)
                       for seed, rows in zip(seeds, per_seed, strict=True)]
            table.append([emb, FPS / step, tracker,
                          *(float(np.mean([m[k] for m in metrics])) for k in ("HOTA", "DetA", "AssA", "IDF1")),
                          int(sum(m["IDSW"] for m in metrics))])
        return sorted(table, key=lambda r: (embedders.index(r[0]), -r[1], -r[6]))

    table, visible_table = scored(None), scored(IGNORED_BELOW)
    report.text("## Synthetic long occlusions\n\n"
                f"{len(seeds)} seeded scenes (seeds {', '.join(map(str, seeds))}; {length} frames at {FPS:g} fps, "
                f"5 slow walkers; two pillars, or one wide one), "
                f"subsampled like the real sequences; each embedder's embeddings of the rendered crops for every "
                f"appearance tracker ({', '.join(APPEARANCE_PEERS)} among the peers). " + span_summary(spans)
                + "\n\n" + "\n".join(f"- {n}" for n in notes))
    report.table("synthetic long-occlusion scenes (mean over scenes; IDSW summed)",
                 COLUMNS, table, digits=1)
    report.data["occlusion"] = {f"{r[0]}|{r[1]}|{r[2]}": r[3:] for r in table}
    # How hidden people count is the issue author's call: the same runs, people under a fifth visible ignored.
    report.text(f"### The same runs, people under {IGNORED_BELOW:.0%} visible ignored\n\n"
                f"An extra scoring, next to the table above (which it does not replace): truth rows of people showing "
                f"less than {IGNORED_BELOW:.0%} of the body (whom the simulated detector, like a real one, rarely "
                f"finds) are MOTChallenge distractors, neither a miss when not tracked nor a false positive when "
                f"tracked; every other row is scored as above. The `{ORACLE}` row is the ceiling again.")
    report.table(f"synthetic long-occlusion scenes, people under {IGNORED_BELOW:.0%} visible ignored (mean over "
                 "scenes; IDSW summed)", COLUMNS,
                 visible_table, digits=1)
    report.data["occlusion_visible"] = {f"{r[0]}|{r[1]}|{r[2]}": r[3:] for r in visible_table}
    report.data["occlusion_hidden_seconds"] = sorted(float(x) for x in spans)


def span_summary(spans: np.ndarray) -> str:
    """How long people stay hidden between two sightings: count, quantiles, share >= 1 s, longest."""
    if len(spans) == 0:
        return "No one is hidden between two sightings."
    q = np.quantile(spans, [0.25, 0.5, 0.75])
    return (f"People hidden (under a fifth of the body showing) between two sightings: {len(spans)} spans, "
            f"quartiles {q[0]:.1f} / {q[1]:.1f} / {q[2]:.1f} s, {np.mean(spans >= 1.0) * 100:.0f}% >= 1 s, "
            f"{np.mean(spans >= 3.0) * 100:.0f}% >= 3 s, longest {spans.max():.1f} s.")
