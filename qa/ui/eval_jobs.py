"""Evaluations started from the browser: one at a time, in the background, sharing the model
with the chat, and only for the users allowed to start them.

How the chat and an evaluation share the one model: the chat goes first. The run asks its gold
items one by one, and before each item it waits while any chat answer is being written
(:class:`qa.llm.queue.ChatFirst`). A question asked during a run waits at most for the item
being asked (or is decoded alongside it when the local model answers several at once,
:mod:`qa.llm.engine`), and the run pauses until the chat is answered.

The run lives in a thread of its own, not in the request that started it: closing the tab does
not stop it, a reload shows it again, and Cancel stops it after the current item, leaving a
partial report.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from qa.assistant import Assistant
from qa.errors import QAError
from qa.evaluation.evaluate import load_gold
from qa.evaluation.runs import EvalPaths, GoldSet, report_dir, run_gold_set, run_name
from qa.llm.queue import ChatFirst

log = logging.getLogger(__name__)

GENERATE_COUNT = 40
"""Items the Evaluate tab's button generates (``qa gold generate --count`` for others)."""


def may_administer(auth_on: bool, user: str, admins: list[str]) -> bool:
    """Whether ``user`` may run evaluations, apply a threshold or promote ratings: anyone when
    there is no login (a local, single-user app), else only the users ``admins`` names."""
    return not auth_on or user in admins


def refusal(user: str) -> str:
    """What a user who may not change anything is told."""
    return (
        f"⛔ {user or 'This user'} may only look: running evaluations, applying a threshold and "
        "promoting ratings are for the users named in QA_ADMINS."
    )


@dataclass(frozen=True)
class JobState:
    """A snapshot of the current (or last) run, for display."""

    name: str
    user: str
    total: int
    done: int = 0
    asking_since: float | None = None
    finished: bool = False
    cancelled: bool = False
    out: Path | None = None
    error: str | None = None
    chat_wait_s: float = 0.0
    kind: str = "run"  # or "generate": a gold set written from the documents

    @property
    def seconds_left(self) -> float | None:
        """Estimated from the items asked so far; None before the first one is done."""
        if not self.done or self.asking_since is None or self.finished:
            return None
        per_item = (time.monotonic() - self.asking_since - self.chat_wait_s) / self.done
        return max(per_item, 0.0) * (self.total - self.done)


class EvalJobs:
    """Runs one gold set at a time in a background thread and reports its progress."""

    def __init__(self, assistant: Assistant, paths: EvalPaths, turns: ChatFirst) -> None:
        self.assistant = assistant
        self.paths = paths
        self.turns = turns
        self._state: JobState | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    @property
    def state(self) -> JobState | None:
        """The current or last run, or None if none was started."""
        return self._state

    @property
    def running(self) -> bool:
        """Whether a run is going."""
        return self._state is not None and not self._state.finished

    def start(
        self, gold_set: GoldSet, sample: int | None, user: str, *, per_document: bool = False
    ) -> JobState:
        """Start a run of ``gold_set`` in the background (see
        :func:`qa.evaluation.runs.run_gold_set`).

        Raises:
            QAError: a run is already going, or the gold file cannot be read.
        """
        with self._lock:
            if self.running:
                raise QAError("A run is already going; wait for it or cancel it")
            try:
                total = len(load_gold(gold_set.path, sample=sample))
            except (OSError, ValueError) as err:
                raise QAError(f"Cannot read {gold_set.label}: {err}") from err
            name = run_name(gold_set.path, sample)
            self._state = JobState(name, user, total)
            self._stop.clear()
        thread = threading.Thread(
            target=self._run,
            args=(gold_set, sample, per_document),
            name=f"eval-{name}",
            daemon=True,
        )
        thread.start()
        return self._state

    def generate(self, user: str, count: int = GENERATE_COUNT, seed: int = 0) -> JobState:
        """Write a gold set from the assistant's documents in the background
        (:meth:`qa.Assistant.generate_gold`) to ``<evals>/generated/<documents folder>.jsonl``;
        the chat goes first, Cancel keeps what was made so far.

        Raises:
            QAError: a run is already going.
        """
        from qa.trust.synthetic import gold_path

        out = self.paths.root / "generated" / gold_path(self.assistant.settings).name
        with self._lock:
            if self.running:
                raise QAError("A run is already going; wait for it or cancel it")
            self._state = JobState(out.name, user, count, kind="generate")
            self._stop.clear()
        thread = threading.Thread(
            target=self._generate, args=(out, count, seed), name="generate", daemon=True
        )
        thread.start()
        return self._state

    def _generate(self, out: Path, count: int, seed: int) -> None:
        try:
            self.assistant.generate_gold(
                count=count,
                seed=seed,
                out=out,
                progress=lambda done, total: self._update(done=done, total=total),
                cancel=lambda: not self._proceed(),
            )
        except QAError as err:
            self._update(finished=True, error=str(err))
        except Exception:
            log.exception("generating %s failed", out)
            self._update(finished=True, error="generating failed; details are in the server log")
        else:
            self._update(finished=True, out=out)

    def cancel(self) -> bool:
        """Stop the run after its current item (it is saved as partial); False if none runs."""
        if not self.running:
            return False
        self._stop.set()
        self._update(cancelled=True)
        return True

    def _update(self, **changes: object) -> None:
        with self._lock:
            assert self._state is not None
            self._state = replace(self._state, **changes)  # type: ignore[arg-type]

    def _proceed(self) -> bool:
        state = self._state
        assert state is not None
        if state.asking_since is None:
            self._update(asking_since=time.monotonic())
        waited = self.turns.eval_turn()
        if waited > 0.01:
            self._update(chat_wait_s=self._state.chat_wait_s + waited)  # type: ignore[union-attr]
        return not self._stop.is_set()

    def _run(self, gold_set: GoldSet, sample: int | None, per_document: bool) -> None:
        assert self._state is not None
        out = report_dir(self.paths.reports, self._state.name)
        try:
            run_gold_set(
                self.assistant,
                gold_set,
                sample=sample,
                per_document=per_document,
                out=out,
                progress=lambda done, total: self._update(done=done, total=total),
                proceed=self._proceed,
            )
        except QAError as err:
            self._update(finished=True, error=str(err))
        except Exception:
            log.exception("evaluating %s failed", gold_set.path)
            self._update(finished=True, error="the run failed; details are in the server log")
        else:
            self._update(finished=True, out=out)
