"""Runs BoxMOT peers in their own venv (out/peers/venv) on cached frames.

``ensure_peer_venv`` makes the venv (bench/bench_tracker_peers.py uses it too);
the suite finds it, checks that boxmot imports, and runs ``peer_worker`` in it
as a subprocess.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PEER_TRACKERS = ("bytetrack", "ocsort", "botsort", "deepocsort", "strongsort", "boosttrack")
APPEARANCE_PEERS = ("botsort", "deepocsort", "strongsort", "boosttrack")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# BoxMOT (AGPL) never enters the project's venv: it gets its own, seeing our torch through a .pth file.
PEER_DIR = REPO / "out" / "peers"
PEER_VENV = PEER_DIR / "venv"
BOXMOT = "boxmot==25.0.0"


@dataclass(frozen=True)
class PeerRun:
    key: str
    cache: Path
    frame_rate: float
    trackers: tuple[str, ...] = PEER_TRACKERS
    seq_dir: Path | None = None
    image_size: tuple[int, int] = (1080, 1920)
    rows_dir: Path | None = None


@dataclass
class PeerResult:
    ms: list[float] = field(default_factory=list)
    rows: Path | None = None
    error: str | None = None
    embeddings: bool = False


def _boxmot_version(python: Path) -> str | None:
    try:
        done = subprocess.run([str(python), "-c", "import boxmot; print(boxmot.__version__)"],
                              capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def ensure_peer_venv() -> Path:
    """out/peers/venv with boxmot, reusing the project's torch through a .pth file."""
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    (Path(site) / "smiletrack_main_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    probe = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('boxmot'))"],
                           capture_output=True, text=True)
    if probe.stdout.strip() != BOXMOT.split("==")[1]:
        print(f"installing {BOXMOT} into {PEER_VENV} ...", file=sys.stderr)
        subprocess.run([str(python), "-m", "pip", "install", "-q", BOXMOT], check=True)
    return python



def find_peer_python(install: bool) -> tuple[Path | None, str]:
    """(python of the peer venv, description); None and the reason when unusable.

    ``install``: create the venv when missing.
    """
    if install:
        try:
            python = ensure_peer_venv()
        except (OSError, subprocess.CalledProcessError) as err:
            return None, f"could not make the peer venv {PEER_VENV} ({err})"
    else:
        python = PEER_VENV / "bin" / "python"
    if not python.exists():
        return None, f"no peer venv at {python.parent.parent}"
    version = _boxmot_version(python)
    if version is None:
        return None, f"boxmot does not import in {python}"
    return python, f"BoxMOT {version} ({python.parent.parent})"


def run_peers(python: Path, runs: list[PeerRun], work_dir: Path,
              timeout_s: float = 3600.0) -> dict[str, dict[str, PeerResult]]:
    """Replay every run through its peers; one tracker failing is recorded, not raised."""
    work_dir.mkdir(parents=True, exist_ok=True)
    job = {"result": str(work_dir / "peer_result.json"), "runs": [
        {"key": r.key, "cache": str(r.cache), "frame_rate": r.frame_rate, "trackers": list(r.trackers),
         "seq_dir": str(r.seq_dir) if r.seq_dir else None, "image_size": list(r.image_size),
         "rows_dir": str(r.rows_dir) if r.rows_dir else None} for r in runs]}
    job_path = work_dir / "peer_job.json"
    job_path.write_text(json.dumps(job, indent=1))
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", **{k: "1" for k in THREAD_VARIABLES})
    log = work_dir / "peer_worker.log"
    with log.open("w") as out:
        done = subprocess.run([str(python), "-m", "bench.suite.peer_worker", str(job_path)], cwd=REPO, env=env,
                              stdout=out, stderr=subprocess.STDOUT, timeout=timeout_s)
    if done.returncode != 0 or not Path(job["result"]).is_file():
        tail = log.read_text().splitlines()[-5:]
        raise RuntimeError(f"peer worker failed (exit {done.returncode}); see {log}: " + " | ".join(tail))
    raw = json.loads(Path(job["result"]).read_text())
    return {key: {name: PeerResult(e["ms"], Path(e["rows"]) if e["rows"] else None, e["error"], e["embeddings"])
                  for name, e in trackers.items()} for key, trackers in raw.items()}


def peer_note(description: str) -> str:
    return (f"Peers: {description}, each with its packaged default parameters (frame_rate set to the "
            f"sequence's own), fed the same detections; appearance peers ({', '.join(APPEARANCE_PEERS)}) get our "
            f"embedder's embeddings. Peer update() times include their own camera-motion compensation "
            f"where enabled by default (botsort, deepocsort).")
