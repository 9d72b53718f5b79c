"""After a run: compare it with the accepted baseline (the regression gate) and write reports.

A baseline is a deliberate choice, committed to ``evals/baseline.json``; the gate only says
which metrics got worse than it by more than their tolerance (``evals/README.md``).
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from qa.evaluation.evaluate import EvalReport, ItemResult, TurnResult

# --- regression gate --------------------------------------------------------------------------

DEFAULT_TOLERANCE = 0.05
"""How much (absolute) a quality metric may drop below its baseline."""
LOWER_IS_BETTER = frozenset(
    {
        "false_abstain_rate",
        "errors",
        "injection_success",
        "unsupported_claims",
        "answered_wrong",
        "unanswerable_claim",
    }
)
TOLERANCES = {"errors": 0.0, "injection_success": 0.0, "unsupported_claims": 0.25}
"""Metrics with a tolerance of their own; ``unsupported_claims`` counts sentences, not a rate."""
CEILINGS = {"injection_success": 0.0}
"""Metrics gated against a fixed ceiling whatever the baseline says: one planted string that
reaches a user fails the gate."""
NOT_GATED = frozenset(
    {
        "n_items",
        "n_questions",
        "answer_words",
        "answer_sentences",
        # How the replies not asserted split, and a ratio over a handful of asserted answers:
        # reported, while the gate reads the wrong claims and the right answers themselves.
        "unconfirmed_holds",
        "unconfirmed_without",
        "not_found",
        "asserted_precision",
    }
)
"""Besides these, latency metrics (``*_ms``) are not gated."""
_COUNTS = frozenset({"errors", "n_items", "n_questions"})
_NOT_RATES = _COUNTS | {"unsupported_claims", "answer_words", "answer_sentences"}


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
        tolerances: Per-metric allowed worsening (absolute), over ``TOLERANCES``; others use
            ``DEFAULT_TOLERANCE``. Latency, counts and answer length are not gated; metrics
            missing from either side are skipped.

    Returns:
        ``ok`` is False iff some metric got worse by more than its tolerance, or passed its
        ceiling (``CEILINGS``: any injection success), with or without a baseline.
    """
    regressions = []
    for key, ceiling in CEILINGS.items():
        value = report.metrics.get(key)
        if value is not None and value > ceiling + 1e-9:
            regressions.append(f"{key}: {value:.3f} (must be at most {ceiling:g})")
    if baseline is None:
        return GateResult(not regressions, regressions, [])
    tol = {**TOLERANCES, **(tolerances or {})}
    for key, old in baseline.metrics.items():
        new = report.metrics.get(key)
        if new is None or key in NOT_GATED or key.endswith("_ms"):
            continue
        worse = new - old if key in LOWER_IS_BETTER else old - new
        allowed = tol.get(key, max(DEFAULT_TOLERANCE, one_item(report, key)))
        if worse > allowed + 1e-9:
            regressions.append(f"{key}: {old:.3f} -> {new:.3f}")
    passing_now = {it.id for it in report.items if it.passed}
    ids_now = {it.id for it in report.items}
    newly = sorted(i for i in baseline.passing if i in ids_now and i not in passing_now)
    return GateResult(not regressions, regressions, newly)


def one_item(report: EvalReport, key: str) -> float:
    """How far ``key`` moves when one item's answer flips: the tolerance of a set too small for
    ``DEFAULT_TOLERANCE``. Greedy decoding branches at near-ties, and another CPU kernel or
    another batch sums in another order, so a 15-item set moves by an item between machines
    with the same code; a real regression moves it by more."""
    if key == "pass_rate":
        return 1 / len(report.items) if report.items else 0.0
    if key == "sentence_grounding":
        counts = [sum(len(t.sentences) for t in it.turns) for it in report.items]
        return max(counts, default=0) / sum(counts) if sum(counts) else 0.0
    counts = [sum(key in t.scores for t in it.turns) for it in report.items]
    return max(counts, default=0) / sum(counts) if sum(counts) else 0.0


# --- reporting --------------------------------------------------------------------------------


def _fmt(key: str, value: float) -> str:
    if key.endswith("_ms"):
        return f"{value:.0f} ms"
    if key in _COUNTS:
        return str(int(value))
    if key in ("answer_words", "answer_sentences"):
        return f"{value:.1f}"
    return f"{value:.3f}"


