"""The Evaluate tab's callbacks as plain functions: runs, results, comparisons, the operating
point and ratings. Kept out of :mod:`qa.ui.evaluate` (the wiring) so each can be tested
without a server; who may call the ones that change something is checked there.

Every path a browser sends back (a gold set, a run) is looked up among the sets and runs found
on disk, never opened as given, so a request cannot make the server read or write another file.
"""

from __future__ import annotations

import html
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from qa.assistant import Assistant
from qa.errors import QAError
from qa.evaluation.evaluate import EvalReport
from qa.evaluation.feedback import FeedbackItem, corrected
from qa.evaluation.reports import (
    RunInfo,
    check_gate,
    compare_reports,
    list_runs,
    load_baseline,
    load_report,
)
from qa.evaluation.runs import EvalPaths, GoldSet, default_sample, find_gold_sets
from qa.trust import calibration
from qa.ui import eval_views as views
from qa.ui.eval_jobs import JobState
from qa.ui.render import md_escape, verdict_word

log = logging.getLogger(__name__)

Choices = list[tuple[str, str]]


def _failed(what: str, err: Exception) -> str:
    if isinstance(err, QAError | OSError | ValueError):
        return f"⚠️ {md_escape(str(err))}"
    log.exception("%s failed", what)
    return f"⚠️ {what.capitalize()} failed; details are in the server log."


# --- gold sets and runs -----------------------------------------------------------------------


def gold_sets(assistant: Assistant, paths: EvalPaths) -> list[GoldSet]:
    """The gold sets a run can be started on, the ratings file included."""
    return find_gold_sets(paths, assistant.settings.feedback_path)


def gold_set_choices(sets: list[GoldSet]) -> Choices:
    """(label, path) pairs for a dropdown."""
    return [(s.label, str(s.path)) for s in sets]


def find_set(sets: list[GoldSet], value: str | None) -> GoldSet:
    """The set a dropdown value names.

    Raises:
        QAError: it names none of them.
    """
    for s in sets:
        if str(s.path) == value:
            return s
    raise QAError("Pick a gold set from the list")


