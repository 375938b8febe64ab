"""Ground-plane accuracy on metric synthetic scenes: scene -> simulated detector -> 2D tracker -> ground filter.

Every frame, each track matched to a detection of a real person is compared
with that person's metric truth: position error relative to range, velocity
error, and the normalised estimation error squared (NEES) of the 4-dof state
against its covariance. ``python -m smiletrack_ros.scene.ground_eval`` runs a
grid of camera heights and pitches, prints the figures and writes a top-down PNG.
With ``--cache DIR`` the 2D stage's output of each scene is kept there (plain
arrays, no pickle), so that filter settings re-run in seconds.
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import chi2

from smiletrack_ros.embedding import EmbedderConfig
from smiletrack_ros.embedding.factory import AppearanceEmbedder, build_embedder
from smiletrack_ros.ground import (
    GroundProjector,
    GroundStatus,
    GroundTracker,
    MotionConfig,
    PixelNoise,
    ProjectionConfig,
)
from smiletrack_ros.pipeline import Pipeline
from smiletrack_ros.scene.camera import SceneCamera
from smiletrack_ros.scene.config import SceneConfig
from smiletrack_ros.scene.floor_walkers import FloorTruth
from smiletrack_ros.scene.scene import FrameTruth, generate_scene
from smiletrack_ros.tracking import PRESETS, SmileTracker, TrackerConfig, TrackOutput, TrackState


def matched_projection(config: SceneConfig) -> ProjectionConfig:
    """The projection settings calibrated on the scene's simulated detector, as one would on a real
    one: each box edge jitters by ``det_box_noise`` of the box size, the figures' swinging limbs
    move the box centre by about as much again across, and boxes of people less than ~85%
    visible (scores below 0.7) are cut to what shows (measured by ``calibrate_foot_noise``)."""
    return ProjectionConfig(noise=PixelNoise(x_fraction=config.det_box_noise * 1.05, y_fraction=config.det_box_noise,
                                             floor_px=0.5), min_score=0.7)


@dataclass(frozen=True)
class Samples:
    """One row per (frame, track matched to a real person) with a ground estimate.

    A measured estimate is scored against the person behind the frame's detection. A predicted
    one (the filter refused this frame's box) is scored against the person the filter last
    measured: the refused box may be someone else's (ByteTrack's second stage matches low-score,
    mostly occluded boxes), and the filter went on predicting the person it follows. When that
    person has left the scene (the scene keeps no truth for them) the row is ``unscored``: its
    errors are taken against the detection's person, and ``summarize`` leaves it out of the
    figures except the ``_all`` and ``_by_detection`` ones.
    ``velocity_error_detection`` scores every estimate against the detection's person instead."""

    range_m: np.ndarray
    position_error: np.ndarray   # m
    velocity_error: np.ndarray   # m/s (norm of the vector error)
    track_age: np.ndarray        # s since the ground filter started
    nees: np.ndarray             # 4-dof
    measured: np.ndarray         # bool: MEASURED (else PREDICTED)
    mixed: np.ndarray            # bool: the ground filter was fed another person since it started
                                 # (the 2D tracker switched identities under it)
    velocity_error_detection: np.ndarray   # m/s, against the person behind this frame's detection
    measured_span: np.ndarray    # s from the filter's first to its latest measurement
    unscored: np.ndarray         # bool: predicted, and the person the filter follows has left the scene

    def subset(self, rows: np.ndarray) -> Samples:
        return Samples(*(getattr(self, f)[rows] for f in self.__dataclass_fields__))

    @classmethod
    def concat(cls, parts: list[Samples]) -> Samples:
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in cls.__dataclass_fields__))


@dataclass
class Trail:
    """One track's estimated and true floor path (for the top-down figure)."""

    track_id: int
    estimates: list[np.ndarray]      # (x, y, vx, vy)
    truth: list[np.ndarray]          # (x, y)
    covariances: list[np.ndarray]    # (4, 4)
    times: list[float]


@dataclass(frozen=True)
class TrackedFrame:
    """One frame after the 2D tracker: what the ground filter is fed, and the truth to score it."""

    time: float
    live: list[TrackOutput]
    boxes: np.ndarray
    scores: np.ndarray
    truth: FrameTruth


