"""Draws tracks on a BGR image (the node's debug_image and the demo video); OpenCV only, no ROS."""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from smiletrack_ros.tracking import TrackOutput


def colour_for_id(track_id: int) -> tuple[int, int, int]:
    """A stable, well-spread BGR colour per id (golden-ratio hue steps)."""
    import cv2

    hue = int((track_id * 0.618033988749895 % 1.0) * 180)
    hsv = np.array([[[hue, 220, 255]]], np.uint8)
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def draw_tracks(image_bgr: np.ndarray, tracks: Iterable[TrackOutput], class_names: Sequence[str] = (),
                copy: bool = True) -> np.ndarray:
    """Boxes and ``id`` labels (plus the class name when names are given), one colour per id."""
    labelled = ((t.track_id, t.box, class_names[t.class_id] if 0 <= t.class_id < len(class_names) else "")
                for t in tracks)
    return draw_boxes(image_bgr, labelled, copy=copy)


def draw_boxes(image_bgr: np.ndarray, labelled: Iterable[tuple[int, np.ndarray, str]],
               copy: bool = True) -> np.ndarray:
    """(track_id, box x1y1x2y2, extra label text) triples onto the image."""
    import cv2

    canvas = image_bgr.copy() if copy else image_bgr
    height, width = canvas.shape[:2]
    for track_id, box, extra in labelled:
        colour = colour_for_id(int(track_id))
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        x1, x2 = max(min(x1, width - 1), 0), max(min(x2, width - 1), 0)
        y1, y2 = max(min(y1, height - 1), 0), max(min(y2, height - 1), 0)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, 2)
        text = f"{track_id} {extra}".strip()
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        ty = y1 - 2 if y1 - th - base - 2 >= 0 else y1 + th + 2
        cv2.rectangle(canvas, (x1, ty - th - 2), (x1 + tw + 2, ty + base - 2), colour, -1)
        cv2.putText(canvas, text, (x1 + 1, ty - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas
