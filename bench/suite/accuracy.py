"""Accuracy: our presets vs BoxMOT peers on the real sequences, same inputs for all.

Per sequence and detection source, detections are computed once, and per
sequence, source and embedder (``--embedder BACKEND:WEIGHTS``, any backend of the
package) the embeddings, all cached (out/bench/cache/); every tracker then replays
those caches, and TrackEval (through smiletrack_ros.mot) scores the results. Parts:
``presets`` (here), ``rates`` (rates.py) and ``occlusion`` (occlusion.py).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from bench.suite import models
from bench.suite.framecache import CachedFrame, FrameCache, load_if_matching
from bench.suite.measure import machine_line, progress
from bench.suite.ours import MOTION_ONLY, NO_GATE, PRESETS, run_preset
from bench.suite.peers import PEER_TRACKERS, PeerRun, find_peer_python, peer_note, run_peers
from bench.suite.report import Report, new_figure
from bench.suite.settings import SuiteSettings

METRICS = ("HOTA", "DetA", "AssA", "MOTA", "IDF1", "IDSW")
SOURCES = ("public", "yolox")
QUICK_SEQUENCES = ("TUD-Campus", "MOT17-02-FRCNN")
QUICK_FRAMES = 40
OURS = {f"ours-{p}": (p, {}) for p in ("reid", *PRESETS)} | {"ours-paper-no-gate": ("paper", NO_GATE),
                                                  "ours-paper-motion-only": ("paper", MOTION_ONLY)}


@dataclass(frozen=True)
class Sequence:
    name: str
    folder: Path
    frame_rate: float
    length: int          # frames evaluated (1..length)
    format_check: bool   # MOT17-mini: too short for meaningful metrics


def discover(shared_dir: Path, quick: bool, max_frames: int | None,
             names: tuple[str, ...] | None = None) -> list[Sequence]:
    from smiletrack_ros.mot.io import load_sequence_info

    found = []
    for seqinfo in sorted((shared_dir / "data").glob("**/seqinfo.ini")):
        folder = seqinfo.parent
        if not (folder / "gt" / "gt.txt").is_file():
            continue
        info = load_sequence_info(folder)
        images = folder / info.im_dir
        # MOT17-mini keeps only a few frames of each sequence: evaluate those.
        length = max(int(p.stem) for p in images.glob(f"*{info.im_ext}")) if images.is_dir() else info.length
        if max_frames is not None:
            length = min(length, max_frames)
        found.append(Sequence(info.name, folder, info.frame_rate, length, "MOT17-mini" in folder.parts))
    if names is not None:
        unknown = sorted(set(names) - {s.name for s in found})
        if unknown:
            raise ValueError(f"--sequences: no sequence named {unknown} under {shared_dir / 'data'}")
        return [s for s in found if s.name in names]
    return [s for s in found if not quick or s.name in QUICK_SEQUENCES]


class InputMaker:
    """Detections per sequence and source, and each embedder's embeddings of them, computed once and cached.

    Files under ``out_dir/cache/``: ``<sequence>__<source>__dets.npz`` (detections only) and
    ``<sequence>__<source>__<embedder>-<digest>.npz``, the digest covering the embedder's spec and
    model file, so every (sequence, detection source, embedder) has its own file and a changed
    model or detector is recomputed (the metadata must match exactly).
    """

    def __init__(self, settings: SuiteSettings):
        self.settings = settings
        shared = str(settings.shared_dir) if settings.shared_dir is not None else "../shared"
        specs = settings.embedders or tuple(
            s for s in (spec.replace("{shared}", shared) for spec in models.DEFAULT_EMBEDDERS)
            if ":" not in s or Path(s.partition(":")[2]).is_file())
        self.specs = {models.embedder_label(spec.replace("{shared}", shared)): spec.replace("{shared}", shared)
                      for spec in specs}
        if len(self.specs) != len(specs):
            raise ValueError(f"--embedder: two specs share a name: {specs}")
        self._detector = None
        self._embedders: dict[str, models.Built] = {}

    @property
    def labels(self) -> list[str]:
        """The embedders' table names, in the order given (the first is the primary one)."""
        return list(self.specs)

    @property
    def primary(self) -> str:
        return self.labels[0]

    def detector(self):
        if self._detector is None:
            self._detector = models.yolox_detector(self.settings.shared_dir, "cpu")
        return self._detector

    def embedder(self, label: str | None = None) -> models.Built | None:
        """The embedder named ``label`` (default: the primary one); None for ``none``."""
        label = label or self.primary
        if label == models.NO_EMBEDDER:
            return None
        if label not in self._embedders:
            self._embedders[label] = models.embedder_from_spec(self.specs[label], self.settings.device)
        return self._embedders[label]

    def description(self, label: str) -> dict:
        built = self.embedder(label)
        return {"embedder": "none"} if built is None else built.description

    def cache_path(self, name: str, source: str, label: str | None = None) -> Path:
        label = label or self.primary
        folder = self.settings.out_dir / "cache"
        if label == models.NO_EMBEDDER:
            return folder / f"{name}__{source}__dets.npz"
        key = hashlib.sha256(json.dumps(self.description(label), sort_keys=True).encode()).hexdigest()[:16]
        return folder / f"{name}__{source}__{label.replace(':', '-').replace('/', '_')}-{key}.npz"

    def detections(self, seq: Sequence, source: str) -> FrameCache:
        from smiletrack_ros.detections import Detections
        from smiletrack_ros.mot.io import iter_frames, read_detections

        meta = {"sequence": seq.name, "frames": seq.length, "source": source,
                "detector": self.detector().description if source == "yolox" else "det/det.txt"}
        path = self.cache_path(seq.name, source, models.NO_EMBEDDER)
        cached = load_if_matching(path, meta)
        if cached is not None:
            return cached
        frames = []
        if source == "public":
            public = read_detections(seq.folder / "det" / "det.txt")
            for k in range(1, seq.length + 1):
                dets = public.get(k, Detections.empty())
                frames.append(CachedFrame(k, dets.boxes.astype(np.float32), dets.scores.astype(np.float32),
                                          dets.class_ids.astype(np.int64), None))
        else:
            stream = iter_frames(seq.folder, 1, seq.length + 1)
            for k, image in progress(stream, seq.length, f"{seq.name}/{source} detections", self.settings.progress):
                dets = self.detector().model(image)
                frames.append(CachedFrame(k, dets.boxes.astype(np.float32), dets.scores.astype(np.float32),
                                          dets.class_ids.astype(np.int64), None))
        cache = FrameCache.from_frames(frames, seq.frame_rate, meta)
        cache.save(path)
        return cache

    def cache(self, seq: Sequence, source: str, label: str | None = None) -> FrameCache:
        """``source``'s detections of ``seq`` with the embeddings of embedder ``label`` (primary by default)."""
        from smiletrack_ros.mot.io import iter_frames

        label = label or self.primary
        base = self.detections(seq, source)
        if label == models.NO_EMBEDDER:
            return base
        meta = {**base.meta, "embedder": self.description(label)}
        path = self.cache_path(seq.name, source, label)
        cached = load_if_matching(path, meta)
        if cached is not None:
            return cached
        model = self.embedder(label).model
        items = {item.frame: item for item in base}
        frames = []
        stream = iter_frames(seq.folder, 1, seq.length + 1)
        for k, image in progress(stream, seq.length, f"{seq.name}/{source} {label}", self.settings.progress):
            item = items[k]
            frames.append(replace(item, embeddings=model(image, item.boxes) if len(item.boxes) else None))
        cache = FrameCache.from_frames(frames, seq.frame_rate, meta)
        cache.save(path)
        return cache