def track_scene(config: SceneConfig, preset: str = "reid", embedder: AppearanceEmbedder | None = None
                ) -> list[TrackedFrame]:
    """The scene through the 2D stage as the node runs it (``Pipeline``: embedder, then tracker)."""
    pipeline = Pipeline(None, embedder, SmileTracker(TrackerConfig.from_preset(preset), frame_rate=config.fps))
    out = []
    for frame in generate_scene(config).frames():
        t = (frame.index - 1) / config.fps
        result = pipeline.process(frame.image, t, frame.detections)
        d = result.detections
        out.append(TrackedFrame(t, result.live_tracks, d.boxes, d.scores, frame.truth))
    return out


_TRACK_INTS = ("track_id", "class_id", "state", "age", "hits", "frames_since_update", "detection_index")
_TRACK_FLOATS = ("score", "appearance_similarity")
_TRUTH_ARRAYS = ("ids", "boxes", "visibility", "detection_ids")
_FLOOR_ARRAYS = ("positions", "velocities", "statures")


def cached_track_scene(config: SceneConfig, cache: Path, preset: str = "reid",
                       embedder: AppearanceEmbedder | None = None) -> list[TrackedFrame]:
    """``track_scene``, kept in ``cache`` as one ``.npz`` per scene, preset and embedder (the file
    name hashes them): read back with ``allow_pickle=False``, so a cache file is data only."""
    key = f"{config!r} {preset} {embedder.name if embedder is not None else 'none'}"
    path = cache / f"tracked-{hashlib.sha256(key.encode()).hexdigest()[:20]}.npz"
    if path.exists():
        return _load_tracked(path)
    tracked = track_scene(config, preset, embedder)
    cache.mkdir(parents=True, exist_ok=True)
    _save_tracked(path, tracked)
    return tracked


def _save_tracked(path: Path, frames: list[TrackedFrame]) -> None:
    """Each per-frame list concatenated over frames, with the frames' row counts beside it."""
    if any(f.truth.floor is None for f in frames):
        raise ValueError("only metric scenes (SceneConfig.camera) are cached")
    tracks = [t for f in frames for t in f.live]
    arrays: dict[str, np.ndarray] = {
        "time": np.array([f.time for f in frames], np.float64),
        "track_counts": np.array([len(f.live) for f in frames], np.int64),
        "box_counts": np.array([len(f.boxes) for f in frames], np.int64),
        "truth_counts": np.array([len(f.truth.ids) for f in frames], np.int64),
        "detection_id_counts": np.array([len(f.truth.detection_ids) for f in frames], np.int64),
        "boxes": np.concatenate([np.asarray(f.boxes, np.float64).reshape(-1, 4) for f in frames]),
        "scores": np.concatenate([np.asarray(f.scores, np.float64).reshape(-1) for f in frames]),
        "track_box": np.array([t.box for t in tracks], np.float64).reshape(-1, 4),
        "track_velocity": np.array([t.velocity for t in tracks], np.float64).reshape(-1, 2)}
    for name in _TRACK_INTS:
        arrays[f"track_{name}"] = np.array([int(getattr(t, name)) for t in tracks], np.int64)
    for name in _TRACK_FLOATS:
        arrays[f"track_{name}"] = np.array([getattr(t, name) for t in tracks], np.float64)
    for name in _TRUTH_ARRAYS:
        arrays[f"truth_{name}"] = np.concatenate([getattr(f.truth, name) for f in frames])
    for name in _FLOOR_ARRAYS:
        arrays[f"floor_{name}"] = np.concatenate([getattr(f.truth.floor, name) for f in frames
                                                  if f.truth.floor is not None])
    np.savez_compressed(path, **arrays)


