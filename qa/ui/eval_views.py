"""What the Evaluate tab shows, as plain data: tables and plot data as pandas DataFrames (for
``gr.Dataframe``, ``gr.LinePlot``, ``gr.ScatterPlot``) and text as Markdown or escaped HTML.

Nothing here computes a score: metrics, the gate and run comparisons come from
:mod:`qa.evaluation.reports`, the operating point from :mod:`qa.trust.calibration`; this module
only lays them
out. Every piece of model output or gold text that becomes HTML is escaped here.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

import pandas as pd

from qa.evaluation.evaluate import EvalReport, TurnResult
from qa.evaluation.feedback import FeedbackItem
from qa.evaluation.reports import Baseline, Comparison, Flip, GateResult, RunInfo, title
from qa.trust.calibration import CurvePoint
from qa.ui.render import md_escape, verdict_word

HEADLINE = (
    "pass_rate",
    "fact_recall",
    "contains_gold",
    "abstain_acc",
    "false_abstain_rate",
    "answered_right",
    "answered_wrong",
    "unconfirmed_holds",
    "unconfirmed_without",
    "not_found",
    "unanswerable_claim",
    "asserted_precision",
    "citation_grounding",
    "sentence_grounding",
    "fact_coverage",
    "yesno_acc",
    "injection_success",
)
"""The metrics shown first and plotted over time (those a run has)."""

Show = Literal["all", "wrong", "abstained", "falsely abstained"]
SHOW_CHOICES: list[Show] = ["all", "wrong", "abstained", "falsely abstained"]
RATING_COLUMNS = [
    "rating",
    "question",
    "answer",
    "correction",
    "checks",
    "user",
    "in gold sets",
    "id",
]
RATING_WIDTHS = ["7%", "22%", "16%", "14%", "12%", "8%", "9%", "12%"]
ITEM_WIDTHS = ["9%", "11%", "18%", "20%", "11%", "12%", "7%", "12%"]
ITEM_COLUMNS = [
    "item",
    "outcome",
    "question",
    "answer",
    "citations",
    "withheld",
    "P(right)",
    "expected",
]


# --- results ----------------------------------------------------------------------------------


def headline(report: EvalReport, baseline: Baseline | None, gate: GateResult) -> str:
    """The run's title, its gate verdict against the baseline and what regressed."""
    lines = [f"### {md_escape(title(report))}"]
    if baseline is None:
        lines.append("No baseline recorded for this set: nothing to gate against.")
    elif gate.ok:
        lines.append("**Gate passed**: no metric fell below the baseline by more than allowed.")
    else:
        lines.append("**Gate failed**: " + "; ".join(md_escape(r) for r in gate.regressions))
    if gate.newly_failing:
        lines.append(f"Newly failing items: {md_escape(', '.join(gate.newly_failing))}")
    return "\n\n".join(lines)


def metrics_frame(report: EvalReport, baseline: Baseline | None, gate: GateResult) -> pd.DataFrame:
    """Headline metrics first, then the rest: value, baseline and whether it regressed."""
    regressed = {r.split(":", 1)[0] for r in gate.regressions}
    keys = [k for k in HEADLINE if k in report.metrics]
    keys += [k for k in report.metrics if k not in keys]
    base = baseline.metrics if baseline else {}
    rows = [
        {
            "metric": k,
            "this run": round(report.metrics[k], 3),
            "baseline": round(base[k], 3) if k in base else None,
            "gate": "regressed" if k in regressed else ("ok" if k in base else ""),
        }
        for k in keys
    ]
    return pd.DataFrame(rows, columns=["metric", "this run", "baseline", "gate"])


def outcome(turn: TurnResult) -> str:
    """right, wrong, rightly abstained, falsely abstained or error; a reply not asserted says
    whether it was unconfirmed (``falsely abstained (unconfirmed, holds the answer)``)."""
    if turn.error:
        return "error"
    unconfirmed = " (unconfirmed)" if turn.status == "unconfirmed" else ""
    if turn.expected == "abstain":
        return f"rightly abstained{unconfirmed}" if turn.abstained else "wrong"
    if turn.abstained:
        if turn.scores.get("unconfirmed_holds"):
            return "falsely abstained (unconfirmed, holds the answer)"
        return f"falsely abstained{unconfirmed}"
    return "right" if turn.passed else "wrong"


def _shown(kind: str, show: Show) -> bool:
    if show == "wrong":
        return kind in ("wrong", "error")
    if show == "abstained":
        return "abstained" in kind
    return show == "all" or kind.split(" (")[0] == show


def _citations(turn: TurnResult) -> str:
    return " ".join(f"[{c['n']}] {c['source']}" for c in turn.citations)


def item_frame(report: EvalReport, show: Show = "all") -> pd.DataFrame:
    """One row per asked question: outcome, answer, citations, withheld answer, P(right)."""
    rows = []
    for item in report.items:
        for i, turn in enumerate(item.turns):
            kind = outcome(turn)
            if not _shown(kind, show):
                continue
            label = item.id if len(item.turns) == 1 else f"{item.id} #{i + 1}"
            p = turn.answerability
            rows.append(
                [
                    label,
                    kind,
                    turn.question,
                    turn.error or turn.answer,
                    _citations(turn),
                    turn.withheld,
                    None if p is None else round(p, 3),
                    turn.expected,
                ]
            )
    return pd.DataFrame(rows, columns=ITEM_COLUMNS)


# --- comparing two runs -----------------------------------------------------------------------


def delta_frame(comparison: Comparison) -> pd.DataFrame:
    """Metric, run A, run B, B - A and whether that is better, headline metrics first."""
    order = {k: i for i, k in enumerate(HEADLINE)}
    deltas = sorted(comparison.deltas, key=lambda d: order.get(d.metric, len(order)))
    rows = [
        {
            "metric": d.metric,
            "A": None if d.old is None else round(d.old, 3),
            "B": None if d.new is None else round(d.new, 3),
            "B − A": None if d.delta is None else round(d.delta, 3),
            "": "" if d.better is None else ("better" if d.better else "worse"),
        }
        for d in deltas
    ]
    return pd.DataFrame(rows, columns=["metric", "A", "B", "B − A", ""])


def _side(turns: Sequence[TurnResult]) -> str:
    """One run's answers to an item, each with its passages (cited, else the top retrieved)."""
    e = html.escape
    parts = []
    for t in turns:
        passages = t.citations or t.retrieved[:3]
        chunks = "".join(
            f"<li><small>[{c['n']}] {e(str(c['source']))}</small><br>{e(str(c['text']))}</li>"
            for c in passages
        )
        withheld = f"<div class='qa-note'>withheld: {e(t.withheld)}</div>" if t.withheld else ""
        parts.append(
            f"<div class='qa-q'>{e(t.question)}</div>"
            f"<div class='qa-a'><b>{e(outcome(t))}</b>: {e(t.error or t.answer)}</div>"
            f"{withheld}<ol class='qa-passages'>{chunks}</ol>"
        )
    return "".join(parts)


def _flip(flip: Flip) -> str:
    e = html.escape
    return (
        f"<div class='qa-flip' data-item='{e(flip.id)}'><h4>{e(flip.id)}: {e(flip.change)}</h4>"
        f"<div class='qa-expected'>expected: {e(flip.new.turns[0].expected)}</div>"
        f"<div class='qa-sides'><div><h5>A</h5>{_side(flip.old.turns)}</div>"
        f"<div><h5>B</h5>{_side(flip.new.turns)}</div></div></div>"
    )


def flips_html(comparison: Comparison) -> str:
    """The items whose outcome changed, both runs' answers and passages side by side."""
    if not comparison.flips:
        note = "No item changed its outcome between these runs."
        return f"<div class='qa-empty'>{note}</div>"
    missing = comparison.only_old + comparison.only_new
    extra = (
        f"<div class='qa-note'>{len(missing)} item(s) are in one run only (another sample or "
        "gold file) and are not compared.</div>"
        if missing
        else ""
    )
    return extra + "".join(_flip(f) for f in comparison.flips)


# --- operating point --------------------------------------------------------------------------

OUTCOME_NAMES = {
    "answered_right": "answered right",
    "abstention": "abstention",
    "false_abstention": "false abstention",
}


