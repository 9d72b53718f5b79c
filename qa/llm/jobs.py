"""What a caller hands the engine and gets back: a :class:`Job` (prompt tokens and how to
continue them) and its :class:`Ticket`, a stream of ``(text, metadata)`` pieces that can be
cancelled. Kept apart from :mod:`qa.llm.engine` so callers need not know how it schedules."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Job:
    """One generation: prompt token ids and how to continue them."""

    tokens: list[int]
    max_tokens: int
    grammar: str | None = None
    hidden: bool = False
    stop: tuple[str, ...] = ()
    temperature: float = 0.0
    ban: tuple[int, ...] = ()
    """Token ids never generated (their probabilities are still reported)."""


_DONE = object()


class Ticket:
    """A submitted :class:`Job`: iterate for its ``(text, metadata)`` pieces (the metadata as
    :class:`qa.llm.llamacpp.LlamaCppChat` documents it); ``cancel`` ends it early."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.cancelled = threading.Event()
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self.submitted = time.perf_counter()

    def __iter__(self) -> Iterator[tuple[str, dict]]:
        while (event := self.get()) is not None:
            yield event

    def get(self, timeout: float | None = None) -> tuple[str, dict] | None:
        """The next piece, None once the job is over; raises the job's error, or
        ``queue.Empty`` if nothing came within ``timeout`` seconds."""
        event = self._events.get(timeout=timeout)
        if isinstance(event, BaseException):
            raise event
        if event is _DONE:
            self._events.put(_DONE)  # later calls see the end too
            return None
        return event

    def cancel(self) -> None:
        """Stop generating for this job (its sequence is freed at the next step)."""
        self.cancelled.set()

    def put(self, event: Any) -> None:
        """Hand the caller a piece, or the exception that ended the job."""
        self._events.put(event)

    def finish(self) -> None:
        """The job is over: iteration ends after the pieces already put."""
        self._events.put(_DONE)
