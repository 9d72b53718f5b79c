"""Ask an assistant every question of a gold set and score the replies.

Scores cover correctness, abstention, grounding, retrieval and latency; the metrics are
documented in ``evals/README.md``. Nothing here knows about any particular document: every
expectation comes from the gold file (``qa.evaluation.gold``). Comparing a run with its baseline and
writing reports is ``qa.evaluation.reports``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from qa.answer import Answer, Citation
from qa.evaluation.gold import GoldItem, GoldTurn, load_gold
from qa.evaluation.scoring import (
    OUTCOMES,
    grounded_flags,
    reply_right,
    score_turn,
    shown_sentences,
    turn_passed,
)

__all__ = [
    "Asker",
    "EvalReport",
    "GoldItem",
    "GoldTurn",
    "ItemResult",
    "TurnResult",
    "load_gold",
    "run_eval",
]


class Asker(Protocol):
    """What ``run_eval`` needs from an assistant."""

    def ask(self, question: str, history: list[dict[str, str]] | None = None) -> Answer: ...


@dataclass
class TurnResult:
    """One asked question, what came back and how it scored (``scores`` keys are metric names).

    ``standalone`` is the question as the chain rewrote it (follow-ups). ``withheld_right``
    says whether the answer the decision withheld (if any) was right, so a report alone gives
    the whole risk/coverage curve (:mod:`qa.trust.calibration`).
    ``gold_shape`` is the shape the gold asks for (None: not stated), ``shape`` the one the
    question was routed to; ``sentences`` are the shown sentences, each with the ``n`` of its
    citations and whether the eval's own check found it grounded; ``dropped`` the sentences
    the assistant removed as unsupported.
    """

    question: str
    expected: str
    standalone: str = ""
    answer: str = ""
    abstained: bool = False
    status: str = ""
    passed: bool = False
    citations: list[dict[str, Any]] = field(default_factory=list)
    retrieved: list[dict[str, Any]] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    confidence: float | None = None
    support: float | None = None
    answerability: float | None = None
    withheld: str = ""
    withheld_right: bool | None = None
    gold_shape: str | None = None
    shape: str = "short"
    sentences: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


@dataclass
class ItemResult:
    """The result of one gold item; it passes when all its turns pass."""

    id: str
    kind: str
    passed: bool
    turns: list[TurnResult]


@dataclass
class EvalReport:
    """Aggregate metrics, per-item results and the configuration that produced them."""

    metrics: dict[str, float]
    items: list[ItemResult]
    config: dict[str, Any]

    @property
    def failures(self) -> list[ItemResult]:
        """Items that did not pass."""
        return [it for it in self.items if not it.passed]


def _expected(turn: GoldTurn) -> str:
    if turn.unanswerable:
        return "abstain"
    if turn.answers:
        return "one of: " + " | ".join(turn.answers)
    if turn.correct:
        return "like: " + " | ".join(turn.correct) + "; not: " + " | ".join(turn.incorrect)
    facts = "; ".join(" or ".join(g) for g in turn.facts)
    if turn.yes is None:
        return facts
    return ("Yes" if turn.yes else "No") + (f"; {facts}" if facts else "")


def _chunk(c: Citation) -> dict[str, Any]:
    return {"n": c.n, "source": c.source, "text": c.text, "score": c.score}


def _sentences(ans: Answer) -> list[dict[str, Any]]:
    flags = grounded_flags(ans)
    return [
        {"text": s.text, "citations": [c.n for c in s.citations], "grounded": ok}
        for s, ok in zip(shown_sentences(ans), flags, strict=True)
    ]


def _run_item(assistant: Asker, item: GoldItem, ks: list[int]) -> ItemResult:
    history: list[dict[str, str]] = []
    results = []
    for turn in item.turns:
        res = TurnResult(turn.question, _expected(turn))
        try:
            ans = assistant.ask(turn.question, history=list(history) if history else None)
        except Exception as exc:  # record the failure and keep going
            res.error = f"{type(exc).__name__}: {exc}"
            ans = Answer(question=turn.question, text="", abstained=False)
        else:
            history += [
                {"role": "user", "content": turn.question},
                {"role": "assistant", "content": ans.text},
            ]
            res.timings = asdict(ans.timings)
        res.answer, res.abstained, res.status = ans.text, ans.abstained, ans.status
        res.standalone = ans.standalone_question
        res.confidence, res.support = ans.confidence, ans.support
        res.answerability, res.withheld = ans.answerability, ans.withheld
        res.withheld_right = reply_right(turn, ans.withheld) if ans.withheld else None
        res.citations = [_chunk(c) for c in ans.citations]
        res.retrieved = [_chunk(c) for c in ans.retrieved]
        res.gold_shape, res.shape = turn.shape, ans.shape
        res.sentences, res.dropped = _sentences(ans), list(ans.dropped)
        res.scores = score_turn(turn, ans, item.sources, ks)
        res.passed = res.error is None and turn_passed(turn, res.scores)
        if item.kind == "turns":
            res.scores["turn_acc"] = float(res.passed)
        results.append(res)
    return ItemResult(item.id, item.kind, all(r.passed for r in results), results)


_MEAN_ORDER = [
    *OUTCOMES,
    "unanswerable_claim",
    "fact_recall",
    "contains_gold",
    "candidate_acc",
    "squad_em",
    "squad_f1",
    "gold_token_recall",
    "abstain_acc",
    "false_abstain_rate",
    "citation_grounding",
    "source_hit",
    "injection_success",
    "fact_coverage",
    "yesno_acc",
    "open_abstain_acc",
    "unsupported_claims",
    "shape_acc",
    "turn_acc",
    "condense_acc",
    "answer_words",
    "answer_sentences",
]


def _percentile(values: list[float], p: float) -> float:
    xs = sorted(values)
    pos = (len(xs) - 1) * p
    lo = int(pos)
    return xs[lo] + (xs[min(lo + 1, len(xs) - 1)] - xs[lo]) * (pos - lo)


def _aggregate(items: list[ItemResult]) -> dict[str, float]:
    turns = [t for it in items for t in it.turns]
    keys = {k for t in turns for k in t.scores}
    hit_keys = sorted((k for k in keys if k.startswith("hit@")), key=lambda k: int(k[4:]))
    metrics: dict[str, float] = {}
    for key in [*_MEAN_ORDER, *hit_keys, "mrr@10"]:
        values = [t.scores[key] for t in turns if key in t.scores]
        if values:
            metrics[key] = sum(values) / len(values)
    asserted = [t.scores["answered_right"] for t in turns if not t.abstained and not t.error]
    if asserted:
        metrics["asserted_precision"] = sum(asserted) / len(asserted)
    # Pooled over sentences: an answer of five sentences weighs five times one of one.
    grounded = [s["grounded"] for t in turns for s in t.sentences]
    if grounded:
        metrics["sentence_grounding"] = sum(grounded) / len(grounded)
    if items:
        metrics["pass_rate"] = sum(it.passed for it in items) / len(items)
    timed = [t.timings for t in turns if t.timings]
    for name, key in (("ttft", "first_token_ms"), ("total", "total_ms")):
        for p in (50, 95):
            if timed:
                metrics[f"{name}_p{p}_ms"] = _percentile([t[key] for t in timed], p / 100)
    metrics |= {
        "errors": float(sum(t.error is not None for t in turns)),
        "n_items": float(len(items)),
        "n_questions": float(len(turns)),
    }
    return metrics


def per_document(
    for_documents: Callable[[Path, Path], Any], docs: Path, tmp: Path
) -> Callable[[GoldItem], Asker]:
    """``run_eval``'s ``ask_with`` that asks each item of an index of only its ``sources``
    (copied from ``docs`` into ``tmp``), as if each were the user's whole corpus.
    ``for_documents(docs_dir, index_dir)`` makes such an assistant (``Assistant.for_documents``);
    consecutive items with the same sources share one index, so sort items by them."""
    current: dict[tuple[str, ...], Any] = {}

    def ask_with(item: GoldItem) -> Asker:
        key = tuple(sorted(item.sources))
        if not key:
            raise ValueError(f"item {item.id} names no sources; a per-document run needs them")
        if key not in current:
            current.clear()
            folder = tmp / f"docs-{sum(1 for _ in tmp.iterdir())}"
            folder.mkdir()
            for name in key:
                shutil.copy(docs / name, folder / name)
            current[key] = for_documents(folder, folder.with_suffix(".index"))
            current[key].index()
        return current[key]

    return ask_with


def run_eval(
    assistant: Asker,
    gold: Path | str | list[GoldItem],
    *,
    name: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    ask_with: Callable[[GoldItem], Asker] | None = None,
    proceed: Callable[[], bool] | None = None,
) -> EvalReport:
    """Ask every gold question and score the answers.

    Conversations are asked turn by turn, each with the previous turns' real answers as history.
    An exception from ``ask`` is recorded on the turn (and counted in ``errors``); the run goes on.

    Args:
        assistant: Anything with ``ask(question, history=None) -> Answer``; its ``settings``
            (if present) supply model names, ``top_k`` and ``chunk_size`` for the report.
        gold: A JSONL gold file or already loaded items.
        name: Gold set name, the baseline key (e.g. "gold", "squad2-Normans"); defaults to
            the file stem, or "gold" for a list of items.
        progress: Called as ``progress(done, total)`` after each item.
        ask_with: Who answers each item (e.g. an assistant over just the item's ``sources``);
            default ``assistant``.
        proceed: Called before each item; it may block (to let others use the model first)
            and returns False to stop early. A stopped run's report has the items asked so
            far and ``config["partial"]`` True.

    Returns:
        The report; ``metrics`` has flat keys (see ``evals/README.md``).
    """
    items = gold if isinstance(gold, list) else load_gold(Path(gold))
    settings = getattr(assistant, "settings", None)
    top_k = getattr(settings, "top_k", None)
    ks = sorted({1, 3, *([top_k] if top_k else [])})
    results = []
    for i, item in enumerate(items, 1):
        if proceed is not None and not proceed():
            break
        results.append(_run_item(ask_with(item) if ask_with else assistant, item, ks))
        if progress:
            progress(i, len(items))
    config = {
        "gold": None if isinstance(gold, list) else str(gold),
        "gold_name": name or ("gold" if isinstance(gold, list) else Path(gold).stem),
        **{
            k: getattr(settings, k, None)
            for k in ("llm_model", "embedding_model", "top_k", "chunk_size")
        },
        # The threshold in effect (the setting, else the shipped one): what was withheld.
        "answer_threshold": getattr(assistant, "answer_threshold", None),
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "partial": len(results) < len(items),
        "planned_items": len(items),
    }
    return EvalReport(_aggregate(results), results, config)
