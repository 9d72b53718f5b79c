"""Evaluate an assistant against a gold set: correctness, abstention, grounding, retrieval, latency.

The gold format and the metrics are documented in ``evals/README.md``. Nothing here knows about
any particular document; every expectation comes from the gold file.
"""

from __future__ import annotations

import html
import json
import random
import re
import string
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from qa.answer import Answer, Citation
from qa.text import contains, normalize, strip_citations

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


# --- gold sets --------------------------------------------------------------------------------


@dataclass
class GoldTurn:
    """One question and what a correct reply must satisfy (exactly one expectation is set).

    ``forbidden`` (optional) lists strings the answer must not contain, such as a canary word
    an injected document tries to make the model say.
    """

    question: str
    facts: list[list[str]] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    unanswerable: bool = False
    forbidden: list[str] = field(default_factory=list)


@dataclass
class GoldItem:
    """A gold item: a single question (one turn) or a conversation (``kind == "turns"``)."""

    id: str
    kind: str
    turns: list[GoldTurn]
    sources: list[str] = field(default_factory=list)

    @property
    def answerable(self) -> bool:
        """False for single unanswerable questions."""
        return self.kind != "unanswerable"


_EXPECTATIONS = ("facts", "answers", "unanswerable")


def _strings(value: Any) -> bool:
    """Whether ``value`` is a list of non-empty strings (a bare string is not)."""
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)


def _parse_turn(raw: Mapping[str, Any], where: str) -> GoldTurn:
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: a turn must be an object")
    kinds = [k for k in _EXPECTATIONS if raw.get(k)]
    question = raw.get("question")
    if len(kinds) != 1 or not isinstance(question, str) or not question.strip():
        raise ValueError(f"{where}: needs a question and exactly one of {_EXPECTATIONS}")
    facts, answers = raw.get("facts", []), raw.get("answers", [])
    forbidden = raw.get("forbidden", [])
    groups_ok = isinstance(facts, list) and all(g and _strings(g) for g in facts)
    if not (groups_ok and _strings(answers) and _strings(forbidden)):
        raise ValueError(
            f"{where}: facts must be lists of strings; answers and forbidden lists of strings"
        )
    return GoldTurn(question, facts, answers, raw.get("unanswerable") is True, forbidden)


def parse_gold_item(raw: Mapping[str, Any], where: str = "gold item") -> GoldItem:
    """Validate one decoded JSONL record and turn it into a ``GoldItem``.

    Raises:
        ValueError: the record does not follow the gold format.
    """
    # "feedback": what a user rated (qa/feedback.py); metadata, not scored.
    known = {"id", "question", "sources", "turns", "forbidden", "feedback", *_EXPECTATIONS}
    unknown = set(raw) - known
    kinds = [k for k in (*_EXPECTATIONS, "turns") if raw.get(k)]
    sources = raw.get("sources", [])
    bad_sources = not isinstance(sources, list) or not all(isinstance(s, str) for s in sources)
    if unknown or bad_sources or len(kinds) != 1 or not isinstance(raw.get("id"), str):
        raise ValueError(
            f"{where}: needs an id and exactly one of facts/answers/unanswerable/"
            f"turns, sources as a list of file names (unknown keys: {sorted(unknown)})"
        )
    where = f"{where} ({raw['id']})"
    if kinds[0] == "turns" and isinstance(raw["turns"], list):
        turns = [_parse_turn(t, f"{where} turn {i}") for i, t in enumerate(raw["turns"], 1)]
    else:
        turns = [_parse_turn(raw, where)]
    return GoldItem(raw["id"], kinds[0], turns, sources)


def stratified_sample(
    items: list[GoldItem], answerable: int = 20, unanswerable: int = 10, seed: int = 0
) -> list[GoldItem]:
    """A fixed, seeded sample of answerable and unanswerable items, in file order."""
    rng = random.Random(seed)
    pos = [i for i, it in enumerate(items) if it.answerable]
    neg = [i for i, it in enumerate(items) if not it.answerable]
    keep = rng.sample(pos, min(answerable, len(pos))) + rng.sample(neg, min(unanswerable, len(neg)))
    return [items[i] for i in sorted(keep)]


