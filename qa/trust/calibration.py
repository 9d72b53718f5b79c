"""Where the answer decision draws its line: the risk/coverage curve of a set of answers, and
the operating point that fits a user's own documents (``qa calibrate``).

The learned decision gives every supported answer a probability of being right; qa shows the
answer when that probability reaches ``Settings.answer_threshold``. The shipped threshold was
chosen on public datasets. A user's documents and questions differ, and their ratings (👍/👎,
``evals/feedback.jsonl``) and gold sets say how: asked again, each becomes a row (probability,
was it right) from which the curve below follows, and a threshold that suits them.

An evaluation report holds everything a curve needs: the shown answers, the answers the
decision withheld, their probabilities and whether each was right.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qa.errors import QAError

CONFIG_FILE = Path("qa.toml")
"""The settings file ``Settings`` reads from the working directory."""
RECALL_COST = 0.05
"""How much of the right answers a chosen threshold may give up (the eval gate's tolerance)."""
GRID = tuple(round(0.05 * i, 2) for i in range(20))
"""The thresholds a curve is drawn at."""
MIN_ROWS = 20
MIN_EACH = 5
"""A calibration needs this many decided answers, with this many right and this many wrong
(or unanswerable) among them: fewer cannot place a threshold."""


@dataclass(frozen=True)
class RiskPoint:
    """One asked question as the decision saw it.

    ``p_right`` is the decision's probability that the supported answer is right (None: the
    answer was shown without a learned decision); ``supported`` whether a supported answer
    existed at all (shown or withheld); ``right`` whether that answer is right; ``answerable``
    whether the documents answer the question."""

    p_right: float | None
    supported: bool
    right: bool
    answerable: bool

    def shown_at(self, threshold: float) -> bool:
        """Whether this answer would be shown at ``threshold``."""
        return self.supported and (self.p_right is None or self.p_right >= threshold)


@dataclass(frozen=True)
class CurvePoint:
    """What a set of answers scores at one threshold (rates over the questions they apply to).

    ``answered_right``: answerable questions answered right; ``abstention``: unanswerable
    questions abstained on; ``false_abstention``: answerable questions abstained on;
    ``coverage``: questions answered; ``risk``: shown answers that are wrong."""

    threshold: float
    answered_right: float
    abstention: float | None
    false_abstention: float
    coverage: float
    risk: float


def _rate(hits: int, total: int) -> float:
    return hits / total if total else 0.0


def outcomes_at(rows: list[RiskPoint], threshold: float) -> CurvePoint:
    """What ``rows`` would score if answers below ``threshold`` were withheld."""
    ans = [r for r in rows if r.answerable]
    un = [r for r in rows if not r.answerable]
    shown = [r for r in rows if r.shown_at(threshold)]
    return CurvePoint(
        threshold=threshold,
        answered_right=_rate(sum(r.right and r.shown_at(threshold) for r in ans), len(ans)),
        abstention=_rate(sum(not r.shown_at(threshold) for r in un), len(un)) if un else None,
        false_abstention=_rate(sum(not r.shown_at(threshold) for r in ans), len(ans)),
        coverage=_rate(len(shown), len(rows)),
        risk=_rate(sum(not r.right for r in shown), len(shown)),
    )


def risk_coverage(rows: list[RiskPoint], grid: Iterable[float] = GRID) -> list[CurvePoint]:
    """The risk/coverage curve of ``rows``: one point per threshold of ``grid``."""
    return [outcomes_at(rows, t) for t in grid]


def rows_from_report(report: Any) -> list[RiskPoint]:
    """The rows of an evaluation report (an ``EvalReport`` or its ``report.json`` as a dict):
    every question that was answered, withheld or abstained on (failed calls left out)."""
    items = report["items"] if isinstance(report, Mapping) else report.items
    rows = []
    for item in items:
        for turn in item["turns"] if isinstance(item, Mapping) else item.turns:
            t = turn if isinstance(turn, Mapping) else vars(turn)
            if t.get("error"):
                continue
            answerable = "abstain_acc" not in t["scores"]
            withheld, shown = bool(t.get("withheld")), not t["abstained"]
            if withheld:
                right = bool(t.get("withheld_right"))
            else:
                right = shown and answerable and t["scores"].get("fact_recall") == 1.0
            p = t.get("answerability") if shown or withheld else None
            rows.append(RiskPoint(p, shown or withheld, right, answerable))
    return rows


def choose_threshold(
    rows: list[RiskPoint], grid: Iterable[float] = GRID, cost: float = RECALL_COST
) -> float:
    """The threshold that withholds the most wrong answers while giving up at most ``cost``
    of the right ones."""
    curve = risk_coverage(rows, grid)
    floor = curve[0].answered_right - cost
    wrong = [r for r in rows if r.supported and not r.right]

    def withheld_wrong(point: CurvePoint) -> float:
        return _rate(sum(not r.shown_at(point.threshold) for r in wrong), len(wrong))

    allowed = [p for p in curve if p.answered_right >= floor - 1e-9]
    return max(allowed, key=lambda p: (withheld_wrong(p), -p.threshold)).threshold


def missing_rows(rows: list[RiskPoint]) -> int:
    """How many more decided answers a calibration needs (0: enough)."""
    decided = [r for r in rows if r.supported and r.p_right is not None]
    right = sum(r.right for r in decided)
    wrong = len(decided) - right
    return max(MIN_ROWS - len(decided), MIN_EACH - right, MIN_EACH - wrong, 0)


def write_threshold(value: float, *, source: str, path: Path = CONFIG_FILE) -> Path:
    """Set ``answer_threshold`` in ``path`` (``qa.toml``), keeping its other lines, with a
    comment naming what it was fitted on. Returns the file written."""
    return write_setting("answer_threshold", f"{value:g}", note=f"fitted on {source}", path=path)


def write_setting(name: str, value: str, *, note: str, path: Path = CONFIG_FILE) -> Path:
    """Set the top-level ``name = value`` (a TOML literal) in ``path``, keeping its other lines,
    after a comment ``# name: note (date)``. Returns the file written."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    setting = re.compile(rf"^\s*{re.escape(name)}\s*=")
    comment = re.compile(rf"^# {re.escape(name)}: ")
    kept = [line for line in lines if not setting.match(line) and not comment.match(line)]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    # Top-level keys must come before any [table] header.
    head = next((i for i, line in enumerate(kept) if line.lstrip().startswith("[")), len(kept))
    new = [f"# {name}: {note} ({stamp})", f"{name} = {value}"]
    text = "\n".join([*kept[:head], *new, *kept[head:]]) + "\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def curve_table(points: list[CurvePoint], marks: Mapping[float, str] | None = None) -> str:
    """A markdown table of a curve; ``marks`` labels some thresholds ("current", "chosen")."""
    marks = marks or {}
    head = "| threshold | answered right | abstention | false abstention | coverage | risk | |"
    rows = [head, "|---|---|---|---|---|---|---|"]
    for p in points:
        abstention = "–" if p.abstention is None else f"{p.abstention:.2f}"
        mark = next((label for t, label in marks.items() if abs(t - p.threshold) < 1e-9), "")
        rows.append(
            f"| {p.threshold:.2f} | {p.answered_right:.2f} | {abstention} | "
            f"{p.false_abstention:.2f} | {p.coverage:.2f} | {p.risk:.2f} | {mark} |"
        )
    return "\n".join(rows)


@dataclass(frozen=True)
class Calibration:
    """The outcome of ``calibrate``: the curve of the answers asked, the threshold in effect and
    the one chosen (None when there were too few answers: ``missing`` more are needed), and the
    settings file written (None on a dry run or when nothing was chosen)."""

    questions: int
    missing: int
    current: float
    chosen: float | None
    curve: list[CurvePoint]
    written: Path | None = None


def calibrate(
    asker: Any,
    items: list[Any],
    *,
    current: float,
    source: str,
    write: bool = True,
    progress: Any = None,
    config: Path = CONFIG_FILE,
) -> Calibration:
    """Ask ``items`` (gold items: rated answers, gold sets) of ``asker`` again and choose the
    threshold that fits them; write it to ``config`` (``qa.toml``) unless ``write`` is off."""
    from qa.evaluation.evaluate import run_eval

    report = run_eval(asker, items, name="calibration", progress=progress)
    rows = rows_from_report(report)
    curve = risk_coverage(rows)
    missing = missing_rows(rows)
    if missing:
        return Calibration(len(rows), missing, current, None, curve)
    chosen = choose_threshold(rows)
    written = write_threshold(chosen, source=source, path=config) if write else None
    return Calibration(len(rows), 0, current, chosen, curve, written)


def calibrate_assistant(
    assistant: Any,
    gold: Sequence[Path] = (),
    *,
    ratings: bool = True,
    write: bool = True,
    progress: Any = None,
) -> Calibration:
    """What :meth:`qa.Assistant.calibrate` does: ask the rated answers (unless ``ratings`` is
    off) and the ``gold`` sets again, draw the risk/coverage curve and choose the threshold by
    the shipped rule (the most wrong answers withheld for at most 0.05 of the right ones)."""
    from qa.evaluation.gold import load_gold

    current = assistant.answer_threshold
    if current is None:
        raise QAError("The learned decision is off (QA_ANSWERABILITY=off): nothing to calibrate")
    feedback = assistant.settings.feedback_path
    paths = [feedback] if ratings and feedback.exists() else []
    paths += list(gold)
    if not paths:
        raise QAError(
            f"No ratings in {feedback} and no gold set named; rate some answers (👍/👎) or "
            "pass a gold set"
        )
    items = [item for path in paths for item in load_gold(path)]
    source = " + ".join(str(p) for p in paths)
    result = calibrate(
        assistant,
        items,
        current=current,
        source=source,
        write=write,
        progress=progress,
        config=assistant.settings.config_file,
    )
    if result.chosen is not None and write:
        assistant.use_answer_threshold(result.chosen)
    return result