def curve_frame(curve: list[CurvePoint], current: CurvePoint, chosen: CurvePoint) -> pd.DataFrame:
    """Risk against coverage over all thresholds, with the current and the chosen one as
    points of their own (a ``gr.ScatterPlot``'s ``color`` column: ``point``)."""
    marks = [("curve", p) for p in curve]
    marks += [(f"current {current.threshold:g}", current), (f"chosen {chosen.threshold:g}", chosen)]
    rows = [
        {"coverage": p.coverage, "risk": p.risk, "threshold": p.threshold, "point": name}
        for name, p in marks
    ]
    return pd.DataFrame(rows, columns=["coverage", "risk", "threshold", "point"])


def outcomes_frame(curve: list[CurvePoint], current: float) -> pd.DataFrame:
    """Answered right, abstention and false abstention against the threshold, plus a vertical
    line at the current threshold (for a ``gr.LinePlot`` with ``color="outcome"``)."""
    rows = [
        {"threshold": p.threshold, "share": getattr(p, key), "outcome": name}
        for key, name in OUTCOME_NAMES.items()
        for p in curve
        if getattr(p, key) is not None  # no abstention rate without unanswerable questions
    ]
    marker = f"current {current:g}"
    rows += [{"threshold": current, "share": y, "outcome": marker} for y in (0.0, 1.0)]
    return pd.DataFrame(rows, columns=["threshold", "share", "outcome"])


def outcomes_note(at: CurvePoint, run: CurvePoint, run_threshold: float) -> str:
    """What the run would have scored at the chosen threshold, next to what it scored."""

    def row(name: str, key: str) -> str:
        now, then = getattr(at, key), getattr(run, key)
        if now is None or then is None:
            return f"| {name} | – | – |"
        return f"| {name} | **{now:.3f}** | {then:.3f} |"

    return "\n".join(
        [
            f"| | at {at.threshold:g} | as run (at {run_threshold:g}) |",
            "|---|---|---|",
            row("answered right", "answered_right"),
            row("abstention on unanswerable", "abstention"),
            row("false abstention", "false_abstention"),
            row("coverage (answered)", "coverage"),
            row("risk (shown answers wrong)", "risk"),
        ]
    )


# --- trend ------------------------------------------------------------------------------------


def trend_frame(runs: Sequence[RunInfo], gold_name: str) -> pd.DataFrame | None:
    """The headline metrics of every complete run of ``gold_name``, oldest first (None: no
    run, an empty plot)."""
    rows = [
        {"time": datetime.fromisoformat(r.timestamp), "metric": k, "value": r.metrics[k]}
        for r in sorted(runs, key=lambda r: r.timestamp)
        if r.gold_name == gold_name and not r.partial and r.timestamp
        for k in HEADLINE
        if k in r.metrics
    ]
    if not rows:
        return None
    frame = pd.DataFrame(rows, columns=["time", "metric", "value"])
    # A plain (naive) datetime column: the plot shows times as they were written, in UTC.
    frame["time"] = pd.to_datetime(frame["time"], utc=True).dt.tz_localize(None)
    return frame


# --- ratings ----------------------------------------------------------------------------------


def ratings_frame(items: Sequence[FeedbackItem], promoted: dict[str, list[str]]) -> pd.DataFrame:
    """Every rating: verdict, question, the answer rated, the correction, what it checks."""
    rows = [
        [
            verdict_word(it.verdict),
            it.question,
            str(it.meta.get("answer", "")),
            str(it.meta.get("correction") or ""),
            it.expectation,
            str(it.meta.get("user") or ""),
            ", ".join(promoted.get(it.id, [])),
            it.id,
        ]
        for it in items
    ]
    return pd.DataFrame(rows, columns=RATING_COLUMNS)


def rating_detail(item: FeedbackItem | None) -> str:
    """The picked rating in full."""
    if item is None:
        return "Pick a rating to review it."
    answer = str(item.meta.get("answer") or "")
    return (
        f"{verdict_word(item.verdict)}: **{md_escape(item.question)}**\n\n"
        f"Answer rated: {md_escape(answer) or '(none)'}\n\n"
        f"Checks: {md_escape(item.expectation)}"
    )
