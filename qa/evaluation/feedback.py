"""Ratings of answers, kept as gold items so that a wrong answer becomes a regression test.

A user's 👍 / 👎 is worth most when it can be re-run: every rating is appended to a JSONL file
(``Settings.feedback_path``, ``evals/feedback.jsonl`` by default) whose lines are gold items in
the format of ``evals/README.md``, so ``qa eval --gold evals/feedback.jsonl`` runs them as they
are. What was rated (question, standalone question, answer, cited chunks, index, time, user)
rides along under the item's ``feedback`` key, which the scorer ignores.

How a rating becomes an expectation:

- 👍 on an answer: its key terms (numbers, names, else content words) are the ``facts`` that
  must stay in the answer, and one of its cited files is a required source;
- 👍 on an abstention, or 👎 with ``unanswerable``: an ``unanswerable`` item, it must abstain;
- 👎 with a correction: the correction's key terms are the ``facts``.

A 👎 with neither a correction nor ``unanswerable`` says only that something is wrong, which
no test can check, so it is refused with a message saying what to add.

Several server workers, CLI runs and notebooks may rate at once. Each record is one
``write()`` of a whole line under an ``flock``, then ``fsync``; a process killed mid-write can
leave at most a partial last line, which the next writer cuts off and every reader skips, so the
file always loads.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from qa.answer import Answer, Citation, Sentence, Timings
from qa.errors import QAError
from qa.evaluation.gold import parse_gold_item
from qa.text import STOPWORDS, normalize, strip_citations

Verdict = Literal["up", "down"]

MAX_TERMS = 3
"""Fact groups taken from an answer or a correction: enough to pin the answer down, few enough
that a correct rephrasing still passes."""

# Plus the words of an abstention ("I don't know: the documents don't say"), never a key term.
_STOP = STOPWORDS | {"answer", "none", "know", "documents", "say", "don"}
_NAME = re.compile(r"\b(?:\d[\d.,:/]*\d|\d|[A-Z][\w'’-]+)")


class FeedbackError(QAError):
    """A rating that cannot become a gold item as given."""


@dataclass(frozen=True)
class FeedbackItem:
    """One rating as stored: a gold item (``gold``, loadable by
    :func:`qa.evaluation.gold.load_gold`)
    and what was rated (``meta``, stored under the item's ``feedback`` key)."""

    id: str
    verdict: Verdict
    question: str
    gold: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def expectation(self) -> str:
        """What the item checks, in words: ``facts: 1998`` or ``unanswerable``."""
        if self.gold.get("unanswerable"):
            return "unanswerable"
        return "facts: " + "; ".join(" or ".join(g) for g in self.gold.get("facts", []))

    def line(self) -> dict[str, Any]:
        """The JSONL record: the gold item plus ``feedback``."""
        return {**self.gold, "feedback": self.meta}

    @classmethod
    def from_line(cls, raw: dict[str, Any]) -> FeedbackItem:
        """Parse one JSONL record (validated as a gold item)."""
        parse_gold_item(raw, "feedback item")
        meta = dict(raw.get("feedback") or {})
        gold = {k: v for k, v in raw.items() if k != "feedback"}
        verdict = "down" if meta.get("verdict") == "down" else "up"
        return cls(str(raw["id"]), verdict, str(raw["question"]), gold, meta)


def answer_from_dict(data: dict[str, Any]) -> Answer:
    """Rebuild an :class:`Answer` from ``dataclasses.asdict(answer)`` (as the UI keeps it in
    its session state and chat history); unknown keys are ignored."""
    known = {f.name for f in fields(Answer)} - {"signals"}  # raw model signals are not kept
    values = {k: v for k, v in data.items() if k in known}
    cites = {f.name for f in fields(Citation)}

    def cite(c: dict[str, Any]) -> Citation:
        return Citation(**{k: v for k, v in c.items() if k in cites})

    for key in ("citations", "retrieved"):
        values[key] = [cite(c) for c in data.get(key, [])]
    values["sentences"] = [
        Sentence(s["text"], [cite(c) for c in s.get("citations", [])])
        for s in data.get("sentences", [])
    ]
    timing = {f.name for f in fields(Timings)}
    values["timings"] = Timings(**{k: v for k, v in data.get("timings", {}).items() if k in timing})
    return Answer(**values)


def key_terms(text: str, limit: int = MAX_TERMS) -> list[str]:
    """The terms an answer must contain: numbers and capitalized names, else content words.

    Example:
        >>> key_terms("It opened in 1998 under Marta Kovacs [2].")
        ['1998', 'marta', 'kovacs']
    """
    text = strip_citations(text)
    named = [normalize(m) for m in _NAME.findall(text)]
    words = [w for m in named for w in m.split() if w not in _STOP]
    if not words:
        words = [w for w in normalize(text).split() if w not in _STOP and len(w) > 2]
    return list(dict.fromkeys(words))[:limit]


def make_item(
    answer: Answer,
    verdict: Verdict,
    correction: str | None = None,
    *,
    unanswerable: bool = False,
    index: dict[str, Any] | None = None,
    user: str | None = None,
) -> FeedbackItem:
    """The gold item a rating stands for (see the module docstring for the rules).

    Raises:
        FeedbackError: the verdict is unknown, or a 👎 has nothing a test could check.
    """
    if verdict not in ("up", "down"):
        raise FeedbackError(f"The verdict must be 'up' or 'down', not {verdict!r}")
    correction = " ".join((correction or "").split()) or None
    question = answer.standalone_question or answer.question
    gold: dict[str, Any] = {"question": question}
    said = normalize(strip_citations(answer.text)).split()[:1]
    if unanswerable or (verdict == "up" and answer.abstained):
        gold["unanswerable"] = True
    elif answer.shape == "yesno" and said in (["yes"], ["no"]):
        # A rated verdict is a yes/no item: 👍 keeps it, 👎 turns it over.
        gold["yes"] = (said == ["yes"]) == (verdict == "up")
        if sources := sorted({c.source for c in answer.citations}):
            gold["sources"] = sources
    elif verdict == "up":
        # An answer of only common words ("all in") is checked for as a whole.
        whole = normalize(strip_citations(answer.text))
        gold["facts"] = [[t] for t in key_terms(answer.text) or ([whole] if whole else [])]
        if sources := sorted({c.source for c in answer.citations}):
            gold["sources"] = sources
    elif correction:
        gold["facts"] = _correction_facts(correction)
    else:
        raise FeedbackError(
            "A 👎 needs what the answer should have been, or 'the documents don't say', to "
            "become a test; add one of them"
        )
    if verdict == "up" and not answer.abstained and not gold.get("facts") and "yes" not in gold:
        raise FeedbackError("This answer has no word to check for; rate another one")
    now = datetime.now(UTC)
    item_id = f"fb-{now.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    meta = {
        "verdict": verdict,
        "question": answer.question,
        "standalone_question": answer.standalone_question,
        "answer": answer.text,
        "abstained": answer.abstained,
        "chunk_ids": [c.chunk_id for c in answer.citations],
        "sources": sorted({c.source for c in answer.citations}),
        "correction": correction,
        "unanswerable": bool(gold.get("unanswerable")),
        "index": index or {},
        "time": now.isoformat(timespec="seconds"),
        "user": user,
    }
    return FeedbackItem(item_id, verdict, question, {"id": item_id, **gold}, meta)