def _ground_truth(seq: Sequence):
    from smiletrack_ros.mot.io import read_ground_truth

    gt = read_ground_truth(seq.folder / "gt" / "gt.txt")
    return gt.select(gt.frames <= seq.length)


def _evaluate(seqs: list[Sequence], rows: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    from smiletrack_ros.mot.evaluate import COMBINED, evaluate

    out = {}
    for group in ([s for s in seqs if not s.format_check], [s for s in seqs if s.format_check]):
        if group:
            result = evaluate({s.name: (_ground_truth(s), rows[s.name]) for s in group},
                              {s.name: s.length for s in group})
            if group[0].format_check:
                result.pop(COMBINED, None)  # only the real sequences are combined
            out.update(result)
    return out


def run(settings: SuiteSettings) -> Report:
    report = Report("Accuracy: SMILEtrack presets vs BoxMOT peers", settings.folder("accuracy"))
    report.text(machine_line())
    if settings.shared_dir is None:
        report.text("Skipped: ../shared (sequences and models) not found.")
        return report
    seqs = discover(settings.shared_dir, settings.quick, settings.frames or (QUICK_FRAMES if settings.quick else None),
                    settings.sequences)
    maker = InputMaker(settings)
    report.text("Embedders: " + ", ".join(f"`{label}` ({spec})" for label, spec in maker.specs.items()) + ".")
    if "presets" in settings.accuracy_parts:
        presets(settings, maker, seqs, report)
    from bench.suite import occlusion, rates

    if "rates" in settings.accuracy_parts:
        rates.run(settings, maker, seqs, report)
    if "occlusion" in settings.accuracy_parts:
        occlusion.run(settings, maker, report)
    return report


def presets(settings: SuiteSettings, maker: InputMaker, seqs: list[Sequence], report: Report) -> None:
    """Every sequence at its own rate, the primary embedder: our presets and the peers."""
    from smiletrack_ros.mot.io import write_results

    caches = {(s.name, src): maker.cache(s, src) for s in seqs for src in SOURCES}
    runs: dict[tuple[str, str], dict[str, np.ndarray]] = {}   # (source, tracker) -> seq -> rows
    ms: dict[tuple[str, str], list[float]] = {}
    for (name, src), cache in progress(caches.items(), len(caches), "our presets", settings.progress):
        for label, (preset, overrides) in OURS.items():
            result = run_preset(cache, preset, **overrides)
            runs.setdefault((src, label), {})[name] = result.rows
            ms.setdefault((src, label), []).extend(result.ms)
    trackers = list(OURS)
    emb = maker.description(maker.primary)
    det = maker.detector().description
    notes = [f"Embedder here: {emb['embedder']} ({emb.get('precision', '-')}). YOLOX-Nano (onnx backend): score >= "
             f"{det['score_threshold']}, NMS IoU {det['nms_iou']}, person class only."]
    leaked = [s.name for s in seqs if s.name in emb.get("trained_on", ())]
    if leaked:
        notes.append(f"CAUTION: the embedder was trained on {', '.join(leaked)} (its identities), so appearance "
                     f"trackers are favoured there; sequences it never saw are the fair test.")
    if settings.peers:
        python, description = find_peer_python(install=True)
        if python is None:
            notes.append(f"Peers skipped: {description}.")
        else:
            notes.append(peer_note(description))
            work = settings.folder("accuracy") / "peers"
            jobs = [PeerRun(f"{name}__{src}", maker.cache_path(name, src), cache.frame_rate,
                            seq_dir=next(s.folder for s in seqs if s.name == name), rows_dir=work / f"{name}__{src}")
                    for (name, src), cache in caches.items()]
            results = run_peers(python, jobs, work)
            for (name, src) in caches:
                for peer, res in results[f"{name}__{src}"].items():
                    if res.error:
                        notes.append(f"{peer} on {name}/{src} failed: {res.error}")
                        continue
                    runs.setdefault((src, f"boxmot-{peer}"), {})[name] = np.load(res.rows)
                    ms.setdefault((src, f"boxmot-{peer}"), []).extend(res.ms)
            trackers += [f"boxmot-{p}" for p in PEER_TRACKERS if any((src, f"boxmot-{p}") in runs for src in SOURCES)]
    report.text("Same detections for every tracker (per source), same embeddings for every appearance "
                "tracker; default parameters, no per-sequence tuning. `ours-paper-no-gate` (appearance gate off) "
                "and `ours-paper-motion-only` (appearance off) are diagnostics of the `paper` preset, not tuning. "
                "TrackEval HOTA/DetA/AssA/MOTA/IDF1 in %, IDSW a count; "
                "ms = mean update() time per frame (one thread for peers).\n\n"
                + "\n".join(f"- {n}" for n in notes))

    report.table("inputs (cached once, replayed to every tracker)", ["sequence", "source", "frames", "boxes/frame",
                                                                    "boxes >= 0.5/frame"],
                 [[name, src, len(c), c.mean_count(), float((c.scores >= 0.5).sum()) / max(len(c), 1)]
                  for (name, src), c in caches.items()], digits=1)
    table, combined = [], []
    for src in SOURCES:
        for tracker in trackers:
            rows = runs.get((src, tracker))
            if rows is None or len(rows) < len(seqs):
                continue
            for s in seqs:
                write_results(report.folder / "results" / src / tracker / f"{s.name}.txt", rows[s.name])
            metrics = _evaluate(seqs, rows)
            mean_ms = float(np.mean(ms[(src, tracker)]))
            report.data.setdefault(src, {})[tracker] = {"metrics": metrics, "ms_per_frame": mean_ms}
            for s in seqs:
                table.append([src, s.name, tracker, *(_cell(metrics[s.name], k) for k in METRICS)])
            key = "COMBINED" if "COMBINED" in metrics else next((s.name for s in seqs if not s.format_check),
                                                                seqs[0].name)
            combined.append([src, tracker, *(_cell(metrics[key], k) for k in METRICS), mean_ms])
    order = {s.name: i for i, s in enumerate(seqs)}
    table.sort(key=lambda r: (SOURCES.index(r[0]), order[r[1]], trackers.index(r[2])))
    report.table("per sequence", ["source", "sequence", "tracker", *METRICS], table, digits=1)
    report.table("TUD sequences combined (a single one when only one ran; MOT17-mini excluded: a few frames, "
                 "format check only)",
                 ["source", "tracker", *METRICS, "ms/frame"], combined, digits=1)
    _gaps(report, combined)
    _plot(report, table, seqs, trackers)


def _cell(metrics: dict[str, float], key: str) -> float | int:
    return int(metrics[key]) if key == "IDSW" else metrics[key]


def _gaps(report: Report, combined: list) -> None:
    """Ours minus the best peer (by combined HOTA) per source: DetA gaps point at
    track birth/termination and box handling, AssA/IDSW gaps at association."""
    rows = []
    for src in SOURCES:
        peers = [r for r in combined if r[0] == src and r[1].startswith("boxmot-")]
        if not peers:
            continue
        best = max(peers, key=lambda r: r[2])
        for r in (r for r in combined if r[0] == src and r[1].startswith("ours-")):
            rows.append([src, r[1], best[1], *(r[2 + i] - best[2 + i] for i in range(len(METRICS)))])
    if rows:
        report.table("ours minus the best peer (combined TUD; negative HOTA/DetA/AssA/MOTA/IDF1 = we lose)",
                     ["source", "ours", "best peer", *(f"d{m}" for m in METRICS)], rows, digits=1)


def _plot(report: Report, table: list, seqs: list[Sequence], trackers: list[str]) -> None:
    shown = [s.name for s in seqs if not s.format_check]
    for metric in ("HOTA", "IDF1"):
        col = 3 + METRICS.index(metric)
        fig, ax = new_figure(9.0, 4.2)
        groups = [(src, name) for src in SOURCES for name in shown]
        width = 0.8 / max(len(trackers), 1)
        for i, tracker in enumerate(trackers):
            values = [next((r[col] for r in table if r[0] == src and r[1] == name and r[2] == tracker), np.nan)
                      for src, name in groups]
            ax.bar(np.arange(len(groups)) + i * width, values, width, label=tracker)
        ax.set_xticks(np.arange(len(groups)) + 0.4 - width / 2, [f"{n}\n{src}" for src, n in groups])
        ax.set_ylabel(f"{metric} (%)")
        ax.legend(fontsize=7, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.18))
        report.figure(fig, f"accuracy_{metric.lower()}", f"{metric} per sequence and detection source")