def _load_tracked(path: Path) -> list[TrackedFrame]:
    with np.load(path, allow_pickle=False) as z:
        a = {name: z[name] for name in z.files}

    def split(name: str, counts: str) -> list[np.ndarray]:
        return np.split(a[name], np.cumsum(a[counts])[:-1])

    columns = {name: split(f"track_{name}", "track_counts") for name in (*_TRACK_INTS, *_TRACK_FLOATS, "box",
                                                                          "velocity")}
    truth = {name: split(f"truth_{name}", "detection_id_counts" if name == "detection_ids" else "truth_counts")
             for name in _TRUTH_ARRAYS}
    floor = {name: split(f"floor_{name}", "truth_counts") for name in _FLOOR_ARRAYS}
    boxes, scores = split("boxes", "box_counts"), split("scores", "box_counts")
    frames = []
    for k, time in enumerate(a["time"]):
        live = [TrackOutput(track_id=int(columns["track_id"][k][j]), box=columns["box"][k][j].copy(),
                            score=float(columns["score"][k][j]), class_id=int(columns["class_id"][k][j]),
                            state=TrackState(int(columns["state"][k][j])), age=int(columns["age"][k][j]),
                            hits=int(columns["hits"][k][j]),
                            frames_since_update=int(columns["frames_since_update"][k][j]),
                            velocity=(float(columns["velocity"][k][j][0]), float(columns["velocity"][k][j][1])),
                            appearance_similarity=float(columns["appearance_similarity"][k][j]),
                            detection_index=int(columns["detection_index"][k][j]))
                for j in range(len(columns["track_id"][k]))]
        frame_truth = FrameTruth(truth["ids"][k], truth["boxes"][k], truth["visibility"][k], truth["detection_ids"][k],
                                 FloorTruth(floor["positions"][k], floor["velocities"][k], floor["statures"][k]))
        frames.append(TrackedFrame(float(time), live, boxes[k], scores[k], frame_truth))
    return frames


def run_scene(config: SceneConfig, motion: MotionConfig | None = None,
              projection: ProjectionConfig | None = None, preset: str = "reid",
              embedder: AppearanceEmbedder | None = None,
              tracked: list[TrackedFrame] | None = None) -> tuple[Samples, dict[int, Trail]]:
    """Ground samples of a scene; ``tracked`` reuses the 2D stage's output of ``track_scene``."""
    assert config.camera is not None, "ground evaluation needs a metric scene (SceneConfig.camera)"
    if tracked is None:
        tracked = track_scene(config, preset, embedder)
    projector = GroundProjector(config.camera.model(config.width, config.height), config.camera.pose(),
                                projection or matched_projection(config))
    ground = GroundTracker(motion)
    rows: list[tuple[float, ...]] = []
    trails: dict[int, Trail] = {}
    fed: dict[tuple[int, float], list[int]] = {}   # (track id, filter start) -> people it measured, in order
    last_measured: dict[tuple[int, float], float] = {}
    for frame in tracked:
        t, live, truth = frame.time, frame.live, frame.truth
        estimates = ground.update(t, live, frame.boxes, projector, frame.scores)
        row_of = {int(i): k for k, i in enumerate(truth.ids)}
        for track in live:
            e = estimates[int(track.track_id)]
            if e.status == GroundStatus.NONE or track.detection_index < 0:
                continue
            source = int(truth.detection_ids[track.detection_index])
            if source not in row_of:
                continue
            seen = fed.setdefault((int(track.track_id), e.started), [])
            if e.status == GroundStatus.MEASURED:
                seen.append(source)
                last_measured[(int(track.track_id), e.started)] = t
            gone = bool(seen) and seen[-1] not in row_of
            followed = source if gone else seen[-1] if seen else source
            k = row_of[followed]
            position, velocity = truth.floor.positions[k], truth.floor.velocities[k]
            error = np.concatenate([e.position - position, e.velocity - velocity])
            rows.append((float(np.hypot(*position)), float(np.hypot(*error[:2])), float(np.hypot(*error[2:])),
                         t - e.started, float(error @ np.linalg.solve(e.covariance, error)),
                         float(e.status == GroundStatus.MEASURED), float(bool(set(seen) - {followed})),
                         float(np.hypot(*(e.velocity - truth.floor.velocities[row_of[source]]))),
                         last_measured.get((int(track.track_id), e.started), e.started) - e.started,
                         float(gone)))
            trail = trails.setdefault(int(track.track_id), Trail(int(track.track_id), [], [], [], []))
            trail.estimates.append(np.concatenate([e.position, e.velocity]))
            trail.truth.append(position.copy())
            trail.covariances.append(e.covariance)
            trail.times.append(t)
    table = np.array(rows, np.float64).reshape(-1, 10)
    samples = Samples(*table[:, :5].T, table[:, 5].astype(bool), table[:, 6].astype(bool), *table[:, 7:9].T,
                      table[:, 9].astype(bool))
    return samples, trails


