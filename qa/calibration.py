"""The operating point of the answer decision: what a run would have scored at another
``answer_threshold``, and writing the chosen one to ``qa.toml``.

A run needs no re-asking to answer "what if the threshold were t?": every supported short
answer carries its learned P(right) (``TurnResult.answerability``) and, when that was below the
run's threshold, the answer it withheld (``TurnResult.withheld``). A threshold chosen on a set
has been fitted on it, so the note written next to the setting names the set: judge the new
threshold on another one.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from qa.answer import Answer
from qa.config import Settings
from qa.evaluation import EvalReport
from qa.gold import GoldItem, GoldTurn, load_gold
from qa.scoring import score_turn

THRESHOLDS = [round(i / 100, 2) for i in range(101)]
"""The thresholds a curve is computed at."""


@dataclass(frozen=True)
class RiskPoint:
    """One asked question: whether it is answerable, whether there was an answer to show (shown
    or withheld), whether that answer is right, and its P(right) (1.0 when unscored)."""

    answerable: bool
    has_answer: bool
    right: bool
    p: float


@dataclass(frozen=True)
class CurvePoint:
    """What a run scores at one threshold: shares of answerable questions answered right and
    abstained on (false abstention), of unanswerable ones abstained on, of all questions
    answered (coverage), and of shown answers that are wrong (risk)."""

    threshold: float
    answered_right: float
    abstention: float
    false_abstention: float
    coverage: float
    risk: float


def _right(turn: GoldTurn, text: str) -> bool:
    """Whether ``text``, shown as the answer, would be scored correct."""
    scores = score_turn(turn, Answer(turn.question, text, abstained=False), [], [])
    return scores.get("fact_recall") == 1.0


def risk_points(report: EvalReport, gold: list[GoldItem] | None = None) -> list[RiskPoint]:
    """One row per asked question of ``report``; withheld answers are judged against ``gold``
    (default: the gold file the report names).

    Raises:
        OSError, ValueError: the gold file is gone or no longer valid.
    """
    turns = {it.id: it.turns for it in gold or load_gold(Path(report.config["gold"]))}
    rows = []
    for item in report.items:
        for asked, expected in zip(item.turns, turns.get(item.id, []), strict=False):
            text = asked.withheld or ("" if asked.abstained else asked.answer)
            rows.append(
                RiskPoint(
                    answerable=not expected.unanswerable,
                    has_answer=bool(text),
                    right=bool(text) and not expected.unanswerable and _right(expected, text),
                    p=1.0 if asked.answerability is None else asked.answerability,
                )
            )
    return rows


def outcomes_at(rows: list[RiskPoint], threshold: float) -> CurvePoint:
    """What the run would have scored had answers with P(right) below ``threshold`` been
    withheld."""
    shown = [r.has_answer and r.p >= threshold for r in rows]
    answerable = [(r, s) for r, s in zip(rows, shown, strict=True) if r.answerable]
    unanswerable = [s for r, s in zip(rows, shown, strict=True) if not r.answerable]
    n_ans = max(len(answerable), 1)
    return CurvePoint(
        threshold=threshold,
        answered_right=sum(r.right and s for r, s in answerable) / n_ans,
        abstention=sum(not s for s in unanswerable) / max(len(unanswerable), 1),
        false_abstention=sum(not s for _, s in answerable) / n_ans,
        coverage=sum(shown) / max(len(rows), 1),
        risk=sum(s and not r.right for r, s in zip(rows, shown, strict=True)) / max(sum(shown), 1),
    )


def risk_coverage(rows: list[RiskPoint], thresholds: list[float] | None = None) -> list[CurvePoint]:
    """:func:`outcomes_at` for every threshold (default :data:`THRESHOLDS`)."""
    return [outcomes_at(rows, t) for t in thresholds or THRESHOLDS]


def toml_path(settings: Settings) -> Path:
    """The ``qa.toml`` that ``settings`` reads (relative to the working directory)."""
    return Path(str(settings.model_config.get("toml_file") or "qa.toml"))


def write_threshold(settings: Settings, value: float, *, source: str) -> Path:
    """Set ``answer_threshold = value`` in ``qa.toml`` (other lines kept), under a comment
    naming the set it was ``source``d from; returns the file.

    Raises:
        ValueError: ``value`` is outside [0, 1].
    """
    if not 0 <= value <= 1:
        raise ValueError(f"answer_threshold must be between 0 and 1, not {value}")
    path = toml_path(settings)
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    top = next((i for i, line in enumerate(lines) if line.lstrip().startswith("[")), len(lines))
    head = [line for line in lines[:top] if not _ours(line)]
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    entry = [f"# answer_threshold fitted on {source} ({when})", f"answer_threshold = {value:g}"]
    text = "\n".join([*head, *entry, *lines[top:]]) + "\n"
    tomllib.loads(text)  # never leave a file that Settings cannot read
    path.write_text(text, encoding="utf-8")
    return path


def _ours(line: str) -> bool:
    """A top-level ``answer_threshold`` line, or the note written above it."""
    key = line.split("=", 1)[0].strip()
    return key == "answer_threshold" or line.startswith("# answer_threshold fitted on")
