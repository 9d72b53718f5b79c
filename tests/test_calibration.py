"""The risk/coverage curve, choosing an operating point, and writing it to qa.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa.config import Settings
from qa.trust.calibration import (
    RiskPoint,
    choose_threshold,
    curve_table,
    missing_rows,
    outcomes_at,
    risk_coverage,
    rows_from_report,
    write_threshold,
)

# Right answers the decision is sure of, wrong ones it doubts, and one unanswerable question.
ROWS = [
    *[RiskPoint(0.9, True, True, True)] * 6,
    RiskPoint(0.3, True, True, True),
    *[RiskPoint(0.2, True, False, True)] * 3,
    RiskPoint(0.1, True, False, False),
    RiskPoint(None, False, False, True),  # abstained before the decision
]


def test_outcomes_count_what_each_threshold_would_show() -> None:
    at_zero, at_half = outcomes_at(ROWS, 0.0), outcomes_at(ROWS, 0.5)
    assert at_zero.answered_right == pytest.approx(7 / 11)
    assert at_zero.abstention == 0.0 and at_half.abstention == 1.0
    assert at_half.answered_right == pytest.approx(6 / 11)
    assert at_half.false_abstention == pytest.approx(5 / 11)
    assert at_half.risk == 0.0 and at_zero.risk == pytest.approx(4 / 11)
    assert len(risk_coverage(ROWS)) == 20


def test_the_chosen_threshold_withholds_wrong_answers_but_keeps_the_right_ones() -> None:
    # 0.25 withholds every wrong answer; 0.35 would also withhold a right one (1/11 > 0.05).
    assert choose_threshold(ROWS) == pytest.approx(0.25)


def test_too_few_decided_answers_say_how_many_more_are_needed() -> None:
    assert missing_rows(ROWS) == 20 - 11
    assert missing_rows(ROWS * 2) == 0


def test_rows_come_from_a_report_with_withheld_answers_scored() -> None:
    def turn(**kw):
        base = {"abstained": True, "withheld": "", "answerability": None, "scores": {}}
        return base | kw

    report = {
        "items": [
            {"turns": [turn(abstained=False, answerability=0.8, scores={"fact_recall": 1.0})]},
            {"turns": [turn(withheld="Osaka", withheld_right=True, answerability=0.1)]},
            {"turns": [turn(scores={"abstain_acc": 1.0})]},
            {"turns": [turn(error="BackendError: down")]},
        ]
    }
    assert rows_from_report(report) == [
        RiskPoint(0.8, True, True, True),
        RiskPoint(0.1, True, True, True),
        RiskPoint(None, False, False, False),
    ]


def test_the_threshold_is_written_to_qa_toml_and_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("qa.toml").write_text("top_k = 3\n\n[other]\nx = 1\n")
    write_threshold(0.3, source="feedback.jsonl")
    write_threshold(0.35, source="feedback.jsonl + gold.jsonl")
    text = Path("qa.toml").read_text()
    assert text.count("answer_threshold") == 2  # the setting and its one note
    assert "fitted on feedback.jsonl + gold.jsonl" in text
    settings = Settings()
    assert settings.answer_threshold == 0.35 and settings.top_k == 3


def test_the_curve_table_marks_the_current_and_chosen_points() -> None:
    table = curve_table(risk_coverage(ROWS), {0.15: "current", 0.25: "chosen"})
    assert "| 0.15 |" in table and "current |" in table and "chosen |" in table
