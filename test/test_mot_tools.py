"""The track_mot and evaluate_mot command-line tools, end to end on real files."""
import json

import cv2
import numpy as np
import pytest

from smiletrack_ros.cli import evaluate_mot, track_mot
from smiletrack_ros.mot.io import read_detections, read_results

FRAMES = 20


def _make_sequence(root, name="Synth-1", gap=(), score_scale=1.0):
    """Three people walking on parallel lanes; ``gap`` frames have no detection of person 1."""
    seq = root / name
    (seq / "img1").mkdir(parents=True)
    (seq / "gt").mkdir()
    (seq / "det").mkdir()
    (seq / "seqinfo.ini").write_text(f"[Sequence]\nname={name}\nimDir=img1\nframeRate=10\nseqLength={FRAMES}\n"
                                     f"imWidth=320\nimHeight=240\nimExt=.png\n")
    gt, det = [], []
    for k in range(1, FRAMES + 1):
        cv2.imwrite(str(seq / "img1" / f"{k:06d}.png"), np.full((240, 320, 3), 90, np.uint8))
        for pid in (1, 2, 3):
            x, y = 10 + 6 * k + 20 * pid, 70 * pid - 50
            gt.append(f"{k},{pid},{x},{y},24,48,1,-1,-1,-1")
            if not (pid == 1 and k in gap):
                det.append(f"{k},-1,{x + 0.5},{y - 0.5},24,48,{0.9 * score_scale:.3f},-1,-1,-1")
    (seq / "gt" / "gt.txt").write_text("\n".join(gt) + "\n")
    (seq / "det" / "det.txt").write_text("\n".join(det) + "\n")
    return seq


def test_track_then_evaluate(tmp_path, capsys):
    seq = _make_sequence(tmp_path)
    out = tmp_path / "res"
    rc = track_mot.main([str(seq), "--out", str(out), "--preset", "bytetrack", "--eval", "--quiet",
                         "--metrics-json", str(tmp_path / "m.json"), "--save-detections", str(tmp_path / "dets")])
    assert rc == 0
    saved, given = read_detections(tmp_path / "dets" / "Synth-1.txt"), read_detections(seq / "det" / "det.txt")
    assert sorted(saved) == sorted(given)
    np.testing.assert_allclose(saved[5].boxes, given[5].boxes, atol=0.006)
    rows = read_results(out / "Synth-1.txt")
    assert len(np.unique(rows[:, 1])) == 3 and rows[:, 0].max() == FRAMES
    tracked = json.loads((tmp_path / "m.json").read_text())["Synth-1"]
    assert tracked["MOTA"] > 90 and tracked["IDSW"] == 0 and tracked["IDF1"] > 90
    assert "Synth-1" in capsys.readouterr().out
    rc = evaluate_mot.main([str(seq), "--results", str(out), "--json", str(tmp_path / "e.json")])
    assert rc == 0
    assert json.loads((tmp_path / "e.json").read_text())["Synth-1"] == pytest.approx(tracked)


def test_interpolation_fills_detector_gaps(tmp_path):
    seq = _make_sequence(tmp_path, gap=(9, 10))
    counts = {}
    for flag in ([], ["--interpolate"]):
        out = tmp_path / ("interp" if flag else "plain")
        assert track_mot.main([str(seq), "--out", str(out), "--preset", "bytetrack", "--quiet", *flag]) == 0
        rows = read_results(out / "Synth-1.txt")
        counts[bool(flag)] = int(np.isin(rows[:, 0], [9, 10]).sum())
    assert counts == {False: 4, True: 6}


def test_scores_outside_unit_range_need_a_rescale_flag(tmp_path, capsys):
    seq = _make_sequence(tmp_path, score_scale=50.0)
    out = tmp_path / "res"
    assert track_mot.main([str(seq), "--out", str(out), "--quiet"]) == 2
    assert "rescale" in capsys.readouterr().err
    assert track_mot.main([str(seq), "--out", str(out), "--quiet", "--score-rescale", "logistic",
                           "--preset", "bytetrack"]) == 0
    assert len(read_results(out / "Synth-1.txt")) > 0


def test_bad_arguments_are_reported(tmp_path, capsys):
    seq = _make_sequence(tmp_path)
    assert track_mot.main([str(seq), "--out", str(tmp_path / "o"), "--quiet", "--set", "no_such_field=1"]) == 2
    assert "no_such_field" in capsys.readouterr().err
    assert track_mot.main([str(seq), "--out", str(tmp_path / "o"), "--quiet", "--det-file", str(tmp_path / "x")]) == 2
    assert "not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        track_mot.main([str(seq), "--out", str(tmp_path / "o"), "--detector", "onnx"])
    assert evaluate_mot.main([str(seq), "--results", str(tmp_path / "none")]) == 2


