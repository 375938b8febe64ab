"""Pairs images with external detections whose header stamps agree within a tolerance.

Either side may arrive first. Once a stamp is paired, anything older still
waiting can no longer be paired (streams arrive in stamp order) and is
discarded; so is the oldest entry when a side holds more than ``max_pending``.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

A = TypeVar("A")
B = TypeVar("B")


class StampPairer(Generic[A, B]):
    def __init__(self, max_pending: int = 10, tolerance_ns: int = 0):
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        if tolerance_ns < 0:
            raise ValueError(f"tolerance_ns must be >= 0, got {tolerance_ns}")
        self.max_pending = max_pending
        self.tolerance_ns = tolerance_ns
        self._images: OrderedDict[int, A] = OrderedDict()
        self._detections: OrderedDict[int, B] = OrderedDict()
        self._lock = threading.Lock()
        self.unpaired_images = 0
        self.unpaired_detections = 0

    def add_image(self, stamp_ns: int, image: A) -> tuple[A, B] | None:
        with self._lock:
            detections = self._pair_or_wait(stamp_ns, image, self._images, self._detections)
            return None if detections is None else (image, detections)

    def add_detections(self, stamp_ns: int, detections: B) -> tuple[A, B] | None:
        with self._lock:
            image = self._pair_or_wait(stamp_ns, detections, self._detections, self._images)
            return None if image is None else (image, detections)

    def _pair_or_wait(self, stamp_ns: int, item, own: OrderedDict, other: OrderedDict):
        """The other side's entry nearest ``stamp_ns`` within the tolerance, or None after storing
        ``item`` to wait for one. After a pair, whatever waits from before it can no longer be paired."""
        partner = self._pop_nearest(other, stamp_ns)
        if partner is None:
            dropped = self._store(own, stamp_ns, item)
            if own is self._images:
                self.unpaired_images += dropped
            else:
                self.unpaired_detections += dropped
            return None
        self._discard_older(stamp_ns - self.tolerance_ns)
        return partner

    def clear(self) -> None:
        with self._lock:
            self._images.clear()
            self._detections.clear()

    def _pop_nearest(self, pending: OrderedDict, stamp_ns: int):
        best = min(pending, key=lambda s: abs(s - stamp_ns), default=None)
        if best is None or abs(best - stamp_ns) > self.tolerance_ns:
            return None
        return pending.pop(best)

    def _store(self, pending: OrderedDict, stamp_ns: int, item) -> int:
        """Stores the item; returns how many entries were evicted to stay within max_pending."""
        replaced = 1 if stamp_ns in pending else 0
        pending[stamp_ns] = item
        pending.move_to_end(stamp_ns)
        evicted = 0
        while len(pending) > self.max_pending:
            pending.popitem(last=False)
            evicted += 1
        return replaced + evicted

    def _discard_older(self, stamp_ns: int) -> None:
        for stamp in [s for s in self._images if s < stamp_ns]:
            del self._images[stamp]
            self.unpaired_images += 1
        for stamp in [s for s in self._detections if s < stamp_ns]:
            del self._detections[stamp]
            self.unpaired_detections += 1
