"""Getting ready while the page is already up: index the documents folder, load the models and
read the fixed prompt prefix, saying what is happening all along.

Without this, ``qa chat`` showed nothing until indexing and the models were done (20 s and
more on 2 cores, a minute or two on a first start). The page is now served first; a question
asked meanwhile waits for the warm-up with its status shown, and never fails for it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from qa.errors import QAError
from qa.ui.render import md_escape

if TYPE_CHECKING:
    from qa.assistant import Assistant
    from qa.trust.refit import BackgroundRefit

log = logging.getLogger(__name__)

PROMPT_TOKENS_PER_S = {"portable": 40, "avx512": 90}
"""Prompt tokens read per second on 2 cores, by llama.cpp build (measured, docs/benchmarks.md):
for the first start's estimate of how long computing the prompt prefix takes."""
CHARS_PER_TOKEN = 4
SYSTEM_TOKENS = 400  # the instructions before the passages
STARTING = "Starting…"
"""The status before the warm-up has begun."""


class Startup:
    """The background warm-up of ``assistant``: :attr:`status` says what it is doing ("" once
    ready), :meth:`wait` blocks until it is done, :attr:`error` holds why it failed."""

    def __init__(self, assistant: Assistant, *, index: bool = True) -> None:
        self.assistant = assistant
        self.index = index
        self.status = STARTING
        self.error = ""
        self._done = threading.Event()

    @property
    def ready(self) -> bool:
        """Whether the warm-up is over (also when it failed: questions then report why)."""
        return self._done.is_set()

    def start(self) -> Startup:
        """Begin in a daemon thread; returns self."""
        threading.Thread(target=self._run, name="qa-startup", daemon=True).start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Block until ready or ``timeout`` seconds; True when ready."""
        return self._done.wait(timeout)

    def _run(self) -> None:
        t0 = time.perf_counter()
        try:
            if self.index:
                self.status = "Indexing your documents…"
                self.assistant.index(progress=self._embedding)
            self.status = "Loading the language model…"
            _ = self.assistant.llm
            self.status = self._prefix_status()
            self.assistant.warm_up()
            log.info("ready in %.1f s", time.perf_counter() - t0)
        except QAError as err:
            self.error = str(err)
        except Exception:  # the page stays up; questions say where the details are
            log.exception("warm-up failed")
            self.error = "Getting ready failed; details are in the server log."
        finally:
            self.status = ""
            self._done.set()

    def _embedding(self, done: int, total: int) -> None:
        self.status = f"Indexing your documents: {done} of {total} chunks embedded…"

    def _prefix_status(self) -> str:
        """What the first question's prompt costs: loaded from a saved state, or computed now
        (first start over this corpus), with the time that is expected to take."""
        from qa.llm.cpu import build_record
        from qa.llm.models import state_dir

        settings = self.assistant.settings
        saved = state_dir(settings)
        if settings.kv_state_files and saved.is_dir() and any(saved.iterdir()):
            return "Loading the saved prompt prefix…"
        whole = self.assistant.retriever.whole_corpus()
        chars = sum(len(c.text) for c in whole) if whole else settings.top_k * settings.chunk_size
        variant = (build_record() or {}).get("variant", "portable")
        rate = PROMPT_TOKENS_PER_S.get(variant, PROMPT_TOKENS_PER_S["portable"])
        seconds = (chars / CHARS_PER_TOKEN + SYSTEM_TOKENS) / rate
        return (
            "First start over these documents: reading them into the model's prompt "
            f"(about {seconds:.0f} s; later starts load it saved)…"
        )


def startup_note(startup: Startup | None, refit: BackgroundRefit | None = None) -> str:
    """The line above the chat: what is still loading, or why getting ready failed; then what
    the background refit (the corpus's questions asked) is doing, or why it failed."""
    if startup is not None and startup.error:
        return f"**Not ready:** {md_escape(startup.error)}"
    if startup is not None and not startup.ready:
        return md_escape(startup.status)
    if refit is not None and refit.error:
        return md_escape(f"Checking questions made from your documents failed: {refit.error}")
    return md_escape(refit.status) if refit is not None else ""


def notes_pending(startup: Startup | None, refit: BackgroundRefit | None) -> bool:
    """Whether the line above the chat may still change (the page then polls it)."""
    return (startup is not None and not startup.ready) or (refit is not None and refit.busy)
