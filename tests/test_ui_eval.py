"""The Evaluate tab without a server: background runs and cancelling, the chat going first, and
the callbacks behind results, comparisons, the operating point and ratings."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from qa import Settings
from qa.errors import QAError
from qa.evaluation.evaluate import ItemResult, TurnResult
from qa.evaluation.gold import load_gold
from qa.evaluation.reports import Comparison, Flip, list_runs, load_report
from qa.evaluation.runs import GoldSet
from qa.llm.queue import ChatFirst
from qa.ui import eval_panels as ep
from qa.ui import eval_views as views
from qa.ui.chat import respond
from qa.ui.eval_jobs import EvalJobs, JobState, may_administer

from .eval_workspace import fake_assistant, in_thread, make_workspace


@pytest.fixture
def ws(tmp_path: Path):
    return make_workspace(tmp_path)


def _until(check, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


def _jobs(ws, delay: float) -> tuple[EvalJobs, ChatFirst]:
    turns = ChatFirst()
    return EvalJobs(fake_assistant(ws.settings, delay), ws.paths, turns), turns


# --- runs ---------------------------------------------------------------------------------------


def test_a_run_goes_in_the_background_and_is_saved_as_todays_report(ws) -> None:
    jobs, _ = _jobs(ws, 0.01)
    state = jobs.start(GoldSet(ws.gold), None, "ann")
    assert state.total == 4 and state.user == "ann"
    _until(lambda: not jobs.running)
    done = jobs.state
    assert done is not None and done.done == 4 and done.out is not None and not done.error
    assert done.out.parent == ws.paths.reports and done.out.name.endswith("-small")
    assert len(load_report(done.out).items) == 4 and len(list_runs(ws.paths.reports)) == 3
    status = ep.job_status(done, ws.paths)
    assert status.startswith("Finished **small**: 4/4 items") and "Gate passed" in status
    assert "pass rate" in status and "**Results**" in status


def test_cancel_stops_after_the_current_item_and_leaves_a_partial_report(ws) -> None:
    jobs, _ = _jobs(ws, 0.3)
    jobs.start(GoldSet(ws.gold), None, "")
    with pytest.raises(QAError, match="already going"):
        jobs.start(GoldSet(ws.gold), None, "")
    _until(lambda: jobs.state.done >= 1)
    assert jobs.cancel() and jobs.state.cancelled
    _until(lambda: not jobs.running)
    state = jobs.state
    report = load_report(state.out)
    assert report.config["partial"] and 1 <= len(report.items) < 4
    assert ep.job_status(state, ws.paths).startswith("Cancelled **small** after")
    assert not jobs.cancel()


def test_the_time_left_comes_from_the_items_done() -> None:
    state = JobState("x", "", total=10, done=2, asking_since=time.monotonic() - 4.0)
    assert state.seconds_left == pytest.approx(16.0, abs=0.5)
    assert "about 16 s left" in ep.progress_line(state) or "about 15 s" in ep.progress_line(state)
    assert JobState("x", "", total=10).seconds_left is None
    assert "estimating" in ep.progress_line(JobState("x", "", total=10))


def test_an_eval_turn_waits_for_chat_answers_but_not_forever() -> None:
    first = ChatFirst(patience=5.0)
    release = threading.Event()

    def chat() -> None:
        with first.chat():
            release.wait(5)

    thread = in_thread(chat)
    time.sleep(0.05)
    in_thread(lambda: (time.sleep(0.3), release.set()))
    assert first.eval_turn() >= 0.25
    thread.join()
    assert first.eval_turn() < 0.05
    stuck = ChatFirst(patience=0.2)
    with stuck.chat():  # a chat that never ends stalls a run at most `patience` per item
        assert 0.15 < stuck.eval_turn() < 1.0


def test_a_chat_during_a_run_is_answered_before_the_run_asks_on(ws, monkeypatch) -> None:
    jobs, turns = _jobs(ws, 0.4)
    item_starts: list[float] = []
    wait = turns.eval_turn

    def eval_turn() -> float:
        waited = wait()
        item_starts.append(time.monotonic())
        return waited

    monkeypatch.setattr(turns, "eval_turn", eval_turn)
    jobs.start(GoldSet(ws.gold), None, "")
    _until(lambda: jobs.state.done >= 1)
    # A follow-up: two model calls (rewrite, answer), longer than one eval item.
    earlier = [{"question": "When?", "text": "in 1998", "message": "in 1998", "ok": True}]
    with turns.chat():  # as the app's chat handler does around each answer
        started = time.monotonic()
        *_, (_, messages, _, _) = respond(jobs.assistant, "And the loaves, how many?", earlier)
        answered = time.monotonic()
    assert "400" in str(messages[-1]["content"])
    assert jobs.running  # the chat did not wait for the run to end
    _until(lambda: not jobs.running)
    # The item being asked when the chat came finishes; no other starts until it is answered
    # (0.2 s of slack: an item let go just before the chat may note its start just after).
    assert [s for s in item_starts if started + 0.2 < s < answered] == []
    assert jobs.state.chat_wait_s > 0.1 and len(load_report(jobs.state.out).items) == 4


def test_only_admins_may_change_things_when_there_is_a_login() -> None:
    assert may_administer(False, "", [])  # no login: a local, single-user app
    assert may_administer(True, "ann", ["ann"])
    assert not may_administer(True, "bob", ["ann"])
    assert not may_administer(True, "ann", [])


# --- results and comparison ---------------------------------------------------------------------


def test_results_show_the_gate_and_filter_the_items(ws) -> None:
    newest = str(ws.runs[1])
    view = ep.show_run(ws.paths, newest, "all")
    assert "Gate" in view.headline and list(view.metrics["metric"][:2]) == [
        "pass_rate",
        "fact_recall",
    ]
    assert dict(zip(view.items["item"], view.items["outcome"], strict=True)) == {
        "opened": "right",
        "loaves": "wrong",
        "founder": "right",
        "keeper": "rightly abstained",
    }
    older = ep.show_run(ws.paths, str(ws.runs[0]), "falsely abstained").items
    assert list(older["item"]) == ["founder"] and list(older["withheld"]) == ["Marta Kovacs [1]"]
    assert list(older["P(right)"]) == [0.1]
    assert list(ep.show_run(ws.paths, str(ws.runs[0]), "abstained").items["item"]) == [
        "founder",
        "keeper",
    ]
    assert list(ep.show_run(ws.paths, newest, "wrong").items["item"]) == ["loaves"]
    assert "Pick a run" in ep.show_run(ws.paths, "/etc/passwd", "all").headline


def test_two_runs_compare_by_flipped_items(ws) -> None:
    runs = list_runs(ws.paths.reports)
    a, b = ep.first_pair(runs)
    assert (a, b) == (str(ws.runs[0]), str(ws.runs[1]))
    assert ep.same_set_runs(ws.paths, a)[1] == b and ep.same_set_runs(ws.paths, b)[1] == a
    deltas, flips = ep.compare(ws.paths, a, b)
    row = deltas.set_index("metric").loc["false_abstain_rate"]
    assert row["B − A"] == pytest.approx(-1 / 3, abs=1e-3) and row[""] == "better"
    assert "loaves: right → wrong" in flips and "founder: wrong → right" in flips
    assert "about 400 loaves [1]" in flips and "300 loaves [1]" in flips
    _, refused = ep.compare(ws.paths, a, "/tmp/elsewhere")
    assert "Pick a run" in refused


def test_flipped_answers_are_escaped() -> None:
    evil = "<img src=x onerror=alert(1)>"
    turn = TurnResult("q<b>?", "x", evil, citations=[{"n": 1, "source": "<s>", "text": evil}])
    item = ItemResult("id<1>", "facts", False, [turn])
    html = views.flips_html(Comparison([], [Flip("id<1>", "right → wrong", item, item)], [], []))
    assert "<img" not in html and "&lt;img" in html and "id&lt;1&gt;" in html


# --- operating point ----------------------------------------------------------------------------


def test_moving_the_threshold_changes_what_the_run_would_have_scored(ws) -> None:
    curve = ep.load_curve(ws.paths, str(ws.runs[1]), current=0.15)
    assert curve.run_threshold == 0.15 and curve.scored and curve.gold_name == "small"
    frame, at_run = ep.curve_view(curve, 0.15, 0.15)
    assert set(frame["point"]) == {"curve", "current 0.15", "chosen 0.15"}
    _, strict = ep.curve_view(curve, 0.15, 0.5)
    # At 0.5 the wrong "300 loaves" (P 0.4) and the right founder (P 0.2) are withheld.
    assert "| answered right | **0.333** | 0.667 |" in strict
    assert "| risk (shown answers wrong) | **0.000** | 0.333 |" in strict
    assert "| answered right | **0.667** | 0.667 |" in at_run
    lines = views.outcomes_frame([], 0.15)
    assert list(lines["outcome"]) == ["current 0.15"] * 2
    value, why = ep.suggest(curve)  # qa calibrate's rule needs more answers than 4
    assert value is None and "needs 16 more decided answers" in why
    # Ten times as many: withhold the wrong "Ada Quint" (P 0.05), keep the founder (P 0.2).
    assert ep.suggest(replace(curve, rows=curve.rows * 10))[0] == pytest.approx(0.06)


def test_applying_a_threshold_writes_it_and_answers_with_it(ws, monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    assistant = fake_assistant(ws.settings, 0.0)
    curve = ep.load_curve(ws.paths, str(ws.runs[1]), current=0.15)
    note = ep.apply_threshold(assistant, curve, 0.4, "small (run x)")
    assert "now fitted on" in note and "**small**" in note
    assert "fitted on small (run x)" in (tmp_path / "qa.toml").read_text()
    assert Settings().answer_threshold == 0.4 and assistant.settings.answer_threshold == 0.4


# --- ratings ------------------------------------------------------------------------------------


def test_a_rating_is_corrected_promoted_and_discarded(ws) -> None:
    assistant = fake_assistant(ws.settings, 0.0)
    up, down = ws.ratings
    sets = ep.gold_sets(assistant, ws.paths)
    targets = ep.promotion_targets(assistant, sets)
    assert [s.label for s in targets] == ["other.jsonl", "small.jsonl"]
    note = ep.save_correction(assistant, down, "It opened in 1999", False)
    assert "facts: 1999" in note
    assert ep.promote(assistant, sets, down, str(ws.gold)).startswith("Promoted")
    assert ep.promote(assistant, sets, down, str(ws.gold)).endswith("already.")
    promoted = load_gold(ws.gold)[-1]
    assert promoted.id == down and promoted.turns[0].facts == [["1999"]]
    feedback = str(ws.settings.feedback_path)
    assert "Pick a gold set" in ep.promote(assistant, sets, up, feedback)
    assert ep.promoted(sets, ws.settings.feedback_path) == {down: ["small.jsonl"]}
    frame = views.ratings_frame(assistant.feedback_store.items(), {down: ["small.jsonl"]})
    assert list(frame["in gold sets"]) == ["", "small.jsonl"]
    assert ep.discard(assistant, up) == f"Discarded `{up}`."
    assert [it.id for it in assistant.feedback_store.items()] == [down]
    assert "Pick a rating" in ep.discard(assistant, up)
    assert json.loads(ws.gold.read_text().splitlines()[-1])["id"] == down


def test_a_browser_value_must_name_a_listed_set(ws) -> None:
    assistant = fake_assistant(ws.settings, 0.0)
    sets = ep.gold_sets(assistant, ws.paths)
    with pytest.raises(QAError, match="Pick a gold set"):
        ep.find_set(sets, "/etc/passwd")
    assert ep.sample_for(ws.paths, ep.find_set(sets, str(ws.gold))) == 0