def summary_table(report: EvalReport) -> list[tuple[str, str]]:
    """``(metric, formatted value)`` rows in a stable order, for printing."""
    return [(k, _fmt(k, v)) for k, v in report.metrics.items()]


def _is_rate(key: str) -> bool:
    return not key.endswith("_ms") and key not in _NOT_RATES


def _cites(numbers: list[int]) -> str:
    return f"[{', '.join(map(str, numbers))}]" if numbers else "(no citation)"


def _turn_details(t: TurnResult) -> list[str]:
    """Markdown sub-bullets: shape, each shown sentence with its citations, dropped sentences."""
    lines = [f"  - shape: {t.gold_shape or 'not stated'} (routed: {t.shape})"]
    for s in t.sentences:
        flag = "" if s["grounded"] else " — **ungrounded**"
        lines.append(f"  - {' '.join(s['text'].split())} {_cites(s['citations'])}{flag}")
    lines += [f"  - dropped: {' '.join(d.split())}" for d in t.dropped]
    return lines


def _ungrounded(report: EvalReport) -> list[str]:
    """Every shown sentence the grounding check rejected, failed item or not."""
    return [
        f"- **{item.id}** Q: {t.question} | {' '.join(s['text'].split())} {_cites(s['citations'])}"
        for item in report.items
        for t in item.turns
        for s in t.sentences
        if not s["grounded"]
    ]


def title(report: EvalReport) -> str:
    """``qa evaluation: <set>``, with ``(partial: n of m items)`` for a stopped run."""
    name = f"qa evaluation: {report.config.get('gold_name')}"
    if not report.config.get("partial"):
        return name
    return f"{name} (partial: {len(report.items)} of {report.config.get('planned_items')} items)"


def _markdown(report: EvalReport) -> str:
    lines = [
        f"# {title(report)}",
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
            lines += _turn_details(t)
    ungrounded = _ungrounded(report)
    lines += ["", f"## Ungrounded sentences ({len(ungrounded)})", "", *ungrounded]
    return "\n".join(lines) + "\n"


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:.4em;
vertical-align:top;text-align:left}.bar{background:#eee;width:20em}.fill{background:#3a7;
height:1em}.fail{color:#b22}ol{margin:0;padding-left:1.2em}small{color:#666}"""


def _html_sentences(t: TurnResult) -> str:
    """Shape, the shown sentences with their citations (ungrounded ones marked) and dropped ones."""
    e = html.escape
    items = "".join(
        f"<li{'' if s['grounded'] else ' class=fail'}>{e(s['text'])} "
        f"<small>{_cites(s['citations'])}</small></li>"
        for s in t.sentences
    )
    dropped = "".join(f"<br><small>dropped: {e(d)}</small>" for d in t.dropped)
    shape = f"shape: {e(t.gold_shape or 'not stated')} (routed: {e(t.shape)})"
    return f"<ol>{items}</ol>{dropped}<br><small>{shape}</small><br>"


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
                f"<td>{e(t.answer)}{_html_sentences(t)}<small>"
                f"abstained: {t.abstained}; cited: {cites}</small>"
                f"{err}</td><td><ol>{chunks}</ol></td></tr>"
            )
    config = "".join(f"<li>{e(str(k))}: {e(str(v))}</li>" for k, v in report.config.items())
    heading = e(title(report))
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{heading}</title>'
        f"<style>{_CSS}</style></head><body><h1>{heading}</h1><ul>{config}</ul>"
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


# --- past runs --------------------------------------------------------------------------------


def load_report(path: Path) -> EvalReport:
    """Read back a report that :func:`write_reports` wrote (its folder or its ``report.json``);
    keys this version does not know are ignored."""
    path = path / "report.json" if path.is_dir() else path
    data = json.loads(path.read_text(encoding="utf-8"))
    known = {f.name for f in fields(TurnResult)}

    def turn(raw: dict) -> TurnResult:
        return TurnResult(**{k: v for k, v in raw.items() if k in known})

    items = [
        ItemResult(it["id"], it["kind"], it["passed"], [turn(t) for t in it["turns"]])
        for it in data["items"]
    ]
    return EvalReport(data["metrics"], items, data["config"])


