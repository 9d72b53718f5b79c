"""``qa calibrate --synthetic``: the corpus's generated gold set asked through the real chain,
and the answer decision refitted on the answers (:mod:`qa.trust.adapt`).

The generated set is reused when it exists and every passage it was made from is still indexed
(a user may have reviewed it), else generated and written, so a second calibration asks the
same questions; a set made from passages no longer indexed is kept aside as
``<name>.stale.jsonl``, never overwritten. Rated answers, where there are some, are asked too
and weigh ``RATING_WEIGHT`` generated rows each.

A fitted decision belongs to the index it was fitted on (#33): it is written next to that
index (:func:`decision_path`; with a Chroma server, in ``cache_dir`` under the server and
collection's name), with the record of what it was fitted on (``refit.json``: the index's
:meth:`~qa.documents.store.Store.signature`, the check's verdict), and only an Assistant over
that same index reads it (:func:`fitted_decision`). It is written only when ``adopt`` is on and
it passes :func:`qa.trust.adapt.adoption_check`; the background refit (:mod:`qa.trust.refit`)
never adopts: it keeps the corpus's regression set made and asked, and records the verdict.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qa.errors import QAError
from qa.trust.adapt import RATING_WEIGHT, CorpusDecision, Row, fit_corpus_decision, write_decision
from qa.trust.answerability import shipped_answerability


@dataclass(frozen=True)
class SyntheticCalibration:
    """The outcome of ``qa calibrate --synthetic``: the fitted decision, the gold set it was
    fitted on (generated now or reused), the threshold in effect before, and the decision
    file and settings file written (None on a dry run)."""

    fitted: CorpusDecision
    gold: Path
    generated: bool
    current: float
    questions: int
    written: Path | None = None
    made: Any = None  # the GeneratedGold when it was generated now

    @property
    def adopted(self) -> bool:
        """Whether the fitted decision now answers (written, and it passed the check)."""
        return self.written is not None


def rows_from_answers(
    items: list[Any], answers: list[Any], groups: dict[str, str], weight: int = 1
) -> list[Row]:
    """Rows of single-question gold items (``GoldItem``) and their answers; ``groups`` maps
    an item id to its group (default: the id)."""
    from qa.evaluation.scoring import reply_right

    rows = []
    for item, ans in zip(items, answers, strict=True):
        if ans is None:
            continue
        turn = item.turns[0]
        supported = not ans.abstained or bool(ans.withheld)
        reply = ans.text if not ans.abstained else ans.withheld
        right = supported and reply_right(turn, reply)
        group = groups.get(item.id, item.id)
        rows.append(
            Row(
                dict(ans.features),
                ans.signals,
                supported,
                right,
                not turn.unanswerable,
                group,
                weight,
                ans.shape,
            )
        )
    return rows


def ask_items(
    asker: Any,
    items: list[Any],
    *,
    progress: Any = None,
    done: int = 0,
    total: int | None = None,
    proceed: Any = None,
    known: dict[str, Any] | None = None,
) -> list[Any]:
    """Ask each single-question item once (conversations are left out: ``None``); an item
    whose ask fails is ``None`` too, one in ``known`` (by id) is not asked again.
    ``proceed()`` may block (the chat goes first) and returns False to stop: the items not
    asked are ``None``."""
    answers: list[Any] = []
    total = total or len(items)
    known = known or {}
    for i, item in enumerate(items, 1):
        if item.id in known:
            answers.append(known[item.id])
            continue
        if proceed is not None and not proceed():
            answers += [None] * (len(items) - len(answers))
            break
        ans = None
        if item.kind != "turns":
            try:
                ans = asker.ask(item.turns[0].question)
            except Exception:  # one failed question must not cost the calibration
                ans = None
        answers.append(ans)
        if progress:
            progress(done + i, total)
    return answers


def gold_path(settings: Any) -> Path:
    """Where a corpus's generated set is kept: ``<evals_dir>/generated/<documents folder>.jsonl``
    (``evals/generated/seeds.jsonl`` for the project root; a workspace's own ``evals/``)."""
    return (
        Path(settings.evals_dir) / "generated" / f"{settings.seeds_dir.name or 'documents'}.jsonl"
    )


def bound_folder(settings: Any) -> Path:
    """Where what belongs to one index is kept: the index folder, or with a Chroma server a
    folder in ``cache_dir`` named by the server and collection."""
    if not settings.chroma_host:
        return Path(settings.index_dir)
    where = f"{settings.chroma_host}:{settings.chroma_port}/{settings.collection}"
    return Path(settings.cache_dir) / "indexes" / hashlib.sha256(where.encode()).hexdigest()[:16]


def decision_path(settings: Any) -> Path:
    """Where a decision fitted to an index is kept: next to it, named by its fingerprint (what
    its vectors depend on), so an index rebuilt another way does not read it."""
    from qa.documents.client import fingerprint

    return bound_folder(settings) / f"decision-{fingerprint(settings)}.json"


def record_path(settings: Any) -> Path:
    """Where the record of the last fit to an index is kept (what it was fitted on, the
    check's verdict), next to the decision."""
    return decision_path(settings).with_name("refit.json")


def read_record(settings: Any) -> dict[str, Any]:
    """The record of the last fit to this index ({} if none)."""
    try:
        return dict(json.loads(record_path(settings).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return {}


def fitted_corpus(settings: Any) -> str:
    """The signature of the documents this index was last fitted on ("" if never)."""
    return str(read_record(settings).get("corpus", ""))


def fitted_decision(settings: Any) -> Path | None:
    """The decision adopted for this index, if any (its file exists and passed the check)."""
    path = decision_path(settings)
    return path if path.exists() and read_record(settings).get("adopted") else None


def _lines(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file, blank lines skipped."""
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def _reusable(path: Path, store: Any) -> bool:
    """Whether the set at ``path`` exists and every passage it was made from is indexed; one
    made from other documents is moved aside (``<name>.stale.jsonl``), not overwritten."""
    if not path.exists():
        return False
    made_from = {r.get("generated", {}).get("chunk_id") for r in _lines(path)} - {None}
    if made_from <= store.chunk_ids():
        return True
    path.replace(path.with_suffix(".stale.jsonl"))
    return False


def calibrate_synthetic(
    assistant: Any,
    gold: Path | None = None,
    *,
    count: int = 40,
    seed: int = 0,
    ratings: bool = True,
    write: bool = True,
    adopt: bool = True,
    progress: Any = None,
    proceed: Any = None,
) -> SyntheticCalibration:
    """What :meth:`qa.Assistant.calibrate_synthetic` does (see there)."""
    from qa.documents.client import fingerprint
    from qa.evaluation.generate import write_gold
    from qa.evaluation.gold import load_gold, parse_gold_item

    current = assistant.answer_threshold
    if current is None:
        raise QAError("The learned decision is off (QA_ANSWERABILITY=off): nothing to fit")
    path = gold or gold_path(assistant.settings)
    corpus = assistant.store.signature()
    generated = not (path.exists() if gold else _reusable(path, assistant.store))
    known: dict[str, Any] = {}
    made = None
    halted = False

    def go_on() -> bool:  # remembers a stop, so that nothing half-done is written
        nonlocal halted
        halted = halted or (proceed is not None and not proceed())
        return not halted

    if generated:
        made = assistant.generate_gold(
            count=count, seed=seed, progress=progress, cancel=lambda: not go_on()
        )
        if halted:
            raise QAError("Stopped while generating questions; nothing was written")
        write_gold(made.items, path)
        known = made.answers  # the round trips' answers: the same chain, asked just now
    raw = _lines(path)
    items = [parse_gold_item(r, f"{path}:{r.get('id')}") for r in raw]
    groups = {r["id"]: r.get("generated", {}).get("chunk_id", r["id"]) for r in raw}
    feedback = assistant.settings.feedback_path
    rated = load_gold(feedback) if ratings and feedback.exists() else []
    total = len(items) + len(rated)
    answers = ask_items(
        assistant, items, progress=progress, total=total, proceed=go_on, known=known
    )
    rated_answers = ask_items(
        assistant, rated, progress=progress, done=len(items), total=total, proceed=go_on
    )
    if halted:
        raise QAError("Stopped while asking the questions; the decision was not changed")
    rows = rows_from_answers(items, answers, groups)
    rows += rows_from_answers(rated, rated_answers, {}, RATING_WEIGHT)
    source = f"{len(items)} generated questions of {path}"
    if rated:
        source += f" + {len(rated)} ratings (each x{RATING_WEIGHT})"
    index = fingerprint(assistant.settings)
    provenance = (
        f"qa calibrate --synthetic: the shipped decision refitted on {source}, index {index}"
    )
    fitted = fit_corpus_decision(rows, shipped_answerability(), provenance=provenance)
    check = fitted.check
    adopted = write and adopt and check is not None and check.passed
    written = None
    if write:
        target = decision_path(assistant.settings)
        if adopted:
            written = write_decision(fitted.answerability, target)
        else:  # a decision fitted on earlier documents must not outlive them
            target.unlink(missing_ok=True)
        verdict = "passed" if check and check.passed else "; ".join(check.reasons if check else ())
        record = {
            "corpus": corpus,
            "gold": str(path),
            "at": datetime.now(UTC).isoformat(),
            "adopted": adopted,
            "check": verdict,
        }
        where = record_path(assistant.settings)
        where.parent.mkdir(parents=True, exist_ok=True)
        where.write_text(json.dumps(record) + "\n", encoding="utf-8")
        assistant.use_decision()
    asked = sum(a is not None for a in answers + rated_answers)
    return SyntheticCalibration(fitted, path, generated, current, asked, written, made)
