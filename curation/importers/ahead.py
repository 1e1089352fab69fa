"""Read ahead: run an iterator in a thread, a bounded queue ahead of its consumer.

An import spends much of its time parsing lines (Python) and the rest waiting for the database; with the
parsing in a thread, the next batch is read while the database writes the last one (psycopg releases the GIL
while it waits). Items travel in chunks, so the queue's locking costs little per item. Hand-written because the
standard library has no bounded, closable prefetching iterator: ``concurrent.futures`` maps eagerly, and a
plain ``queue`` leaks its thread when the consumer stops early.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
_DONE = object()


class ReadAhead(Generic[T]):
    """``with ReadAhead(items) as ahead: for item in ahead: ...``; the producer's exception is raised in the
    consumer where its items ran out. Leaving the block stops and joins the thread."""

    def __init__(self, items: Iterable[T], *, chunk: int = 256, depth: int = 16):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)  # at most depth x chunk items read ahead
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._chunk = chunk
        self._thread = threading.Thread(target=self._produce, args=(iter(items),), name="read-ahead", daemon=True)
        self._thread.start()

    def _produce(self, items: Iterator[T]) -> None:
        chunk: list[T] = []
        try:
            for item in items:
                chunk.append(item)
                if len(chunk) >= self._chunk:
                    if not self._put(chunk):
                        return
                    chunk = []
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised after the items before it
            self._error = exc
        if chunk and not self._put(chunk):
            return
        self._put(_DONE)

    def _put(self, value) -> bool:
        """False when the consumer has gone."""
        while not self._stop.is_set():
            try:
                self._queue.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[T]:
        while (chunk := self._queue.get()) is not _DONE:
            yield from chunk
        self._thread.join()
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> ReadAhead[T]:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
