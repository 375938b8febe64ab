"""Worker threads that always take the newest submitted item, through one or more stages.

Subscription callbacks only swap a slot under a lock, so they never wait for a
slow model; an item replaced before a worker took it is counted as dropped. With
several stages (e.g. detect | embed | track) an item moves on as soon as its stage
is done, so stage 1 works on frame t+1 while stage 2 finishes frame t. At most
``in_flight`` items are between the slot and the end (default: one per worker
thread), so the newest-frame policy holds under overload: frames wait in the
slot, where a newer one replaces them, never in a queue.

The first stage takes an item from the slot just in time: when the next stage is
busy, not before that stage is expected to be free less the first stage's own time
(running means of both), so that a detected frame does not wait for the tracker
while newer frames arrive: the latency stays near the sum of the stages and the
frame processed is the newest one at that moment.

A stage with one worker sees the items in submission order (the order they were
taken from the slot); a stage with more workers runs that many items at once
(stateless work only: a model's forward pass), and the next one-worker stage
puts them back in order. An item a stage ends (returns None: rejected) or fails
on is passed through the later stages untouched, so they keep their order;
``on_error`` is called for a failed item by the thread of the last stage, in
order with the items that succeeded.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
# Running mean weight of a stage's newest run time; the first stage starts this much earlier
# than the next one's expected free time (a margin against the spread of run times).
_MEAN_WEIGHT = 0.2
_EARLY = 1.25


@dataclass(frozen=True)
class Stage:
    """``run(item)`` -> the item for the next stage (None: the item ends here). ``workers`` > 1:
    that many items at once, in any order (only for work that keeps no state between items)."""

    name: str
    run: Callable[[Any], Any]
    workers: int = 1

    def __post_init__(self) -> None:
        if not (isinstance(self.workers, int) and 1 <= self.workers <= 64):
            raise ValueError(f"stage {self.name!r}: workers must be an int in 1..64, got {self.workers!r}")


class _Ended:
    """An item a stage rejected (``error`` None) or failed on."""

    def __init__(self, error: BaseException | None = None):
        self.error = error


# A stage's timing: (stage name, seconds the item waited for the stage, seconds it ran).
TimingHook = Callable[[str, float, float], None]


class LatestWorker(Generic[T]):
    """``handle``: one callable (one stage, one thread: every item start to end before the next)
    or a sequence of ``Stage``. ``on_timing`` gets each stage's wait and run time per item.

    ``keyed``: items are submitted with a key (a camera) and the slot keeps the newest item of each
    key; the first stage gets all the slot holds at once, a dict key -> item (the frames that
    arrived together, for one batched model call); ``dropped_by_key`` counts per key."""

    def __init__(self, handle: Callable[[T], Any] | Sequence[Stage], on_error: Callable[[BaseException], None],
                 name: str = "smiletrack-worker", in_flight: int | None = None, on_timing: TimingHook | None = None,
                 keyed: bool = False):
        self._stages = [Stage("frame", handle)] if callable(handle) else list(handle)
        if not self._stages:
            raise ValueError("LatestWorker needs at least one stage")
        self._max_in_flight = in_flight or sum(s.workers for s in self._stages)
        if self._max_in_flight < 1:
            raise ValueError(f"in_flight must be >= 1, got {in_flight!r}")
        self._on_error = on_error
        self._on_timing = on_timing
        self._cond = threading.Condition()
        self._keyed = keyed
        self._slot: dict[Any, T] = {}
        self._stopping = False
        self._slot_time = 0.0
        self._pending: list[dict[int, tuple[Any, float]]] = [{} for _ in self._stages]  # seq -> (item, queued at)
        self._next = [0] * len(self._stages)      # the next item a one-worker stage takes
        self._running: list[list[float]] = [[] for _ in self._stages]   # start times of the items each runs
        self._mean_s: list[float | None] = [None] * len(self._stages)  # running mean of each stage's run time
        self._admitted = 0
        self._in_flight = 0
        self.submitted = 0
        self.dropped = 0
        self.dropped_by_key: dict[Any, int] = {}
        self.processed = 0
        self._threads = [threading.Thread(target=self._run, args=(i,), name=f"{name}-{stage.name}-{w}", daemon=True)
                         for i, stage in enumerate(self._stages) for w in range(stage.workers)]
        for thread in self._threads:
            thread.start()

    @property
    def stage_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self._stages)

    @property
    def in_flight(self) -> int:
        """Items taken from the slot and not yet through the last stage."""
        with self._cond:
            return self._in_flight

    @property
    def waiting(self) -> bool:
        """An item is in the slot (a newer one of its key submitted now would replace it)."""
        with self._cond:
            return bool(self._slot)

    def submit(self, item: T, key: Any = None) -> None:
        with self._cond:
            if self._stopping:
                return
            if key in self._slot:
                self.dropped += 1
                self.dropped_by_key[key] = self.dropped_by_key.get(key, 0) + 1
            if not self._slot:
                self._slot_time = time.perf_counter()
            self._slot[key] = item
            self.submitted += 1
            self._cond.notify_all()

    def stop(self, timeout: float = 0.5) -> bool:
        """Asks every thread to finish after its current item (the items waiting between stages are
        dropped); True when all ended within ``timeout``."""
        with self._cond:
            self._stopping = True
            self._slot = {}
            for pending in self._pending:
                pending.clear()
            self._cond.notify_all()
        end = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, end - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is pending or running (tests, benchmarks)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._slot and self._in_flight == 0, timeout)

    # ---- under self._cond --------------------------------------------------------------------
    def _admission_delay(self) -> float:
        """Seconds the first stage should wait before taking the slot's item (0: take it now)."""
        if len(self._stages) == 1 or self._mean_s[0] is None or self._mean_s[1] is None:
            return 0.0
        workers = self._stages[1].workers
        running = self._running[1]
        ahead = len(running) + len(self._pending[1]) + len(self._running[0])
        if ahead < workers:
            return 0.0
        now = time.perf_counter()
        first_free = max(0.0, min(running) + self._mean_s[1] - now) if running else self._mean_s[1]
        free_in = first_free + self._mean_s[1] * ((ahead - workers) // workers)
        return free_in - _EARLY * self._mean_s[0]

    def _take(self, index: int) -> tuple[int, Any, float] | None:
        """Waits for the next item stage ``index`` may run: (sequence number, item, queued at);
        None once stopping."""
        while not self._stopping:
            if index == 0 and self._slot and self._in_flight < self._max_in_flight:
                delay = self._admission_delay()
                if delay <= 0.0:
                    item = self._slot if self._keyed else self._slot[None]
                    seq, queued, self._slot = self._admitted, self._slot_time, {}
                    self._admitted += 1
                    self._in_flight += 1
                    return seq, item, queued
                self._cond.wait(delay)
                continue
            seq = self._ready(index) if index > 0 else None
            if seq is not None:
                item, queued = self._pending[index].pop(seq)
                if self._stages[index].workers == 1:
                    self._next[index] += 1
                return seq, item, queued
            self._cond.wait()
        return None

    def _ready(self, index: int) -> int | None:
        """The sequence number stage ``index`` may take now, if any."""
        pending = self._pending[index]
        if self._stages[index].workers == 1:
            return self._next[index] if self._next[index] in pending else None
        return min(pending) if pending else None

    # ---- the threads ---------------------------------------------------------------------
    def _run(self, index: int) -> None:
        stage, last = self._stages[index], index == len(self._stages) - 1
        while True:
            with self._cond:
                taken = self._take(index)
                if taken is None:
                    return
                seq, item, queued = taken
                started = time.perf_counter()
                self._running[index].append(started)
            if not isinstance(item, _Ended):
                try:
                    out = stage.run(item)
                    item = _Ended() if out is None else out
                except Exception as exc:  # noqa: BLE001 - one bad frame must not end the worker
                    item = _Ended(exc)
                ran = time.perf_counter() - started
                with self._cond:
                    mean = self._mean_s[index]
                    self._mean_s[index] = ran if mean is None else mean + _MEAN_WEIGHT * (ran - mean)
                if self._on_timing is not None:
                    self._on_timing(stage.name, started - queued, ran)
            if last and isinstance(item, _Ended) and item.error is not None:
                self._on_error(item.error)
            with self._cond:
                self._running[index].remove(started)
                if self._stopping:
                    return
                if last:
                    self._in_flight -= 1
                    self.processed += 1
                else:
                    self._pending[index + 1][seq] = (item, time.perf_counter())
                self._cond.notify_all()