def test_gt_boxes_as_detections_track_tud_campus(shared_dir, tmp_path):
    seq = shared_dir / "data" / "MOT15" / "TUD-Campus"
    det = tmp_path / "det.txt"
    lines = (seq / "gt" / "gt.txt").read_text().split()
    det.write_text("\n".join(",".join([f[0], "-1", *f[2:6], "1", "-1", "-1", "-1"])
                             for f in (line.split(",") for line in lines)) + "\n")
    rc = track_mot.main([str(seq), "--out", str(tmp_path / "res"), "--det-file", str(det), "--preset", "bytetrack",
                         "--eval", "--quiet", "--metrics-json", str(tmp_path / "m.json")])
    assert rc == 0
    metrics = json.loads((tmp_path / "m.json").read_text())["TUD-Campus"]
    assert metrics["MOTA"] > 95 and metrics["IDF1"] > 80 and metrics["HOTA"] > 70


def test_embedder_through_the_pipeline_with_cache(tmp_path):
    torch = pytest.importorskip("torch")
    from smiletrack_ros.embedding import ModelCard, SLMNet, SlmSpec, save_weights

    torch.manual_seed(0)
    net = SLMNet(SlmSpec())
    weights = tmp_path / "slm.safetensors"
    save_weights(net, weights, ModelCard(spec=net.spec, name="test-untrained"))
    seq = _make_sequence(tmp_path)
    args = [str(seq), "--preset", "paper", "--quiet", "--embedder-weights", str(weights), "--device", "cpu",
            "--embeddings-cache", str(tmp_path / "cache"), "--stop", "5"]
    assert track_mot.main([*args, "--out", str(tmp_path / "a")]) == 0
    assert len(list((tmp_path / "cache").glob("Synth-1-*.npz"))) == 1
    assert track_mot.main([*args, "--out", str(tmp_path / "b")]) == 0
    first, second = read_results(tmp_path / "a" / "Synth-1.txt"), read_results(tmp_path / "b" / "Synth-1.txt")
    assert len(first) > 0
    np.testing.assert_array_equal(first, second)


def _det_lines(seq, shift=0.0):
    """The sequence's det file with every box moved ``shift`` px (another detection source)."""
    rows = [line.split(",") for line in (seq / "det" / "det.txt").read_text().split()]
    return "\n".join(",".join([r[0], r[1], f"{float(r[2]) + shift:.2f}", *r[3:]]) for r in rows) + "\n"


def test_appearance_is_on_by_default_like_the_node(tmp_path, capsys):
    pytest.importorskip("torch")
    seq = _make_sequence(tmp_path)
    base = [str(seq), "--out", str(tmp_path / "o"), "--quiet", "--stop", "4", "--device", "cpu"]
    assert track_mot.main(base) == 0
    assert "preset paper, appearance from slm_default.safetensors, 1 torch thread(s)" in capsys.readouterr().out
    assert track_mot.main([*base, "--no-embedder"]) == 0
    assert "motion only (--no-embedder)" in capsys.readouterr().out
    assert track_mot.main([*base, "--preset", "bytetrack"]) == 0
    assert "motion only (preset bytetrack)" in capsys.readouterr().out