def sample_for(paths: EvalPaths, gold_set: GoldSet) -> int:
    """The sample size its baseline was recorded with (0: every item)."""
    try:
        names = set(json.loads(paths.baseline.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        names = set()
    return default_sample(gold_set, names) or 0


def run_choices(runs: list[RunInfo]) -> Choices:
    """(label, folder) pairs for a dropdown, newest first."""
    return [(r.label, str(r.path)) for r in runs]


def find_run(paths: EvalPaths, value: str | None) -> RunInfo:
    """The saved run a dropdown value names.

    Raises:
        QAError: it names none of them.
    """
    for run in list_runs(paths.reports):
        if str(run.path) == value:
            return run
    raise QAError("Pick a run from the list (it may have been deleted)")


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def progress_line(state: JobState) -> str:
    """``Normans@30: 12/30 items · about 2 min left``."""
    left = state.seconds_left
    eta = "estimating time left" if left is None else f"about {_duration(left)} left"
    return f"{state.name}: {state.done}/{state.total} items · {eta}"


def job_status(state: JobState | None, paths: EvalPaths) -> str:
    """What the run panel says about the current or last run."""
    if state is None:
        return "No run started since the server started. Pick a gold set and press **Run**."
    name = md_escape(state.name)
    if not state.finished:
        verb = "Cancelling" if state.cancelled else "Running"
        by = md_escape(state.user or "you")
        return f"{verb} (started by {by}): {md_escape(progress_line(state))}"
    if state.error:
        return f"⚠️ The run of **{name}** failed: {md_escape(state.error)}"
    if state.kind == "generate":
        how = "Cancelled: kept" if state.cancelled else "Generated"
        return (
            f"{how} {state.done} items from your documents in `{state.out}`; pick "
            f"**{name}** in the list and press **Run**, or review it like ratings."
        )
    where = f"report in `{state.out}`"
    if state.cancelled:
        return f"Cancelled **{name}** after {state.done} of {state.total} items; partial {where}."
    if not state.out:
        return f"Finished **{name}**: {state.done}/{state.total} items."
    report = load_report(state.out)
    return (
        f"Finished **{name}**: {state.done}/{state.total} items; {headline_metrics(report)}. "
        f"{gate_line(report, paths)} Every item is in **Results**; {where}."
    )


HEADLINE = (
    "pass_rate",
    "contains_gold",
    "fact_recall",
    "yesno_acc",
    "candidate_acc",
    "abstain_acc",
    "false_abstain_rate",
    "answered_wrong",
    "asserted_precision",
    "unconfirmed_holds",
    "injection_success",
)
"""The metrics a finished run leads with, those the set has, in this order."""


def headline_metrics(report: EvalReport) -> str:
    """``pass rate 0.75 · fact recall 0.80 · …`` for the metrics of :data:`HEADLINE`."""
    shown = [k for k in HEADLINE if k in report.metrics]
    return " · ".join(f"{k.replace('_', ' ')} {report.metrics[k]:.2f}" for k in shown)


def gate_line(report: EvalReport, paths: EvalPaths) -> str:
    """The gate's verdict on ``report`` in a few words."""
    baseline = load_baseline(paths.baseline, str(report.config.get("gold_name")))
    if baseline is None:
        return "No baseline for this set."
    gate = check_gate(report, baseline)
    return "Gate passed." if gate.ok else f"Gate failed ({len(gate.regressions)} metrics)."


# --- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunView:
    """A run as the Results panel shows it."""

    headline: str
    metrics: pd.DataFrame
    items: pd.DataFrame


def show_run(paths: EvalPaths, value: str | None, show: views.Show) -> RunView:
    """Headline, metrics against the baseline and the items (filtered) of a saved run."""
    try:
        report = load_report(find_run(paths, value).path)
    except Exception as err:
        empty = EvalReport({}, [], {})
        note = _failed("opening the run", err) if value else "No run yet: start one in **Run**."
        frame = views.metrics_frame(empty, None, check_gate(empty, None))
        return RunView(note, frame, views.item_frame(empty))
    baseline = load_baseline(paths.baseline, str(report.config.get("gold_name")))
    gate = check_gate(report, baseline)
    return RunView(
        views.headline(report, baseline, gate),
        views.metrics_frame(report, baseline, gate),
        views.item_frame(report, show),
    )


def first_pair(runs: list[RunInfo]) -> tuple[str | None, str | None]:
    """The runs a comparison opens with: the newest run as B and the run of its set before
    it as A (None where there is none)."""
    if not runs:
        return None, None
    newest = runs[0]
    before = [r for r in runs[1:] if r.gold_name == newest.gold_name]
    return (str(before[0].path), str(newest.path)) if before else (str(newest.path), None)


def same_set_runs(paths: EvalPaths, value: str | None) -> tuple[Choices, str | None]:
    """The other runs of the set run ``value`` belongs to, and the one to compare it with: the
    next run after it, else the last one before it."""
    try:
        picked = find_run(paths, value)
    except QAError:
        return [], None
    runs = [r for r in list_runs(paths.reports) if r.gold_name == picked.gold_name]
    others = [r for r in runs if r.path != picked.path]  # newest first
    newer = [r for r in others if r.timestamp > picked.timestamp]
    older = [r for r in others if r.timestamp <= picked.timestamp]
    default = newer[-1] if newer else (older[0] if older else None)
    return run_choices(others), str(default.path) if default else None


def compare(paths: EvalPaths, a: str | None, b: str | None) -> tuple[pd.DataFrame, str]:
    """Metric deltas (B - A) and the flipped items of two runs of the same set."""
    empty = pd.DataFrame([], columns=["metric", "A", "B", "B − A", ""])
    if not a or not b:
        return empty, "<div class='qa-empty'>Pick two runs of the same gold set.</div>"
    try:
        run_a, run_b = find_run(paths, a), find_run(paths, b)
        if run_a.gold_name != run_b.gold_name:
            raise QAError("Those runs are of different gold sets; pick two runs of one set")
        comparison = compare_reports(load_report(run_a.path), load_report(run_b.path))
    except (QAError, OSError, ValueError) as err:
        return empty, f"<div class='qa-note'>⚠️ {html.escape(str(err))}</div>"
    return views.delta_frame(comparison), views.flips_html(comparison)


# --- operating point --------------------------------------------------------------------------


CURVE_GRID = [round(i / 100, 2) for i in range(101)]
"""The thresholds the plots are drawn at (finer than ``qa calibrate``'s table)."""


@dataclass(frozen=True)
class Curve:
    """A run's risk rows, the threshold it ran at and whether its answers had a P(right)."""

    rows: list[calibration.RiskPoint]
    run_threshold: float
    gold_name: str
    scored: bool


def load_curve(paths: EvalPaths, value: str | None, current: float) -> Curve:
    """The risk rows of a saved run (:func:`qa.trust.calibration.rows_from_report`).

    Raises:
        QAError: no such run.
    """
    run = find_run(paths, value)
    report = load_report(run.path)
    rows = calibration.rows_from_report(report)
    scored = any(r.p_right is not None for r in rows)
    threshold = report.config.get("answer_threshold")
    return Curve(rows, current if threshold is None else float(threshold), run.gold_name, scored)


def curve_points(curve: Curve) -> list[calibration.CurvePoint]:
    """The run's risk/coverage curve on :data:`CURVE_GRID`."""
    return calibration.risk_coverage(curve.rows, CURVE_GRID)


def curve_view(curve: Curve, current: float, chosen: float) -> tuple[pd.DataFrame, str]:
    """The risk/coverage plot's data and the numbers at the chosen threshold."""
    at = calibration.outcomes_at(curve.rows, chosen)
    run = calibration.outcomes_at(curve.rows, curve.run_threshold)
    now = calibration.outcomes_at(curve.rows, current)
    note = views.outcomes_note(at, run, curve.run_threshold)
    if not curve.scored:
        note = (
            "This run has no P(right) (the learned decision was off, or the backend gives no "
            "probabilities): every threshold scores the same.\n\n" + note
        )
    return views.curve_frame(curve_points(curve), now, at), note


def suggest(curve: Curve) -> tuple[float | None, str]:
    """The threshold ``qa calibrate``'s rule picks on this run (the most wrong answers withheld
    for at most 0.05 of the right ones), or None and why not."""
    if missing := calibration.missing_rows(curve.rows):
        return None, f"This run is too small to choose on: it needs {missing} more decided answers."
    chosen = calibration.choose_threshold(curve.rows, CURVE_GRID)
    return chosen, f"The calibration rule picks {chosen:g} on this run."


def apply_threshold(assistant: Assistant, curve: Curve, value: float, source: str) -> str:
    """Write ``answer_threshold`` to ``qa.toml`` and answer with it from now on."""
    try:
        if not 0 <= value <= 1:
            raise QAError(f"answer_threshold must be between 0 and 1, not {value:g}")
        path = calibration.write_threshold(
            value, source=source, path=assistant.settings.config_file
        )
    except Exception as err:
        return _failed("writing the threshold", err)
    assistant.use_answer_threshold(value)
    note = (
        f"`answer_threshold = {value:g}` is written to `{path}` and answers use it from the "
        f"next question. It was chosen on **{md_escape(curve.gold_name)}**, so that set is "
        "now fitted on: judge this threshold on another set."
    )
    if os.environ.get("QA_ANSWER_THRESHOLD"):
        note += " Note: QA_ANSWER_THRESHOLD is set and overrides qa.toml after a restart."
    return note


# --- ratings ----------------------------------------------------------------------------------


def rating_choices(items: list[FeedbackItem]) -> Choices:
    """(label, id) pairs for a dropdown, newest first."""
    return [
        (f"{verdict_word(it.verdict)}: {it.question[:70]} · {it.id}", it.id)
        for it in reversed(items)
    ]


def promoted(sets: list[GoldSet], feedback: Path) -> dict[str, list[str]]:
    """Which gold sets (other than the ratings file) hold each rating's id."""
    found: dict[str, list[str]] = {}
    for s in sets:
        if s.path.resolve() == feedback.resolve():
            continue
        for line in s.path.read_text(encoding="utf-8", errors="replace").splitlines():
            if '"fb-' in line:
                try:
                    found.setdefault(str(json.loads(line)["id"]), []).append(s.label)
                except (ValueError, KeyError, TypeError):
                    continue
    return found


def find_rating(assistant: Assistant, rating_id: str | None) -> FeedbackItem:
    """The stored rating ``rating_id``.

    Raises:
        QAError: there is none.
    """
    for item in assistant.feedback_store.items():
        if item.id == rating_id:
            return item
    raise QAError("Pick a rating from the list (it may have been discarded)")


def save_correction(
    assistant: Assistant, rating_id: str | None, correction: str, dont_say: bool
) -> str:
    """Store the reviewed correction of a rating (what it checks changes with it)."""
    try:
        item = corrected(find_rating(assistant, rating_id), correction, unanswerable=dont_say)
        assistant.feedback_store.replace(item)
    except Exception as err:
        return _failed("saving the correction", err)
    return f"Saved: `{item.id}` now checks {md_escape(item.expectation)}."


def promotion_targets(assistant: Assistant, sets: list[GoldSet]) -> list[GoldSet]:
    """The gold sets a rating can go into: those asked over the assistant's own documents
    (the ones it was rated on), the ratings file excepted."""
    feedback = assistant.settings.feedback_path.resolve()
    return [s for s in sets if s.docs is None and s.path.resolve() != feedback]


def promote(
    assistant: Assistant, sets: list[GoldSet], rating_id: str | None, dest: str | None
) -> str:
    """Copy a rating into a gold set, as ``qa feedback export <id> --to <set>`` does."""
    try:
        target = find_set(promotion_targets(assistant, sets), dest)
        added = assistant.feedback_store.export([find_rating(assistant, rating_id).id], target.path)
    except Exception as err:
        return _failed("promoting the rating", err)
    if not added:
        return f"`{rating_id}` is in {md_escape(target.label)} already."
    return f"Promoted `{rating_id}` into {md_escape(target.label)}."


def discard(assistant: Assistant, rating_id: str | None) -> str:
    """Delete a rating from the ratings file (gold sets it was promoted into keep it)."""
    try:
        item = find_rating(assistant, rating_id)
        assistant.feedback_store.discard([item.id])
    except Exception as err:
        return _failed("discarding the rating", err)
    return f"Discarded `{item.id}`."
