"""The process's CPU thread counts for torch and OpenCV (``threads.*`` parameters).

Both libraries keep one pool per process, so the node sets them once, before it
loads its models; ONNX Runtime and OpenVINO take theirs per model
(``detector.cpu_threads``, ``embedder.threads``). On a small machine where the
detector and the embedder run on threads of their own (``pipeline.mode``
pipelined), one library thread per stage avoids two pools fighting for the cores.
"""
from __future__ import annotations


def set_thread_counts(torch_threads: int, opencv_threads: int) -> dict[str, int]:
    """0 leaves a library's own default; returns the counts in effect."""
    import cv2
    import torch

    if torch_threads:
        torch.set_num_threads(torch_threads)
    if opencv_threads:
        cv2.setNumThreads(opencv_threads)
    return {"torch": torch.get_num_threads(), "opencv": cv2.getNumThreads()}