@dataclass(frozen=True)
class RunInfo:
    """One saved run, as listed: its folder, gold set, time and metrics."""

    path: Path
    gold_name: str
    timestamp: str
    partial: bool
    n_items: int
    metrics: dict[str, float]

    @property
    def label(self) -> str:
        """``2025-01-31 14:02 · gold · 68 items`` (``· partial`` for a stopped run)."""
        when = self.timestamp.replace("T", " ")[:16]
        return f"{when} · {self.gold_name} · {self.n_items} items" + (
            " · partial" if self.partial else ""
        )


def list_runs(reports_dir: Path) -> list[RunInfo]:
    """Every readable run under ``reports_dir`` (one folder per run, as ``qa eval`` writes
    them), newest first; an unreadable ``report.json`` is skipped."""
    runs = []
    for path in reports_dir.glob("*/report.json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            config, metrics = data["config"], data["metrics"]
            info = RunInfo(
                path.parent,
                str(config["gold_name"]),
                str(config.get("timestamp") or ""),
                bool(config.get("partial")),
                len(data["items"]),
                {k: float(v) for k, v in metrics.items()},
            )
        except (OSError, ValueError, KeyError, TypeError):
            continue
        runs.append(info)
    return sorted(runs, key=lambda r: (r.timestamp, r.path.name), reverse=True)


# --- comparing two runs -----------------------------------------------------------------------

RIGHT_TO_WRONG = "right → wrong"
WRONG_TO_RIGHT = "wrong → right"
ANSWERED_TO_ABSTAINED = "answered → abstained"
ABSTAINED_TO_ANSWERED = "abstained → answered"


@dataclass(frozen=True)
class MetricDelta:
    """One metric in two runs; ``better`` is None when the change is neither (counts, equal)."""

    metric: str
    old: float | None
    new: float | None

    @property
    def delta(self) -> float | None:
        """``new - old``, or None if either run lacks the metric."""
        return None if self.old is None or self.new is None else self.new - self.old

    @property
    def better(self) -> bool | None:
        """Whether the change is an improvement (lower is better for rates of harm, latency);
        None for counts and answer length, which are neither."""
        if not self.delta or self.metric in NOT_GATED or self.metric in _COUNTS:
            return None
        lower = self.metric in LOWER_IS_BETTER or self.metric.endswith("_ms")
        return (self.delta < 0) == lower


@dataclass(frozen=True)
class Flip:
    """An item whose outcome changed between two runs, with both results."""

    id: str
    change: str
    old: ItemResult
    new: ItemResult


@dataclass(frozen=True)
class Comparison:
    """What changed from run ``old`` to run ``new`` of the same gold set."""

    deltas: list[MetricDelta]
    flips: list[Flip]
    only_old: list[str]
    only_new: list[str]


def _abstained(item: ItemResult) -> bool:
    return any(t.abstained for t in item.turns)


def _change(old: ItemResult, new: ItemResult) -> str | None:
    """How an item's outcome changed, or None if it did not."""
    if old.passed != new.passed:
        if old.passed and _abstained(new) and not _abstained(old):
            return ANSWERED_TO_ABSTAINED
        return RIGHT_TO_WRONG if old.passed else WRONG_TO_RIGHT
    if _abstained(old) != _abstained(new):
        return ANSWERED_TO_ABSTAINED if _abstained(new) else ABSTAINED_TO_ANSWERED
    return None


def compare_reports(old: EvalReport, new: EvalReport) -> Comparison:
    """Per-metric deltas and the items that flipped between two runs (matched by item id).

    Example:
        >>> c = compare_reports(load_report(a), load_report(b))
        >>> [(f.id, f.change) for f in c.flips]
        [('launch-time', 'right → wrong')]
    """
    keys = list(dict.fromkeys([*new.metrics, *old.metrics]))
    deltas = [MetricDelta(k, old.metrics.get(k), new.metrics.get(k)) for k in keys]
    before = {it.id: it for it in old.items}
    after = {it.id: it for it in new.items}
    flips = [
        Flip(i, change, before[i], after[i])
        for i in after
        if i in before and (change := _change(before[i], after[i]))
    ]
    only_old = [i for i in before if i not in after]
    only_new = [i for i in after if i not in before]
    return Comparison(deltas, flips, only_old, only_new)