def summarize(samples: Samples, max_range: float = 10.0, settle_s: float = 1.0) -> dict[str, float]:
    """The issue's figures: relative position error (median, p95) within ``max_range``; velocity
    RMS and NEES band coverage for tracks older than ``settle_s``; all over the scored rows
    (``Samples``), except ``velocity_rms_settled_all`` (every row, as if none were unscored) and
    ``velocity_rms_settled_by_detection``."""
    everything = samples
    samples = samples.subset(~samples.unscored)
    near = samples.range_m <= max_range
    relative = samples.position_error[near] / samples.range_m[near]
    settled = samples.track_age >= settle_s
    lo, hi = chi2.ppf([0.025, 0.975], 4)
    nees = samples.nees[settled]
    return {"samples": float(len(samples.range_m)), "samples_within_range": float(near.sum()),
            "position_error_rel_median": float(np.median(relative)),
            "position_error_rel_p95": float(np.percentile(relative, 95)),
            "velocity_rms_settled": float(np.sqrt(np.mean(samples.velocity_error[settled] ** 2))),
            "velocity_rms_settled_all":
                float(np.sqrt(np.mean(everything.velocity_error[everything.track_age >= settle_s] ** 2))),
            "velocity_rms_settled_by_detection": float(np.sqrt(np.mean(
                everything.velocity_error_detection[everything.track_age >= settle_s] ** 2))),
            "settled_share": float(np.mean(settled)),
            "velocity_rms_measured_1s":
                float(np.sqrt(np.mean(samples.velocity_error[samples.measured_span >= settle_s] ** 2))),
            "nees_in_band_settled": float(np.mean((nees > lo) & (nees < hi))),
            "nees_mean_settled": float(np.mean(nees)),
            "measured_share": float(np.mean(samples.measured)), "mixed_share": float(np.mean(samples.mixed)),
            "unscored_share": float(np.mean(everything.unscored))}


def by_range(samples: Samples, edges: tuple[float, ...] = (1, 2, 4, 6, 8, 10, 12)
             ) -> list[tuple[str, int, float, float]]:
    """(bucket, samples, median, p95 relative position error) per range bucket, over the scored rows."""
    samples = samples.subset(~samples.unscored)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (samples.range_m >= lo) & (samples.range_m < hi)
        if inside.any():
            rel = samples.position_error[inside] / samples.range_m[inside]
            out.append((f"{lo}-{hi} m", int(inside.sum()), float(np.median(rel)), float(np.percentile(rel, 95))))
    return out


GRID_HEIGHTS = (1.2, 1.6, 2.0)
GRID_PITCHES = (5.0, 12.0, 20.0)