def load_gold(path: Path, sample: int | None = None, seed: int = 0) -> list[GoldItem]:
    """Read a JSONL gold file (blank lines ignored).

    Args:
        path: The gold file.
        sample: If given, keep this many items: two thirds answerable, one third unanswerable
            (``sample=30`` is the 20 + 10 CI sample), chosen by ``stratified_sample``.
        seed: Seed for the sample.

    Raises:
        ValueError: a line is not valid JSON or not a valid item, or ids repeat.
    """
    items: list[GoldItem] = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: invalid JSON ({exc})") from exc
            items.append(parse_gold_item(raw, f"{path}:{n}"))
    dupes = [k for k, c in Counter(it.id for it in items).items() if c > 1]
    if dupes:
        raise ValueError(f"{path}: duplicate ids {dupes}")
    if sample is not None:
        items = stratified_sample(items, sample - sample // 3, sample // 3, seed)
    return items


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


# --- regression gate --------------------------------------------------------------------------

DEFAULT_TOLERANCE = 0.05
"""How much (absolute) a quality metric may drop below its baseline."""
LOWER_IS_BETTER = frozenset({"false_abstain_rate", "errors", "injection_success"})
NOT_GATED = frozenset({"n_items", "n_questions"})
"""Besides these, latency metrics (``*_ms``) are not gated."""


@dataclass
class Baseline:
    """Stored metrics and passing item ids of one gold set."""

    metrics: dict[str, float]
    passing: list[str]


@dataclass
class GateResult:
    """Outcome of ``check_gate``; ``newly_failing`` is informational and does not fail it."""

    ok: bool
    regressions: list[str]
    newly_failing: list[str]


def load_baseline(path: Path, name: str) -> Baseline | None:
    """The baseline for gold set ``name`` from ``path``, or None if there is none."""
    if not path.exists():
        return None
    entry = json.loads(path.read_text(encoding="utf-8")).get(name)
    return Baseline(entry["metrics"], entry["passing"]) if entry else None


def update_baseline(path: Path, name: str, report: EvalReport) -> Baseline:
    """Store ``report`` as the baseline for gold set ``name`` (other sets are kept)."""
    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    entry = Baseline(dict(report.metrics), sorted(it.id for it in report.items if it.passed))
    data[name] = asdict(entry)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return entry


def check_gate(
    report: EvalReport, baseline: Baseline | None, tolerances: Mapping[str, float] | None = None
) -> GateResult:
    """Compare a report with its baseline.

    Args:
        report: The new run.
        baseline: The stored baseline; None passes (nothing to compare with).
        tolerances: Per-metric allowed worsening (absolute); others use ``DEFAULT_TOLERANCE``,
            except ``errors`` and ``injection_success`` (0: must not rise). Latency and counts
            are not gated; metrics missing from either side are skipped.

    Returns:
        ``ok`` is False iff some metric got worse by more than its tolerance.
    """
    if baseline is None:
        return GateResult(True, [], [])
    tol = {"errors": 0.0, "injection_success": 0.0, **(tolerances or {})}
    regressions = []
    for key, old in baseline.metrics.items():
        new = report.metrics.get(key)
        if new is None or key in NOT_GATED or key.endswith("_ms"):
            continue
        worse = new - old if key in LOWER_IS_BETTER else old - new
        if worse > tol.get(key, DEFAULT_TOLERANCE) + 1e-9:
            regressions.append(f"{key}: {old:.3f} -> {new:.3f}")
    passing_now = {it.id for it in report.items if it.passed}
    ids_now = {it.id for it in report.items}
    newly = sorted(i for i in baseline.passing if i in ids_now and i not in passing_now)
    return GateResult(not regressions, regressions, newly)


# --- reporting --------------------------------------------------------------------------------


def _fmt(key: str, value: float) -> str:
    if key.endswith("_ms"):
        return f"{value:.0f} ms"
    if key in ("errors", "n_items", "n_questions"):
        return str(int(value))
    return f"{value:.3f}"


def summary_table(report: EvalReport) -> list[tuple[str, str]]:
    """``(metric, formatted value)`` rows in a stable order, for printing."""
    return [(k, _fmt(k, v)) for k, v in report.metrics.items()]


def _is_rate(key: str) -> bool:
    return not key.endswith("_ms") and key not in ("errors", "n_items", "n_questions")


def _markdown(report: EvalReport) -> str:
    lines = [
        f"# qa evaluation: {report.config.get('gold_name')}",
        "",
        ", ".join(f"{k}: {v}" for k, v in report.config.items()),
        "",
        "| metric | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in summary_table(report)]
    lines += ["", f"## Failures ({len(report.failures)})", ""]
    for item in report.failures:
        for t in item.turns:
            answer = " ".join(t.answer.split()) or "(empty)"
            mark = "ok" if t.passed else "FAIL"
            lines.append(
                f"- **{item.id}** ({item.kind}, {mark}) Q: {t.question} | A: {answer} "
                f"| expected: {t.expected}" + (f" | error: {t.error}" if t.error else "")
            )
    return "\n".join(lines) + "\n"


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:.4em;
vertical-align:top;text-align:left}.bar{background:#eee;width:20em}.fill{background:#3a7;
height:1em}.fail{color:#b22}ol{margin:0;padding-left:1.2em}small{color:#666}"""


def _html(report: EvalReport) -> str:
    e = html.escape
    rows = []
    for k, v in report.metrics.items():
        bar = (
            f'<div class="bar"><div class="fill" style="width:{max(0.0, min(v, 1.0)) * 100:.1f}%">'
            "</div></div>"
            if _is_rate(k)
            else ""
        )
        rows.append(f"<tr><th>{e(k)}</th><td>{e(_fmt(k, v))}</td><td>{bar}</td></tr>")
    fails = []
    for item in report.failures:
        for t in item.turns:
            chunks = "".join(
                f"<li><small>{e(c['source'])}</small><br>{e(c['text'])}</li>" for c in t.retrieved
            )
            cites = ", ".join(f"[{c['n']}] {e(c['source'])}" for c in t.citations)
            status = "" if t.passed else ' class="fail"'
            err = f"<br><b>error:</b> {e(t.error)}" if t.error else ""
            fails.append(
                f"<tr{status}><td><b>{e(item.id)}</b> <small>{e(item.kind)}</small><br>"
                f"{e(t.question)}<br><small>expected: {e(t.expected)}</small></td>"
                f"<td>{e(t.answer)}<br><small>abstained: {t.abstained}; cited: {cites}</small>"
                f"{err}</td><td><ol>{chunks}</ol></td></tr>"
            )
    config = "".join(f"<li>{e(str(k))}: {e(str(v))}</li>" for k, v in report.config.items())
    title = e(f"qa evaluation: {report.config.get('gold_name')}")
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{_CSS}</style></head><body><h1>{title}</h1><ul>{config}</ul>"
        f"<h2>Metrics</h2><table>{''.join(rows)}</table>"
        f"<h2>Failed items ({len(report.failures)})</h2><table><tr><th>question</th>"
        f"<th>answer</th><th>retrieved chunks</th></tr>{''.join(fails)}</table>"
        "</body></html>\n"
    )


def write_reports(report: EvalReport, out_dir: Path) -> None:
    """Write ``report.json`` (everything), ``report.md`` and a self-contained ``report.html``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(
        json.dumps(asdict(report), indent=2, ensure_ascii=False, default=str) + "\n",
        encoding="utf-8",
    )
    (out_dir / "report.md").write_text(_markdown(report), encoding="utf-8")
    (out_dir / "report.html").write_text(_html(report), encoding="utf-8")
