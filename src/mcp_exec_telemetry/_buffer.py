"""Per-thread measurement buffers: the hot path appends, collection hands measurements to the SDK.

Why: every ``Histogram.record`` / ``Counter.add`` of the OpenTelemetry SDK copies and cleans the
attribute dict, filters it through the view, hashes it, and takes the aggregation's lock. With two
threads recording into one series that lock convoys under the GIL (total throughput fell to 0.29x
of one thread, see docs/PERFORMANCE.md). So a step's metric records do not call the instruments:

* **Hot path** -- :meth:`MetricBuffer.record` / :meth:`MetricBuffer.add` extend a list owned by
  the calling thread (``threading.local``) by ``instrument, attributes, value``, flat, in one
  atomic ``extend``. No lock, no copy: the attribute dicts are the steps' cached ones. Flat, so a
  buffered measurement is no object the garbage collector tracks: a tuple per entry, alive for
  hundreds of operations, made the cyclic GC run noticeably more often (measured +10% per step).
* **Drain** -- the buffered measurements go to the real instruments, in order, under one drain
  lock: by the session's flush hook (``Session.flush_hooks``, run before every collection:
  summary, Prometheus, OTLP, shutdown), and by the owning thread when its list reaches
  :data:`BOUND` entries, so memory stays bounded. Counter increments are summed per
  (instrument, attribute set) first: one ``add`` per series per drain. Histogram values are
  recorded one by one, so buckets, sum, min and max are exactly those of direct recording.
* **Contention** -- an owner that finds the drain lock taken keeps appending and tries again at
  the next record; it blocks only at :data:`HARD_BOUND` entries. So threads never queue on a lock
  per measurement.
* **Exactness** -- the registry keeps every thread's list (strongly), so a thread that exits with
  measurements buffered loses none: the next flush drains them, then forgets the dead thread's
  empty list. A drain takes the entries present when it starts (slice, then ``del`` of that
  slice, each atomic under the GIL); entries the owner appends meanwhile stay for the next drain.

When exemplars are on, measurements are recorded directly (an exemplar needs the span that is
current at record time), and the buffer is not used.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Callable

__all__ = ["BOUND", "HARD_BOUND", "MetricBuffer", "buffer_for"]

BOUND = 512
"""Entries after which the owning thread drains its own list (when the drain lock is free)."""
HARD_BOUND = 8 * BOUND
"""Entries after which the owning thread waits for the drain lock rather than grow further."""

_STRIDE = 3  # (instrument, attributes, value), flat in one list
_BOUND_ITEMS = BOUND * _STRIDE
_HARD_BOUND_ITEMS = HARD_BOUND * _STRIDE
_IS_HISTOGRAM: dict[type, bool] = {}
Entry = Any


class MetricBuffer:
    """The buffers of one session: one list per recording thread, drained into the instruments."""

    __slots__ = ("_local", "_lists", "_registry_lock", "_drain_lock", "_on_error", "__weakref__")

    def __init__(self, on_error: Callable[[BaseException, str], None] | None = None) -> None:
        self._local = threading.local()
        self._lists: list[tuple[Any, list[Entry]]] = []  # (weakref to owner thread, its list)
        self._registry_lock = threading.Lock()
        self._drain_lock = threading.Lock()
        self._on_error = on_error

    # --- hot path ---------------------------------------------------------------------------

    def record(self, instrument: Any, value: float, attributes: Any = None) -> None:
        """Buffer one histogram value or counter increment."""
        try:
            buf = self._local.buf
        except AttributeError:
            buf = self._new_list()
        buf.extend((instrument, attributes, value))
        if len(buf) >= _BOUND_ITEMS:
            self._drain_own(buf)

    add = record
    """Buffer one counter increment (told apart from a histogram value at drain time)."""

    def record_many(self, entries: list[Entry]) -> None:
        """Buffer several measurements at once: ``[instrument, attributes, value, ...]``, flat."""
        try:
            buf = self._local.buf
        except AttributeError:
            buf = self._new_list()
        buf.extend(entries)
        if len(buf) >= _BOUND_ITEMS:
            self._drain_own(buf)

    # --- draining ---------------------------------------------------------------------------

    def _new_list(self) -> list[Entry]:
        buf: list[Entry] = []
        self._local.buf = buf
        with self._registry_lock:
            self._lists.append((weakref.ref(threading.current_thread()), buf))
        return buf

    def _drain_own(self, buf: list[Entry]) -> None:
        lock = self._drain_lock
        if not lock.acquire(len(buf) >= _HARD_BOUND_ITEMS):
            return  # another thread is draining: keep buffering, try again at the next record
        try:
            self._drain(buf)
        finally:
            lock.release()

    def flush(self) -> None:
        """Hand every thread's buffered measurements to the instruments (the session's flush hook)."""
        with self._drain_lock:
            with self._registry_lock:
                lists = list(self._lists)
            dead = False
            for owner, buf in lists:
                self._drain(buf)
                thread = owner()
                if thread is None or not thread.is_alive():
                    dead = True
            if dead:
                with self._registry_lock:
                    self._lists = [(o, b) for o, b in self._lists if b or ((t := o()) is not None and t.is_alive())]

    def _drain(self, buf: list[Entry]) -> None:
        """Move the complete entries present now from ``buf`` into the instruments (drain lock held)."""
        n = len(buf)
        n -= n % _STRIDE  # the owner's extend is atomic, but stay on entry boundaries regardless
        if not n:
            return
        entries = buf[:n]
        del buf[:n]
        sums: dict[tuple[int, int], list[Any]] = {}
        kinds = _IS_HISTOGRAM
        try:
            for i in range(0, n, _STRIDE):
                instrument, attributes, value = entries[i], entries[i + 1], entries[i + 2]
                cls = type(instrument)
                is_histogram = kinds.get(cls)
                if is_histogram is None:
                    is_histogram = kinds[cls] = hasattr(instrument, "record")
                if is_histogram:
                    instrument.record(value, attributes)
                else:
                    key = (id(instrument), id(attributes))
                    acc = sums.get(key)
                    if acc is None:
                        sums[key] = [instrument, value, attributes]
                    else:
                        acc[1] += value
            for instrument, total, attributes in sums.values():
                instrument.add(total, attributes)
        except Exception as exc:  # pragma: no cover - the SDK's instruments do not raise
            if self._on_error is None:
                raise
            self._on_error(exc, "metric buffer")

    def pending(self) -> int:
        """How many measurements are buffered now, over all threads (for tests and benchmarks)."""
        with self._registry_lock:
            return sum(len(buf) for _owner, buf in self._lists) // _STRIDE


class _Direct:
    """Records straight into the instruments (exemplars on): same interface as :class:`MetricBuffer`."""

    __slots__ = ()

    @staticmethod
    def record(instrument: Any, value: float, attributes: Any) -> None:
        instrument.record(value, attributes)

    @staticmethod
    def add(instrument: Any, value: float, attributes: Any = None) -> None:
        instrument.add(value, attributes)

    @staticmethod
    def record_many(entries: list[Entry]) -> None:
        for i in range(0, len(entries), _STRIDE):
            instrument, attributes, value = entries[i], entries[i + 1], entries[i + 2]
            if hasattr(instrument, "record"):
                instrument.record(value, attributes)
            else:
                instrument.add(value, attributes)

    def flush(self) -> None:
        return None

    def pending(self) -> int:
        return 0


def buffer_for(session: Any) -> Any:
    """The session's buffer, created on first use and registered as a flush hook."""
    buf = getattr(session, "_metric_buffer", None)
    if buf is None:
        if session.config.exemplars:
            buf = _Direct()
        else:
            buf = MetricBuffer(session.guard.contain)
            session.flush_hooks.append(buf.flush)
        session._metric_buffer = buf
    return buf