def grid_configs(fps: float, frames: int, seed: int, people: int, det_box_noise: float = 0.02,
                 **camera: float) -> list[SceneConfig]:
    """One scene per (height, pitch) of the issue's range, each with its own seed."""
    out = []
    for k, (height, pitch) in enumerate(itertools.product(GRID_HEIGHTS, GRID_PITCHES)):
        cam = SceneCamera(height_m=height, pitch_deg=pitch, hfov_deg=80.0, **camera)
        out.append(SceneConfig(num_people=people, num_frames=frames, fps=fps, seed=seed + k, camera=cam,
                               det_false_positives=0.5, det_box_noise=det_box_noise))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m smiletrack_ros.scene.ground_eval", description=__doc__)
    parser.add_argument("--fps", type=float, nargs="+", default=[25.0, 10.0])
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--people", type=int, default=8)
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--heading-drift", type=float, default=SceneCamera().heading_drift,
                        help="walkers' heading random walk, rad/sqrt(s)")
    parser.add_argument("--det-box-noise", type=float, default=0.02,
                        help="simulated detector box-edge jitter, fraction of the box size")
    defaults = MotionConfig()
    parser.add_argument("--acceleration-psd", type=float, default=defaults.acceleration_psd, help="m^2/s^3")
    parser.add_argument("--turn-psd", type=float, default=defaults.turn_psd, help="heading-rate noise, rad^2/s")
    parser.add_argument("--sway-share", type=float, default=defaults.sway_share,
                        help="share of the foot point's column variance correlated over frames (0: white)")
    parser.add_argument("--sway-time", type=float, default=defaults.sway_time, help="its correlation time, s")
    parser.add_argument("--preset", default="reid", choices=tuple(PRESETS), help="2D tracker preset (the node's: reid)")
    parser.add_argument("--embedder", default="slm",
                        help="BACKEND[:WEIGHTS] of the appearance embedder fed the rendered crops (slm = the "
                             "shipped SLM), or 'none' for motion and IoU only")
    parser.add_argument("--device", default="auto", help="embedder device")
    parser.add_argument("--png", help="write a top-down figure of one scene here")
    parser.add_argument("--cache", type=Path, help="keep the 2D stage's output of each scene in this folder and "
                                                   "reuse it (filter settings then re-run in seconds)")
    args = parser.parse_args(argv)
    motion = MotionConfig(acceleration_psd=args.acceleration_psd, turn_psd=args.turn_psd, sway_share=args.sway_share,
                          sway_time=args.sway_time)
    embedder = None if args.embedder == "none" else \
        build_embedder(EmbedderConfig.from_spec(args.embedder, device=args.device))
    pictured: tuple[SceneConfig, list[TrackedFrame]] | None = None
    for fps in args.fps:
        configs = grid_configs(fps, int(round(args.seconds * fps)), args.seed, args.people, args.det_box_noise,
                               heading_drift=args.heading_drift)
        parts = []
        print(f"== {fps:g} Hz, {len(configs)} cameras (height {GRID_HEIGHTS} m x pitch {GRID_PITCHES} deg), "
              f"{args.seconds:g} s each, {args.people} people, box noise {args.det_box_noise}, "
              f"heading drift {args.heading_drift} rad/sqrt(s), 2D preset {args.preset}, "
              f"embedder {embedder.name if embedder is not None else 'none'}, "
              f"filter acceleration PSD {motion.acceleration_psd} m^2/s^3, turn PSD {motion.turn_psd} rad^2/s, "
              f"sway share {motion.sway_share} over {motion.sway_time} s")
        for k, config in enumerate(configs):
            tracked = track_scene(config, args.preset, embedder) if args.cache is None else \
                cached_track_scene(config, args.cache, args.preset, embedder)
            if pictured is None and k == 4:
                pictured = config, tracked
            samples, _ = run_scene(config, motion, tracked=tracked)
            parts.append(samples)
            s = summarize(samples)
            print(f"  h={config.camera.height_m:.1f} m pitch={config.camera.pitch_deg:4.1f}: "
                  f"median {100 * s['position_error_rel_median']:.2f}% p95 {100 * s['position_error_rel_p95']:.2f}% "
                  f"vel RMS {s['velocity_rms_settled']:.3f} m/s (measured >= 1 s: {s['velocity_rms_measured_1s']:.3f}, "
                  f"unscored too: {s['velocity_rms_settled_all']:.3f}) "
                  f"NEES in band {100 * s['nees_in_band_settled']:.1f}% "
                  f"2D-switched {100 * s['mixed_share']:.1f}%", flush=True)
        total = Samples.concat(parts)
        for name, chosen in (("all matched samples", total),
                             ("tracks not switched by the 2D tracker", total.subset(~total.mixed))):
            print(f"  {name}: " + ", ".join(f"{k} {v:.4g}" for k, v in summarize(chosen).items()))
            for bucket, n, median, p95 in by_range(chosen):
                print(f"    {bucket:>8}: {n:6d} samples, median {100 * median:.2f}%, p95 {100 * p95:.2f}%")
    if args.png and pictured is not None:
        from smiletrack_ros.scene.topdown import render_topdown

        config, tracked = pictured
        _, trails = run_scene(config, motion, tracked=tracked)
        render_topdown(trails, config.camera, args.png,
                       title=f"ground tracks, camera {config.camera.height_m:g} m high, "
                             f"pitch {config.camera.pitch_deg:g} deg ({args.fps[0]:g} Hz)")
        print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
