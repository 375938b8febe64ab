"""Offline scoring and tracking stay within a memory budget on hostile sizes, or refuse clearly.

Each case runs in a subprocess whose address space is capped (RLIMIT_AS) at what
it had mapped after importing everything and scoring a tiny sequence, plus a
budget: an allocation that grows with the largest id or with one frame's boxes
squared fails there with MemoryError instead of passing unnoticed.
"""
import json
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("trackeval")
resource = pytest.importorskip("resource")

BUDGET_MB = 400

PRELUDE = textwrap.dedent('''
    import json, resource, sys
    from pathlib import Path
    import numpy as np
    import cv2
    from smiletrack_ros.cli import evaluate_mot, track_mot
    from smiletrack_ros.mot.evaluate import evaluate_files

    root = Path(sys.argv[1])

    def write(path, rows):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(",".join(str(v) for v in r) + "\\n" for r in rows))

    def sequence(name, frames):
        seq = root / name
        (seq / "img1").mkdir(parents=True)
        (seq / "seqinfo.ini").write_text(f"[Sequence]\\nname={name}\\nimDir=img1\\nframeRate=10\\n"
                                         f"seqLength={frames}\\nimWidth=64\\nimHeight=48\\nimExt=.png\\n")
        for k in range(1, frames + 1):
            cv2.imwrite(str(seq / "img1" / f"{k:06d}.png"), np.zeros((48, 64, 3), np.uint8))
        return seq

    # warm up: every import and TrackEval's own first-run allocations
    warm = sequence("Warm", 2)
    write(warm / "gt" / "gt.txt", [(1, 1, 5, 5, 10, 20, 1, -1, -1, -1), (2, 1, 6, 5, 10, 20, 1, -1, -1, -1)])
    write(root / "warm_res" / "Warm.txt", [(1, 1, 5, 5, 10, 20, 1, -1, -1, -1)])
    evaluate_files({"Warm": (warm / "gt" / "gt.txt", root / "warm_res" / "Warm.txt")})
    mapped = int(next(l for l in open("/proc/self/status") if l.startswith("VmSize")).split()[1]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (mapped + int(sys.argv[2]) * 2 ** 20, resource.RLIM_INFINITY))
''')


def _run(tmp_path, body: str) -> dict:
    done = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(body), str(tmp_path), str(BUDGET_MB)],
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_huge_gt_id_costs_no_memory(tmp_path):
    """TrackEval sizes arrays by the largest id: id 1e8 alone would take 800 MB."""
    out = _run(tmp_path, '''
        seq = sequence("Big", 3)
        rows = [(k, i, 10 * i, 5, 10, 20, 1, -1, -1, -1) for k in (1, 2, 3) for i in (1, 100_000_000)]
        write(seq / "gt" / "gt.txt", rows)
        write(root / "res" / "Big.txt", [(r[0], 7 if r[1] == 1 else 300_000_000, *r[2:]) for r in rows])
        code = evaluate_mot.main([str(seq), "--results", str(root / "res"), "--json", str(root / "m.json")])
        print(json.dumps({"code": code, "m": json.loads((root / "m.json").read_text())["Big"]}))
    ''')
    assert out["code"] == 0
    assert out["m"]["HOTA"] == pytest.approx(100.0) and out["m"]["GT_IDs"] == 2


def test_scoring_200k_boxes_is_refused_before_it_allocates(tmp_path):
    out = _run(tmp_path, '''
        seq = sequence("Crowd", 1)
        boxes = [(1, i, i % 600, (i // 600) % 400, 10, 20, 1, -1, -1, -1) for i in range(1, 200_001)]
        write(seq / "gt" / "gt.txt", boxes)
        write(root / "res" / "Crowd.txt", boxes)
        code = evaluate_mot.main([str(seq), "--results", str(root / "res")])
        print(json.dumps({"code": code}))
    ''')
    assert out["code"] == 2


def test_track_mot_eval_with_200k_boxes_refuses_clearly(tmp_path):
    out = _run(tmp_path, '''
        import contextlib, io
        seq = sequence("Crowd", 2)
        boxes = [(k, -1, i % 600, (i // 600) % 400, 10, 20, 0.9, -1, -1, -1) for k in (1, 2) for i in range(100_000)]
        write(seq / "det" / "det.txt", boxes)
        write(seq / "gt" / "gt.txt", [(b[0], i + 1, *b[2:6], 1, -1, -1, -1) for i, b in enumerate(boxes)])
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = track_mot.main([str(seq), "--out", str(root / "out"), "--eval", "--quiet", "--no-embedder"])
        print(json.dumps({"code": code, "err": err.getvalue()}))
    ''')
    assert out["code"] == 2
    assert "frame 1 has 100000 detections, over the limit of 5000" in out["err"]
