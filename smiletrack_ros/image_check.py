"""The one check of an image handed to a model or the tracker (numpy only, bottom layer)."""
from __future__ import annotations

import numpy as np


def check_image(image: object, *, error: type[Exception] = ValueError, name: str = "image",
                allow_gray: bool = False) -> np.ndarray:
    """Return ``image`` if it is a non-empty HxWx3 (or, with ``allow_gray``, HxW) uint8 array;
    otherwise raise ``error`` (the caller's input error) with a message naming ``name``."""
    ok = isinstance(image, np.ndarray) and image.dtype == np.uint8 and (
        (image.ndim == 3 and image.shape[2] == 3) or (allow_gray and image.ndim == 2)) and min(image.shape[:2]) > 0
    if not ok:
        expected = "HxWx3 uint8 (BGR) or HxW uint8" if allow_gray else "HxWx3 uint8 (BGR)"
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise error(f"{name} must be a non-empty {expected} array, got shape {shape} dtype {dtype}")
    return image  # type: ignore[return-value]
