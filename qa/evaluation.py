"""Ask an assistant every question of a gold set and score the replies.

Scores cover correctness, abstention, grounding, retrieval and latency; the metrics are
documented in ``evals/README.md``. Nothing here knows about any particular document: every
expectation comes from the gold file (``qa.gold``). Comparing a run with its baseline and
writing reports is ``qa.reports``.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from qa.answer import Answer, Citation
from qa.gold import GoldItem, GoldTurn, load_gold
from qa.text import contains, normalize, strip_citations

__all__ = [
    "Asker",
    "EvalReport",
    "GoldItem",
    "GoldTurn",
    "ItemResult",
    "TurnResult",
    "facts_present",
    "gold_token_recall",
    "load_gold",
    "run_eval",
    "squad_em",
    "squad_f1",
    "squad_normalize",
]

# --- normalization ----------------------------------------------------------------------------


def facts_present(text: str, facts: list[list[str]]) -> bool:
    """Whether every fact group has at least one alternative in ``text``."""
    return all(any(contains(text, alt) for alt in group) for group in facts)


def squad_normalize(text: str) -> str:
    """The official SQuAD normalization: lowercase, drop ASCII punctuation and articles."""
    text = "".join(ch for ch in text.lower() if ch not in string.punctuation)
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def squad_em(prediction: str, golds: list[str]) -> float:
    """SQuAD exact match, max over gold answers."""
    return max(float(squad_normalize(prediction) == squad_normalize(g)) for g in golds)


def squad_f1(prediction: str, golds: list[str]) -> float:
    """SQuAD token F1, max over gold answers."""

    def f1(gold: str) -> float:
        pred_toks, gold_toks = squad_normalize(prediction).split(), squad_normalize(gold).split()
        if not pred_toks or not gold_toks:
            return float(pred_toks == gold_toks)
        common = sum((Counter(pred_toks) & Counter(gold_toks)).values())
        if common == 0:
            return 0.0
        precision, recall = common / len(pred_toks), common / len(gold_toks)
        return 2 * precision * recall / (precision + recall)

    return max(f1(g) for g in golds)


def gold_token_recall(prediction: str, golds: list[str]) -> float:
    """Fraction of a gold answer's (normalized) tokens found in the prediction, max over golds."""
    pred = Counter(normalize(prediction).split())

    def recall(gold: str) -> float:
        toks = Counter(normalize(gold).split())
        return sum((pred & toks).values()) / max(1, sum(toks.values()))

    return max(recall(g) for g in golds)


# --- running ----------------------------------------------------------------------------------


class Asker(Protocol):
    """What ``run_eval`` needs from an assistant."""

    def ask(self, question: str, history: list[dict[str, str]] | None = None) -> Answer: ...


@dataclass
class TurnResult:
    """One asked question, what came back and how it scored (``scores`` keys are metric names)."""

    question: str
    expected: str
    answer: str = ""
    abstained: bool = False
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
    return "; ".join(" or ".join(g) for g in turn.facts)


def _chunk(c: Citation) -> dict[str, Any]:
    return {"n": c.n, "source": c.source, "text": c.text, "score": c.score}


def _score(turn: GoldTurn, ans: Answer, sources: list[str], ks: list[int]) -> dict[str, float]:
    scores = _score_expectation(turn, ans, sources, ks)
    if turn.forbidden:
        said = any(contains(ans.text, f) for f in turn.forbidden)
        scores["injection_success"] = float(said)
    return scores


def _score_expectation(
    turn: GoldTurn, ans: Answer, sources: list[str], ks: list[int]
) -> dict[str, float]:
    if turn.unanswerable:
        return {"abstain_acc": float(ans.abstained)}
    text, answered = strip_citations(ans.text), not ans.abstained
    if turn.answers:
        golds = turn.answers
        correct = answered and any(contains(text, g) for g in golds)
        scores = {
            "contains_gold": float(correct),
            "squad_em": squad_em(text, golds),
            "squad_f1": squad_f1(text, golds),
            "gold_token_recall": gold_token_recall(text, golds),
        }
        cited = [c.text for c in ans.citations]
        grounded = any(contains(c, g) for c in cited for g in golds)
    else:
        correct = answered and facts_present(text, turn.facts)
        scores = {}
        grounded = all(
            any(contains(c.text, a) for c in ans.citations for a in g) for g in turn.facts
        )
    scores |= {"fact_recall": float(correct), "false_abstain_rate": float(not answered)}
    if correct:
        scores["citation_grounding"] = float(grounded)
    if sources:
        names = {Path(s).name for s in sources}
        scores["source_hit"] = float(any(Path(c.source).name in names for c in ans.citations))
    supports = [
        any(contains(c.text, g) for g in turn.answers)
        if turn.answers
        else facts_present(c.text, turn.facts)
        for c in ans.retrieved
    ]
    rank = supports.index(True) + 1 if True in supports else None
    scores |= {f"hit@{k}": float(rank is not None and rank <= k) for k in ks}
    scores["mrr@10"] = 1 / rank if rank and rank <= 10 else 0.0
    return scores


def _passed(turn: GoldTurn, scores: dict[str, float]) -> bool:
    if scores.get("injection_success"):
        return False
    if turn.unanswerable:
        return scores["abstain_acc"] == 1.0
    return scores["fact_recall"] == 1.0 and scores.get("source_hit", 1.0) == 1.0


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
        res.answer, res.abstained = ans.text, ans.abstained
        res.confidence, res.support = ans.confidence, ans.support
        res.answerability, res.withheld = ans.answerability, ans.withheld
        res.citations = [_chunk(c) for c in ans.citations]
        res.retrieved = [_chunk(c) for c in ans.retrieved]
        res.scores = _score(turn, ans, item.sources, ks)
        res.passed = res.error is None and _passed(turn, res.scores)
        results.append(res)
    return ItemResult(item.id, item.kind, all(r.passed for r in results), results)


_RATE_ORDER = [
    "fact_recall",
    "contains_gold",
    "squad_em",
    "squad_f1",
    "gold_token_recall",
    "abstain_acc",
    "false_abstain_rate",
    "citation_grounding",
    "source_hit",
    "injection_success",
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
    for key in [*_RATE_ORDER, *hit_keys, "mrr@10"]:
        values = [t.scores[key] for t in turns if key in t.scores]
        if values:
            metrics[key] = sum(values) / len(values)
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


def run_eval(
    assistant: Asker,
    gold: Path | str | list[GoldItem],
    *,
    name: str | None = None,
    progress: Callable[[int, int], None] | None = None,
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

    Returns:
        The report; ``metrics`` has flat keys (see ``evals/README.md``).
    """
    items = gold if isinstance(gold, list) else load_gold(Path(gold))
    settings = getattr(assistant, "settings", None)
    top_k = getattr(settings, "top_k", None)
    ks = sorted({1, 3, *([top_k] if top_k else [])})
    results = []
    for i, item in enumerate(items, 1):
        results.append(_run_item(assistant, item, ks))
        if progress:
            progress(i, len(items))
    config = {
        "gold": None if isinstance(gold, list) else str(gold),
        "gold_name": name or ("gold" if isinstance(gold, list) else Path(gold).stem),
        **{
            k: getattr(settings, k, None)
            for k in ("llm_model", "embedding_model", "top_k", "chunk_size")
        },
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return EvalReport(_aggregate(results), results, config)
