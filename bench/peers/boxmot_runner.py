"""Replays a benchmark scenario through a BoxMOT tracker and prints update() times as JSON.

Runs inside the peer venv (out/peers/venv), never in the project's: BoxMOT is AGPL.
    python boxmot_runner.py SCENARIO.npz {bytetrack,botsort} REPEATS
Prints the repeat with the lowest mean CPU time (the least disturbed by other load).
"""
import json
import sys
import time

import numpy as np
import torch


def build(name: str, frame_rate: float):
    from boxmot import BotSort, ByteTrack

    if name == "bytetrack":  # ByteTrack has no camera-motion compensation
        return ByteTrack(frame_rate=int(frame_rate))
    if name == "botsort":
        return BotSort(use_cmc=False, use_embeddings=True, frame_rate=int(frame_rate))
    raise SystemExit(f"unknown peer tracker {name!r}")


def main() -> None:
    from boxmot.structures.detections import Detections
    from boxmot.structures.geometry import Boxes

    torch.set_num_threads(1)
    path, name, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
    scn = np.load(path)
    runs = [replay(scn, name, Detections, Boxes) for _ in range(repeats)]
    times, cpu, outputs = min(runs, key=lambda run: float(np.mean(run[1])))
    print(json.dumps({"ms": times, "cpu_ms": cpu, "outputs": outputs}))


def replay(scn, name, Detections, Boxes):
    tracker = build(name, float(scn["frame_rate"]))
    times, cpu, outputs = [], [], []
    for t in range(len(scn["counts"])):
        n = int(scn["counts"][t])
        boxes, scores, embs = scn["boxes"][t, :n], scn["scores"][t, :n], scn["embeddings"][t, :n]
        if name == "botsort":
            # BoxMOT 25 ignores numpy embeddings; they go in through its Detections.
            dets = Detections(geometry=Boxes(torch.from_numpy(boxes)), scores=torch.from_numpy(scores),
                              class_ids=torch.zeros(n, dtype=torch.int64), sample_id=str(t),
                              embeddings=torch.from_numpy(embs))
        else:
            dets = np.column_stack([boxes, scores, np.zeros(n, np.float32)]).astype(np.float32)
        start, start_cpu = time.perf_counter(), time.thread_time()
        out = tracker.update(dets, None)
        times.append((time.perf_counter() - start) * 1e3)
        cpu.append((time.thread_time() - start_cpu) * 1e3)
        outputs.append(len(out))
    return times, cpu, outputs

if __name__ == "__main__":
    main()
