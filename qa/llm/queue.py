"""Admission control in front of the one model: who answers now, who waits, who is turned away.

The model answers ``slots`` questions at once (``Settings.parallel``); everyone else waits in
one first-come-first-served line, browser users and API callers alike, so neither can starve
the other. API callers are turned away (:class:`QueueFull`, HTTP 429 with ``Retry-After``)
when ``max_waiting`` are already waiting: a client then knows at once to come back later
instead of holding a socket open for minutes. Browser users are never turned away (Gradio's
own queue bounds them). A place given up while waiting (the client disconnected) leaves the
line at once; an answer being written ends at its next token. While anyone answers through
the queue, background work (evaluation runs of the Evaluate tab, the corpus's refit) holds back
(:class:`ChatFirst`): before each item it waits while any chat answer is written, at most
``patience`` seconds, so a chat that never ends cannot stall it forever.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

CHAT_PATIENCE_S = 120.0
"""The longest background work waits for chat answers before asking its next item anyway."""
FIRST_GUESS_S = 10.0
"""Seconds one answer is assumed to take before any was timed (for ``Retry-After``)."""


class ChatFirst:
    """Gives chat answers priority over background items (see the module docstring)."""

    def __init__(self, patience: float = CHAT_PATIENCE_S) -> None:
        self.patience = patience
        self._answering = 0
        self._changed = threading.Condition()

    @contextmanager
    def chat(self) -> Iterator[None]:
        """Hold while one chat answer is written."""
        with self._changed:
            self._answering += 1
        try:
            yield
        finally:
            with self._changed:
                self._answering -= 1
                self._changed.notify_all()

    def eval_turn(self) -> float:
        """Block until no chat answer is being written (at most ``patience`` seconds); returns
        the seconds waited."""
        start = time.monotonic()
        with self._changed:
            self._changed.wait_for(lambda: self._answering == 0, timeout=self.patience)
        return time.monotonic() - start


class QueueFull(Exception):
    """Too many are waiting; ``retry_after`` is a guess, in whole seconds, of when to retry."""

    def __init__(self, waiting: int, retry_after: int) -> None:
        super().__init__(
            f"{waiting} questions are waiting for the model already; retry in about {retry_after} s"
        )
        self.retry_after = retry_after


class Place:
    """A place in line: :meth:`wait` for the turn, then answer inside ``with place:``."""

    def __init__(self, line: ModelQueue) -> None:
        self._line = line
        self.entered = time.monotonic()
        self.started: float | None = None
        self.cancelled = False

    @property
    def waited_s(self) -> float:
        """Seconds spent waiting for the turn (so far, if still waiting)."""
        return (self.started or time.monotonic()) - self.entered

    def position(self) -> int:
        """How many are ahead (0: this place answers now or is next)."""
        return self._line._ahead(self)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until it is this place's turn; False if it was cancelled or timed out."""
        return self._line._wait(self, timeout)

    def cancel(self) -> None:
        """Give the place up (a client went away); wakes a :meth:`wait` in another thread."""
        self._line._cancel(self)

    def __enter__(self) -> Place:
        return self

    def __exit__(self, *exc: object) -> None:
        self._line._leave(self)


class ModelQueue:
    """The line in front of the model (see the module docstring)."""

    def __init__(
        self, slots: int = 1, max_waiting: int = 32, chat_first: ChatFirst | None = None
    ) -> None:
        self.slots = max(1, slots)
        self.max_waiting = max_waiting
        self.chat_first = chat_first or ChatFirst()
        self._cond = threading.Condition()
        self._waiting: deque[Place] = deque()
        self._running: set[Place] = set()
        self._answer_s = FIRST_GUESS_S
        self._timed = 0

    @property
    def waiting(self) -> int:
        """Places waiting for their turn."""
        return len(self._waiting)

    @property
    def running(self) -> int:
        """Places answering now."""
        return len(self._running)

    def enter(self, *, limit: bool = True) -> Place:
        """Join the line (``limit``: refuse when it is full, as for API callers).

        Raises:
            QueueFull: ``max_waiting`` places wait already (only with ``limit``).
        """
        with self._cond:
            if limit and self.waiting + self.running >= self.slots + self.max_waiting:
                raise QueueFull(self.waiting, self.retry_after())
            place = Place(self)
            self._waiting.append(place)
            self._cond.notify_all()
            return place

    def retry_after(self) -> int:
        """Whole seconds until a place is likely to come free for a newcomer."""
        ahead = len(self._waiting) + len(self._running)
        return max(1, math.ceil(self._answer_s * ahead / self.slots))

    def _free(self) -> bool:
        return len(self._running) < self.slots

    def _ahead(self, place: Place) -> int:
        with self._cond:
            if place in self._running:
                return 0
            try:
                return self._waiting.index(place)
            except ValueError:
                return 0

    def _wait(self, place: Place, timeout: float | None) -> bool:
        def ready() -> bool:
            if place.cancelled:
                return True
            return self._free() and bool(self._waiting) and self._waiting[0] is place

        with self._cond:
            if not self._cond.wait_for(ready, timeout) or place.cancelled:
                return False
            self._waiting.popleft()
            self._running.add(place)
            place.started = time.monotonic()
            self._cond.notify_all()
            return True

    def _cancel(self, place: Place) -> None:
        with self._cond:
            place.cancelled = True
            if place in self._waiting:
                self._waiting.remove(place)
            self._cond.notify_all()

    def _leave(self, place: Place) -> None:
        with self._cond:
            if place in self._running:
                self._running.discard(place)
                assert place.started is not None
                took = time.monotonic() - place.started
                # A running mean over the last ~10 answers: Retry-After follows the load.
                self._timed += 1
                weight = 1 / min(self._timed, 10)
                self._answer_s += weight * (took - self._answer_s)
            self._cond.notify_all()
