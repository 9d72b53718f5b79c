"""Ratings become gold items: the file format, the conversion rules, concurrent and killed
writers, export, and running the file as a gold set."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest
from langchain_core.language_models import FakeListChatModel
from typer.testing import CliRunner

from qa import ABSTAIN_TEXT, Answer, Assistant, Citation
from qa.answer import Sentence
from qa.cli import app
from qa.evaluation.evaluate import run_eval
from qa.evaluation.feedback import (
    FeedbackError,
    FeedbackItem,
    FeedbackStore,
    answer_from_dict,
    key_terms,
    make_item,
)
from qa.evaluation.gold import load_gold

BAKERY_REPLY = "Answer: in 1998\nQuote: The bakery opened in 1998."
CITE = Citation(n=1, source="bakery.txt", chunk_id="c1", text="The bakery opened in 1998.", score=1)


def _answer(text: str = "in 1998 [1]", *, abstained: bool = False) -> Answer:
    return Answer(
        question="And when?",
        text=text,
        abstained=abstained,
        citations=[] if abstained else [CITE],
        retrieved=[CITE],
        standalone_question="When did the bakery open?",
        sentences=[] if abstained else [Sentence("in 1998", [CITE])],
    )


def test_key_terms_prefer_numbers_and_names() -> None:
    assert key_terms("It opened in 1998 under Marta Kovacs [2].") == ["1998", "marta", "kovacs"]
    assert key_terms("about 400 loaves [1]") == ["400"]
    assert key_terms("the river crossing [1]") == ["river", "crossing"]  # no names: content words
    assert key_terms("The documents don't say.") == []


def test_thumbs_up_keeps_the_answers_terms_and_its_source() -> None:
    item = make_item(_answer(), "up", index={"fingerprint": "f"}, user="ann")
    assert item.gold == {
        "id": item.id,
        "question": "When did the bakery open?",  # standalone: runnable without the history
        "facts": [["1998"]],
        "sources": ["bakery.txt"],
    }
    meta = item.meta
    assert meta["verdict"] == "up" and meta["question"] == "And when?"
    assert meta["answer"] == "in 1998 [1]" and meta["chunk_ids"] == ["c1"]
    assert meta["sources"] == ["bakery.txt"] and meta["user"] == "ann"
    assert meta["index"] == {"fingerprint": "f"} and meta["time"].endswith("+00:00")


def test_thumbs_down_with_a_correction_checks_the_corrections_terms() -> None:
    item = make_item(_answer(), "down", "It was  1997, says Marta")
    assert item.gold["facts"] == [["1997"], ["marta"]] and "sources" not in item.gold
    assert item.meta["correction"] == "It was 1997, says Marta"
    assert item.expectation == "facts: 1997; marta"


def test_documents_dont_say_is_an_unanswerable_item() -> None:
    down = make_item(_answer(), "down", unanswerable=True)
    assert down.gold["unanswerable"] is True and "facts" not in down.gold
    up_on_abstention = make_item(_answer(ABSTAIN_TEXT, abstained=True), "up")
    assert up_on_abstention.gold["unanswerable"] is True
    assert down.expectation == "unanswerable"


def test_a_thumbs_up_on_common_words_checks_the_whole_answer() -> None:
    assert make_item(_answer("all in [1]"), "up").gold["facts"] == [["all in"]]


def test_a_rated_yes_or_no_is_a_yes_no_item() -> None:
    answer = _answer("No. [1]")
    answer.shape = "yesno"
    up, down = make_item(answer, "up"), make_item(answer, "down")
    assert up.gold["yes"] is False and down.gold["yes"] is True and "facts" not in up.gold
    assert up.gold["sources"] == ["bakery.txt"]


@pytest.mark.parametrize(
    ("verdict", "correction", "message"),
    [("down", None, "needs what the answer should have been"), ("down", "the", "no word")],
)
def test_a_thumbs_down_without_anything_to_check_is_refused(verdict, correction, message) -> None:
    with pytest.raises(FeedbackError, match=message):
        make_item(_answer(), verdict, correction)
    with pytest.raises(FeedbackError, match="'up' or 'down'"):
        make_item(_answer(), "meh")  # type: ignore[arg-type]


def test_the_feedback_file_is_a_gold_file(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "evals" / "feedback.jsonl")
    items = [
        make_item(_answer(), "up"),
        make_item(_answer(), "down", "1997"),
        make_item(_answer(), "down", unanswerable=True),
    ]
    for item in items:
        store.append(item)
    gold = load_gold(store.path)
    assert [g.id for g in gold] == [i.id for i in items]
    assert [g.kind for g in gold] == ["facts", "facts", "unanswerable"]
    raw = [json.loads(line) for line in store.path.read_text().splitlines()]
    assert all(r["feedback"]["verdict"] in ("up", "down") for r in raw)
    assert store.items() == items


def _append_many(path: str, n: int) -> None:
    store = FeedbackStore(Path(path))
    for _ in range(n):
        store.append(make_item(_answer("in 1998 " + "padding " * 500 + "[1]"), "up"))


def test_concurrent_writers_leave_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "feedback.jsonl"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(str(path), 25)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    gold = load_gold(path)  # every line parses, ids are unique
    assert len(gold) == 100


def test_a_writer_killed_mid_run_leaves_a_loadable_file(tmp_path: Path) -> None:
    path = tmp_path / "feedback.jsonl"
    code = (
        "import sys; from tests.test_feedback import _append_many; "
        f"_append_many({str(path)!r}, 100000)"
    )
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=root)
    deadline = time.monotonic() + 60
    while (not path.exists() or path.stat().st_size < 200_000) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(load_gold(path)) > 10


def test_a_torn_last_line_is_skipped_by_readers_and_cut_by_the_next_writer(tmp_path) -> None:
    store = FeedbackStore(tmp_path / "feedback.jsonl")
    first = make_item(_answer(), "up")
    store.append(first)
    with store.path.open("a") as f:
        f.write('{"id": "fb-torn", "question": "half a li')  # a crash mid-write
    assert store.items() == [first]
    second = make_item(_answer(), "down", "1997")
    store.append(second)
    assert [g.id for g in load_gold(store.path)] == [first.id, second.id]


def test_export_promotes_items_without_metadata_once(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "feedback.jsonl")
    a, b = make_item(_answer(), "up"), make_item(_answer(), "down", "1997")
    store.append(a)
    store.append(b)
    dest = tmp_path / "gold.jsonl"
    dest.write_text('{"id": "old", "question": "Q?", "unanswerable": true}\n')
    assert store.export([b.id], dest) == [b.id]
    assert store.export(None, dest) == [a.id]  # b is there already
    lines = [json.loads(x) for x in dest.read_text().splitlines()]
    assert [x["id"] for x in lines] == ["old", b.id, a.id]
    assert all("feedback" not in x for x in lines)
    assert len(load_gold(dest)) == 3
    with pytest.raises(FeedbackError, match="qa feedback list"):
        store.export(["fb-nope"], dest)


def test_answer_survives_the_round_trip_through_session_state() -> None:
    answer = _answer()
    data = json.loads(json.dumps(asdict(answer)))
    assert answer_from_dict({**data, "a_future_field": 1}) == answer


def test_assistant_feedback_records_the_index_and_runs_as_a_gold_set(settings, fake_embeddings):
    settings = settings.model_copy(update={"feedback_path": settings.index_dir / "fb.jsonl"})
    llm = FakeListChatModel(responses=[BAKERY_REPLY])
    assistant = Assistant(settings, embeddings=fake_embeddings, llm=llm)
    assistant.index()
    answer = assistant.ask("When did the bakery open?")
    up = assistant.feedback(answer, "up", user="ann")
    down = assistant.feedback(answer, "down", "It opened in 1997")
    assert up.meta["index"]["collection"] == assistant.store.live_name
    assert up.meta["index"]["fingerprint"] and up.meta["user"] == "ann"
    assert up.meta["chunk_ids"] == [c.chunk_id for c in answer.citations]
    # The same (scripted) answer again: the 👍 item passes, the corrected one fails on its fact.
    llm.responses, llm.i = [BAKERY_REPLY], 0
    report = run_eval(assistant, load_gold(settings.feedback_path))
    passed = {it.id: it.passed for it in report.items}
    assert passed == {up.id: True, down.id: False}
    failing = next(it for it in report.items if it.id == down.id).turns[0]
    assert failing.expected == "1997" and failing.answer.startswith("in 1998")


def test_cli_lists_and_exports_feedback(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "feedback.jsonl")
    item = make_item(_answer(), "down", "1997", user="ann")
    store.append(item)
    runner = CliRunner(env={"COLUMNS": "250"})
    listed = runner.invoke(app, ["feedback", "list", "--file", str(store.path)])
    assert listed.exit_code == 0 and item.id in listed.output and "1997" in listed.output
    dest = tmp_path / "gold.jsonl"
    args = ["feedback", "export", item.id, "--to", str(dest), "--file", str(store.path)]
    exported = runner.invoke(app, args)
    assert exported.exit_code == 0 and "Added 1" in exported.output
    assert load_gold(dest)[0].id == item.id
    bad = runner.invoke(app, ["feedback", "export", "--to", str(dest), "--file", str(store.path)])
    assert bad.exit_code == 1 and "--all" in bad.output


def test_feedback_item_rejects_a_line_that_is_not_gold() -> None:
    with pytest.raises(ValueError):
        FeedbackItem.from_line({"id": "x", "question": "Q?", "feedback": {}})