def test_threads_and_frame_rate_are_settings(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    seq = _make_sequence(tmp_path)
    before = torch.get_num_threads()
    try:
        assert track_mot.main([str(seq), "--out", str(tmp_path / "o"), "--quiet", "--preset", "bytetrack",
                               "--threads", "1", "--frame-rate", "5"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert "Synth-1: 20 frames at 5 fps (--frame-rate)" in capsys.readouterr().out
    assert track_mot.main([str(seq), "--out", str(tmp_path / "o"), "--quiet", "--preset", "bytetrack"]) == 0
    assert "20 frames at 10 fps (seqinfo.ini)" in capsys.readouterr().out
    for bad in (["--frame-rate", "0"], ["--threads", "0"]):
        with pytest.raises(SystemExit):
            track_mot.main([str(seq), "--out", str(tmp_path / "o"), *bad])


def test_a_bad_preset_is_refused_before_any_model_loads(tmp_path, capsys):
    seq = _make_sequence(tmp_path)
    missing = tmp_path / "no_such_weights.safetensors"
    assert track_mot.main([str(seq), "--out", str(tmp_path / "o"), "--preset", "papr",
                           "--embedder-weights", str(missing)]) == 2
    err = capsys.readouterr().err
    assert "preset" in err and "papr" in err and str(missing) not in err


def test_det_files_for_several_sequences(tmp_path, capsys):
    seqs = [_make_sequence(tmp_path, name) for name in ("Synth-1", "Synth-2")]
    dets = tmp_path / "dets"
    dets.mkdir()
    (dets / "Synth-1.txt").write_text(_det_lines(seqs[0]))
    (dets / "Synth-2.txt").write_text(_det_lines(seqs[1])[: -60].rsplit("\n", 1)[0] + "\n")  # last rows cut
    common = ["--preset", "bytetrack", "--quiet"]
    assert track_mot.main([*map(str, seqs), "--out", str(tmp_path / "a"), "--det-file",
                           str(dets / "{sequence}.txt"), *common]) == 0
    assert track_mot.main([*map(str, seqs), "--out", str(tmp_path / "b"), "--det-file", str(dets / "Synth-1.txt"),
                           "--det-file", str(dets / "Synth-2.txt"), *common]) == 0
    for name in ("Synth-1", "Synth-2"):
        np.testing.assert_array_equal(read_results(tmp_path / "a" / f"{name}.txt"),
                                      read_results(tmp_path / "b" / f"{name}.txt"))
    assert len(read_results(tmp_path / "a" / "Synth-2.txt")) < len(read_results(tmp_path / "a" / "Synth-1.txt"))
    with pytest.raises(SystemExit):
        track_mot.main([*map(str, seqs), "--out", str(tmp_path / "c"), "--det-file", str(dets / "Synth-1.txt")])
    assert "one per sequence" in capsys.readouterr().err


def test_embedding_cache_is_keyed_by_detection_content(tmp_path):
    pytest.importorskip("torch")
    seq = _make_sequence(tmp_path)
    (tmp_path / "near.txt").write_text(_det_lines(seq))
    (tmp_path / "same_boxes_other_name.txt").write_text(_det_lines(seq))
    (tmp_path / "moved.txt").write_text(_det_lines(seq, shift=3.0))
    cache = tmp_path / "cache"

    def run(det, out):
        assert track_mot.main([str(seq), "--out", str(tmp_path / out), "--quiet", "--device", "cpu", "--stop", "4",
                               "--det-file", str(tmp_path / det), "--embeddings-cache", str(cache)]) == 0
        return read_results(tmp_path / out / "Synth-1.txt")

    first = run("near.txt", "a")
    run("moved.txt", "b")
    assert len(list(cache.glob("Synth-1-*.npz"))) == 2, "two detection sources, two files: neither overwrites"
    np.testing.assert_array_equal(run("same_boxes_other_name.txt", "c"), first)
    assert len(list(cache.glob("Synth-1-*.npz"))) == 2, "same content under another name: the same file"


def test_any_embedder_backend_with_its_own_cache_file(shared_dir, tmp_path, capsys):
    """``--embedder BACKEND:WEIGHTS`` runs the tracker with that backend; the embedding cache keeps one
    file per sequence, detection source and embedder, so switching embedders never serves stale vectors."""
    pytest.importorskip("onnxruntime")
    osnet = shared_dir / "models" / "reid" / "osnet_x0_25_msmt17.onnx"
    if not osnet.is_file():
        pytest.skip(f"no {osnet}")
    seq = _make_sequence(tmp_path)
    cache = tmp_path / "cache"
    base = [str(seq), "--quiet", "--device", "cpu", "--stop", "5", "--embeddings-cache", str(cache)]
    assert track_mot.main([*base, "--out", str(tmp_path / "a"), "--embedder", f"onnx:{osnet}"]) == 0
    assert f"appearance from onnx:{osnet.name}" in capsys.readouterr().out
    assert len(list(cache.glob("Synth-1-*.npz"))) == 1
    assert track_mot.main([*base, "--out", str(tmp_path / "b")]) == 0
    assert "appearance from slm_default.safetensors" in capsys.readouterr().out
    assert len(list(cache.glob("Synth-1-*.npz"))) == 2, "two embedders, two cache files"
    with np.load(next(iter(cache.glob("Synth-1-*.npz")))) as z:
        dims = {z[k].shape[1] for k in z.files if k.startswith("emb_")}
    assert dims <= {128, 512} and len(dims) == 1
    assert track_mot.main([*base, "--out", str(tmp_path / "c"), "--embedder", f"onnx:{osnet}"]) == 0
    np.testing.assert_array_equal(read_results(tmp_path / "a" / "Synth-1.txt"),
                                  read_results(tmp_path / "c" / "Synth-1.txt"))


def test_a_bad_embedder_spec_is_refused_naming_it(tmp_path, capsys):
    seq = _make_sequence(tmp_path)
    assert track_mot.main([str(seq), "--out", str(tmp_path / "o"), "--quiet", "--embedder", "tensorrt:x.engine"]) == 2
    assert "tensorrt:x.engine" in capsys.readouterr().err
    assert track_mot.main([str(seq), "--out", str(tmp_path / "o"), "--quiet", "--embedder",
                           f"onnx:{tmp_path / 'missing.onnx'}"]) == 2
    assert "missing.onnx" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        track_mot.main([str(seq), "--out", str(tmp_path / "o"), "--embedder", "onnx:x.onnx",
                        "--embedder-weights", "w.safetensors"])
