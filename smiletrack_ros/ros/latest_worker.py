"""A worker thread that always processes the newest submitted item.

Subscription callbacks only swap a slot under a lock, so they never wait for a
slow detector; an item replaced before the worker took it is counted as dropped.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestWorker(Generic[T]):
    def __init__(self, handle: Callable[[T], None], on_error: Callable[[BaseException], None],
                 name: str = "smiletrack-worker"):
        self._handle = handle
        self._on_error = on_error
        self._cond = threading.Condition()
        self._slot: T | None = None
        self._has_item = False
        self._stopping = False
        self._busy = False
        self.submitted = 0
        self.dropped = 0
        self.processed = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: T) -> None:
        with self._cond:
            if self._has_item:
                self.dropped += 1
            self._slot, self._has_item = item, True
            self.submitted += 1
            self._cond.notify()

    def stop(self, timeout: float = 0.5) -> bool:
        """Asks the thread to finish after its current item; True when it ended within ``timeout``."""
        with self._cond:
            self._stopping = True
            self._slot, self._has_item = None, False
            self._cond.notify()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is pending or running (tests, benchmarks)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._has_item and not self._busy, timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._has_item or self._stopping)
                if self._stopping:
                    return
                item, self._slot, self._has_item = self._slot, None, False
                self._busy = True
            try:
                self._handle(item)  # type: ignore[arg-type]
            except Exception as exc:  # noqa: BLE001 - one bad frame must not end the worker
                self._on_error(exc)
            finally:
                with self._cond:
                    self._busy = False
                    self.processed += 1
                    self._cond.notify_all()
