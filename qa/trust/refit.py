"""The corpus's regression set kept made and asked in the background whenever the documents
change (``Settings.auto_calibrate``, on by default): no labels, no command to remember.

``qa chat`` and ``qa api`` start one :class:`BackgroundRefit`. Once the start-up is over, and
again after each change to the index (an upload, a removal, a re-index from the page or the
API), it compares the index's signature with the one recorded for it
(:func:`qa.trust.synthetic.fitted_corpus`). When they differ it runs ``qa calibrate
--synthetic`` without adopting (:func:`qa.trust.synthetic.calibrate_synthetic`): questions
generated from the documents (``evals/generated/<folder>.jsonl``), asked through the chain, a
decision fitted on the answers and checked. It never changes what users are told: a fit on
generated questions halved the seed's right answers when it did (#33), so only an explicit
``qa calibrate --synthetic`` may adopt one, and only when it passes its check.

The chat goes first: before each generated candidate and each question it waits while a chat
answer is written (:class:`qa.llm.queue.ChatFirst`), so a chat question waits at most for the
item in progress. Documents changed while it runs make it start over once it is done. One that
fails says why in :attr:`BackgroundRefit.error`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from qa.errors import QAError
from qa.llm.queue import ChatFirst
from qa.trust.synthetic import fitted_corpus

if TYPE_CHECKING:
    from qa.assistant import Assistant

log = logging.getLogger(__name__)

COUNT = 40
"""Questions generated for a refit (``qa calibrate --synthetic --count`` for another size)."""


class BackgroundRefit:
    """Keeps ``assistant``'s decision fitted to its documents (see the module docstring).

    ``ready`` blocks until the assistant may be asked (the start-up's ``wait``); ``count``
    questions are generated per refit."""

    def __init__(
        self,
        assistant: Assistant,
        chat_first: ChatFirst,
        *,
        ready: Callable[[], object] | None = None,
        count: int = COUNT,
    ) -> None:
        self.assistant = assistant
        self.chat_first = chat_first
        self.ready = ready
        self.count = count
        self.status = ""
        self.error = ""
        self.fitted = 0  # refits finished in this process
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._again = False
        self._stop = threading.Event()

    @property
    def busy(self) -> bool:
        """Whether a refit is going or about to check whether one is needed."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def start(self) -> None:
        """Check in the background whether the documents changed since the last fit, and refit
        if so; while a refit runs, one more check follows it."""
        settings = self.assistant.settings
        if not settings.auto_calibrate or settings.answerability == "off":
            return
        with self._lock:
            if self.busy:
                self._again = True
                return
            self._again = False
            self._thread = threading.Thread(target=self._loop, name="qa-refit", daemon=True)
            self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop after the item in progress (nothing half-done is written)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def needed(self) -> str:
        """The index's signature if it was last asked with other documents, else ""."""
        corpus = self.assistant.store.signature()
        return corpus if corpus and corpus != fitted_corpus(self.assistant.settings) else ""

    def _loop(self) -> None:
        if self.ready is not None:
            self.ready()
        while not self._stop.is_set():
            try:
                if self.needed():
                    self._refit()
            except QAError as err:
                self.error = str(err)
            except Exception:  # the chat goes on with the decision it has
                log.exception("refitting the answer decision failed")
                self.error = "Fitting answers to your documents failed; see the server log."
            finally:
                self.status = ""
            with self._lock:
                if not self._again:
                    return
                self._again = False

    def _refit(self) -> None:
        self.error = ""
        self.status = "Checking answers on questions made from your documents, in the background…"
        result = self.assistant.calibrate_synthetic(
            count=self.count, adopt=False, progress=self._progress, proceed=self._proceed
        )
        self.fitted += 1
        check = result.fitted.check
        log.info(
            "%d generated questions asked (%s); a decision fitted on them %s",
            result.questions,
            result.gold,
            "would pass its check"
            if check and check.passed
            else "would be refused: " + "; ".join(check.reasons if check else ()),
        )

    def _progress(self, done: int, total: int) -> None:
        self.status = (
            "Checking answers on questions made from your documents, in the background "
            f"({done} of {total}; your questions go first)…"
        )

    def _proceed(self) -> bool:
        self.chat_first.eval_turn()
        return not self._stop.is_set()
