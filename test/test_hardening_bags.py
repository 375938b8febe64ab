"""Broken bags give bag_tools a clear error and exit status 1, never a traceback (issue 16.8)."""
import os
import sqlite3

import numpy as np
import pytest

pytest.importorskip("rosbags")
from smiletrack_ros.bags import BagWriter  # noqa: E402
from smiletrack_ros.bags.messages import TrackBoxes  # noqa: E402
from smiletrack_ros.cli.bag_tools import main  # noqa: E402

MCAP_MAGIC = b"\x89MCAP0\r\n"


def _tracks_bag(path, storage: str) -> None:
    boxes = TrackBoxes(ids=np.array([1, 2], np.int64),
                       boxes=np.array([[10, 20, 50, 120], [200, 30, 240, 140]], np.float32),
                       scores=np.full(2, 0.9, np.float32), class_ids=np.zeros(2, np.int64))
    with BagWriter(path, storage=storage) as bag:
        for k in range(5):
            bag.write_tracks("/tracks", 1_000_000_000 + k * 100_000_000, boxes)


def _run(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("command", ["info", "to-mot"])
def test_an_mcap_holding_only_its_magic(tmp_path, capsys, command):
    bag = tmp_path / "only_magic.mcap"
    bag.write_bytes(MCAP_MAGIC)
    code, err = _run(capsys, command, bag, *([tmp_path / "out.txt"] if command == "to-mot" else []))
    assert code == 1 and "cannot open bag" in err and str(bag) in err and "Traceback" not in err


@pytest.mark.parametrize("prefix", [b"", b"\x00\x01\x00\x00"], ids=["noise", "cdr_header_then_noise"])
def test_to_mot_on_a_db3_whose_messages_are_random_blobs(tmp_path, capsys, prefix):
    bag = tmp_path / "random_blobs"
    _tracks_bag(bag, "sqlite3")
    rng = np.random.default_rng(5)
    with sqlite3.connect(next(bag.glob("*.db3"))) as db:
        for (row,) in db.execute("SELECT id FROM messages").fetchall():
            db.execute("UPDATE messages SET data = ? WHERE id = ?", (prefix + rng.bytes(120), row))
    code, err = _run(capsys, "to-mot", bag, tmp_path / "out.txt")
    assert code == 1 and str(bag) in err and "Traceback" not in err, err


def test_a_file_that_is_no_database_and_a_truncated_mcap(tmp_path, capsys):
    noise = tmp_path / "noise.db3"
    noise.write_bytes(os.urandom(4096))
    code, err = _run(capsys, "to-mot", noise, tmp_path / "out.txt")
    assert code == 1 and "cannot open bag" in err
    whole = tmp_path / "whole"
    _tracks_bag(whole, "mcap")
    data = next(whole.glob("*.mcap")).read_bytes()
    for cut in (len(MCAP_MAGIC) + 3, len(data) // 2, len(data) - 9):
        truncated = tmp_path / f"cut_{cut}.mcap"
        truncated.write_bytes(data[:cut])
        code, err = _run(capsys, "to-mot", truncated, tmp_path / "out.txt")
        assert code in (0, 1) and "Traceback" not in err               # read up to the cut, or refused
        if code == 1:
            assert str(truncated) in err


def test_an_intact_bag_still_converts(tmp_path, capsys):
    bag = tmp_path / "ok"
    _tracks_bag(bag, "sqlite3")
    out = tmp_path / "out.txt"
    code, _ = _run(capsys, "to-mot", bag, out, "--fps", 10)
    assert code == 0 and len(out.read_text().splitlines()) == 10