def _correction_facts(correction: str) -> list[list[str]]:
    """The facts a correction is checked for: its key terms.

    Raises:
        FeedbackError: the correction has no word to check for.
    """
    if terms := key_terms(correction):
        return [[t] for t in terms]
    raise FeedbackError(
        f"The correction {correction!r} has no word to check for; type the right answer "
        "(a name, a number) or mark the question as one the documents don't answer"
    )


def corrected(item: FeedbackItem, correction: str, *, unanswerable: bool = False) -> FeedbackItem:
    """``item`` with a reviewed correction: it now checks the correction's key terms (or, with
    ``unanswerable``, that the assistant abstains), as a 👎 with that correction would.

    Raises:
        FeedbackError: neither a correction with a word to check nor ``unanswerable``.
    """
    correction = " ".join(correction.split())
    gold: dict[str, Any] = {"id": item.id, "question": item.question}
    if unanswerable:
        gold["unanswerable"] = True
    else:
        gold["facts"] = _correction_facts(correction)
    meta = {**item.meta, "correction": correction or None, "unanswerable": unanswerable}
    return FeedbackItem(item.id, item.verdict, item.question, gold, meta)


class FeedbackStore:
    """The append-only feedback file; safe for concurrent writers (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def append(self, item: FeedbackItem) -> None:
        """Add ``item`` as one line, durably (fsync) and atomically with respect to other
        writers."""
        data = (json.dumps(item.line(), ensure_ascii=False) + "\n").encode("utf-8")
        with _locked(self.path) as fd:
            _cut_torn_tail(fd)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)

    def items(self) -> list[FeedbackItem]:
        """Every stored rating, oldest first (an unreadable line, e.g. torn by a kill, is
        skipped)."""
        return list(_read(self.path))

    def export(self, ids: Iterable[str] | None, dest: Path) -> list[str]:
        """Copy the items ``ids`` (None: all) into the gold file ``dest`` without their
        ``feedback`` metadata, skipping ids ``dest`` already holds; returns the ids added.

        Raises:
            FeedbackError: an id is not in the feedback file.
        """
        items = {it.id: it for it in self.items()}
        wanted = list(items) if ids is None else list(dict.fromkeys(ids))
        if unknown := [i for i in wanted if i not in items]:
            raise FeedbackError(
                f"No feedback item {', '.join(unknown)} in {self.path}; see `qa feedback list`"
            )
        with _locked(dest) as fd:
            _cut_torn_tail(fd)
            have = {_id(line) for line in _lines(fd)}
            added = [i for i in wanted if i not in have]
            data = "".join(json.dumps(items[i].gold, ensure_ascii=False) + "\n" for i in added)
            os.write(fd, data.encode("utf-8"))
            os.fsync(fd)
        return added

    def replace(self, item: FeedbackItem) -> None:
        """Store ``item`` in place of the rating with its id (e.g. after :func:`corrected`).

        Raises:
            FeedbackError: no rating has that id.
        """
        self._rewrite({item.id: item})

    def discard(self, ids: Iterable[str]) -> None:
        """Delete the ratings ``ids`` from the file (unknown ids are ignored)."""
        self._rewrite(dict.fromkeys(ids))

    def _rewrite(self, changes: dict[str, FeedbackItem | None]) -> None:
        """Rewrite the file with ``changes`` applied (None deletes), under the writers' lock and
        in place, not renamed over, so a writer waiting for the lock still appends to it."""
        with _locked(self.path) as fd:
            _cut_torn_tail(fd)
            lines = _lines(fd)
            have = {_id(line) for line in lines}
            if missing := [i for i, new in changes.items() if new and i not in have]:
                raise FeedbackError(f"No feedback item {', '.join(missing)} in {self.path}")
            out = []
            for line in lines:
                if (i := _id(line)) not in changes:
                    out.append(line)
                elif new := changes[i]:
                    out.append(json.dumps(new.line(), ensure_ascii=False))
            data = "".join(line + "\n" for line in out).encode("utf-8")
            # A second descriptor: writes through the locked one (O_APPEND) go to the end.
            wfd = os.open(self.path, os.O_WRONLY)
            try:
                os.pwrite(wfd, data, 0)
                os.ftruncate(wfd, len(data))
                os.fsync(wfd)
            finally:
                os.close(wfd)


@contextmanager
def _locked(path: Path) -> Iterator[int]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released by close(), or by the OS if we die
        yield fd
    finally:
        os.close(fd)


def _cut_torn_tail(fd: int) -> None:
    """Drop a partial last line (a writer killed mid-write) so the next line starts clean."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    data = os.pread(fd, size, 0)
    os.ftruncate(fd, data.rfind(b"\n") + 1)


def _lines(fd: int) -> list[str]:
    data = os.pread(fd, os.fstat(fd).st_size, 0).decode("utf-8", "replace")
    return [line for line in data.splitlines() if line.strip()]


def _id(line: str) -> str | None:
    try:
        return json.loads(line).get("id")
    except (json.JSONDecodeError, AttributeError):
        return None


def _read(path: Path) -> Iterator[FeedbackItem]:
    if not path.exists():
        return
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            yield FeedbackItem.from_line(json.loads(line))
        except (json.JSONDecodeError, ValueError, TypeError):
            continue
