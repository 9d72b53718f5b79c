"""The library under the Evaluate tab and ``qa eval``: stopping a run, reading runs back,
comparing two, gold sets and their documents, the operating point, reviewing ratings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from langchain_core.language_models import FakeListChatModel
from typer.testing import CliRunner

from qa import ABSTAIN_TEXT, Assistant, Settings
from qa.cli import app
from qa.errors import QAError
from qa.evaluation.evaluate import run_eval
from qa.evaluation.feedback import FeedbackError, FeedbackStore, corrected, make_item
from qa.evaluation.gold import load_gold
from qa.evaluation.reports import (
    ANSWERED_TO_ABSTAINED,
    RIGHT_TO_WRONG,
    WRONG_TO_RIGHT,
    compare_reports,
    list_runs,
    load_report,
    write_reports,
)
from qa.evaluation.runs import EvalPaths, GoldSet, default_sample, find_gold_sets, run_gold_set

from .test_evaluation import ANSWERS, GOLD, FakeAssistant, _write_gold
from .test_feedback import _answer

BAKERY_REPLY = "Answer: in 1998\nQuote: The bakery opened in 1998."
OPEN_ITEM = {"id": "open", "question": "When did the bakery open?", "facts": [["1998"]]}


@pytest.fixture
def gold_file(tmp_path: Path) -> Path:
    return _write_gold(tmp_path / "gold.jsonl", GOLD)


def test_a_stopped_run_keeps_what_it_asked_and_says_it_is_partial(gold_file, tmp_path) -> None:
    asked: list[int] = []

    def proceed() -> bool:
        asked.append(1)
        return len(asked) <= 2

    report = run_eval(FakeAssistant(ANSWERS), gold_file, proceed=proceed)
    assert [it.id for it in report.items] == ["age", "who"]
    assert report.config["partial"] is True and report.config["planned_items"] == 6
    assert report.metrics["n_items"] == 2
    write_reports(report, tmp_path / "out")
    assert "(partial: 2 of 6 items)" in (tmp_path / "out" / "report.md").read_text()
    assert "(partial: 2 of 6 items)" in (tmp_path / "out" / "report.html").read_text()
    full = run_eval(FakeAssistant(ANSWERS), gold_file)
    assert full.config["partial"] is False


def test_reports_read_back_and_list_newest_first(gold_file, tmp_path: Path) -> None:
    report = run_eval(FakeAssistant(ANSWERS), gold_file)
    write_reports(report, tmp_path / "reports" / "b")
    assert load_report(tmp_path / "reports" / "b") == report
    older = run_eval(FakeAssistant(ANSWERS), gold_file, name="other")
    older.config["timestamp"] = "2020-01-01T00:00:00+00:00"
    write_reports(older, tmp_path / "reports" / "a")
    (tmp_path / "reports" / "broken").mkdir()
    (tmp_path / "reports" / "broken" / "report.json").write_text("{not json")
    runs = list_runs(tmp_path / "reports")
    assert [r.path.name for r in runs] == ["b", "a"]
    assert runs[1].gold_name == "other" and runs[1].n_items == 6 and not runs[1].partial
    assert runs[1].label == "2020-01-01 00:00 · other · 6 items"


def test_comparing_two_runs_names_the_flipped_items(gold_file) -> None:
    before = run_eval(FakeAssistant(ANSWERS), gold_file)
    changed = {
        **ANSWERS,
        "How old is she?": "She is 40 [2].",  # right -> wrong
        "Who directs?": "Klim Shipenko [2].",  # wrong -> right (it abstained before)
        "Who stars?": ABSTAIN_TEXT,  # answered -> abstained
    }
    after = run_eval(FakeAssistant(changed), gold_file)
    c = compare_reports(before, after)
    assert {f.id: f.change for f in c.flips} == {
        "age": RIGHT_TO_WRONG,
        "who": ANSWERED_TO_ABSTAINED,
        "miss": WRONG_TO_RIGHT,
    }
    flip = next(f for f in c.flips if f.id == "age")
    assert flip.old.turns[0].answer.startswith("She is thirty") and "40" in flip.new.turns[0].answer
    deltas = {d.metric: d for d in c.deltas}
    assert deltas["false_abstain_rate"].delta == 0 and deltas["false_abstain_rate"].better is None
    assert deltas["contains_gold"].delta == -1.0 and deltas["contains_gold"].better is False
    assert deltas["n_items"].better is None and c.only_old == c.only_new == []


def _eval_tree(root: Path) -> EvalPaths:
    (root / "squad2" / "docs").mkdir(parents=True)
    (root / "notes").mkdir()  # no docs/: not a gold set folder
    for path in ("gold.jsonl", "open.jsonl", "squad2/Normans.jsonl", "notes/x.jsonl"):
        _write_gold(root / path, [{"id": "a", "question": "q?", "unanswerable": True}])
    return EvalPaths(root)


def test_gold_sets_are_the_top_files_the_folders_with_documents_and_the_ratings(tmp_path):
    paths = _eval_tree(tmp_path / "evals")
    feedback = tmp_path / "elsewhere" / "feedback.jsonl"
    sets = find_gold_sets(paths, feedback)
    assert [s.label for s in sets] == ["gold.jsonl", "open.jsonl", "squad2/Normans.jsonl"]
    assert sets[2].docs == paths.root / "squad2" / "docs" and sets[0].docs is None
    feedback.parent.mkdir()
    _write_gold(feedback, [])
    assert find_gold_sets(paths, feedback)[-1] == GoldSet(feedback)
    assert len(find_gold_sets(paths, paths.root / "gold.jsonl")) == 3  # listed once
    assert find_gold_sets(EvalPaths(tmp_path / "missing")) == []
    normans = sets[2]
    assert default_sample(normans, {"Normans@30", "gold"}) == 30
    assert default_sample(normans, {"Normans", "Normans@30"}) is None
    assert default_sample(sets[0], {"gold"}) is None


def test_a_set_with_documents_is_asked_over_them_in_a_temporary_index(settings, fake_embeddings):
    root = settings.index_dir.parent / "evals"
    (root / "bakery" / "docs").mkdir(parents=True)
    (root / "bakery" / "docs" / "shop.txt").write_text("The bakery opened in 1998.\n")
    gold = _write_gold(root / "bakery" / "q.jsonl", [OPEN_ITEM])
    llm = FakeListChatModel(responses=[BAKERY_REPLY])
    assistant = Assistant(settings, embeddings=fake_embeddings, llm=llm)
    out = root / "reports" / "run"
    saved = run_gold_set(assistant, find_gold_sets(EvalPaths(root))[0], out=out)
    assert saved.report.items[0].passed and saved.out == out
    cited = saved.report.items[0].turns[0].citations[0]["source"]
    assert cited.endswith("shop.txt")
    assert not settings.index_dir.exists()  # the user's own index was not touched
    config = load_report(out).config
    assert config["gold"] == str(gold) and config["docs"].endswith("docs")
    assert config["answer_threshold"] is not None
    assert config["answer_threshold"] == assistant.answer_threshold


def test_a_per_document_set_asks_each_item_of_its_own_sources(settings, fake_embeddings):
    root = settings.index_dir.parent / "evals"
    docs = root / "pairs" / "docs"
    docs.mkdir(parents=True)
    (docs / "a.txt").write_text("The bakery opened in 1998.\n")
    (docs / "b.txt").write_text("The ferry leaves every 20 minutes.\n")
    gold = _write_gold(
        root / "pairs" / "q.jsonl",
        [
            {"id": "b", "question": "How often?", "facts": [["20"]], "sources": ["b.txt"]},
            {"id": "a", "question": "When?", "facts": [["1998"]], "sources": ["a.txt"]},
        ],
    )
    replies = [
        "Answer: in 1998\nQuote: The bakery opened in 1998.",
        "Answer: every 20 minutes\nQuote: The ferry leaves every 20 minutes.",
    ]
    llm = FakeListChatModel(responses=replies)
    assistant = Assistant(settings, embeddings=fake_embeddings, llm=llm)
    gold_set = GoldSet(gold, docs)
    saved = run_gold_set(assistant, gold_set, per_document=True, out=root / "reports" / "r")
    assert [it.id for it in saved.report.items] == ["a", "b"]  # grouped by their sources
    assert all(it.passed for it in saved.report.items)
    for item in saved.report.items:
        assert {Path(c["source"]).name for c in item.turns[0].retrieved} == {f"{item.id}.txt"}
    assert saved.report.config["per_document"] is True
    with pytest.raises(QAError, match="needs --docs"):
        run_gold_set(assistant, GoldSet(gold), per_document=True, out=root / "reports" / "x")


def test_qa_eval_runs_through_the_same_code(settings, fake_embeddings, tmp_path, monkeypatch):
    assistant = Assistant(
        settings, embeddings=fake_embeddings, llm=FakeListChatModel(responses=[BAKERY_REPLY])
    )
    monkeypatch.setattr("qa.cli.evals.assistant_for", lambda *a, **k: assistant)
    gold = _write_gold(tmp_path / "g.jsonl", [OPEN_ITEM])
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["eval", "--gold", str(gold), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Indexed" in result.output and "pass_rate" in result.output
    assert load_report(out).items[0].passed


def test_qa_eval_runs_a_gate_manifest_in_one_process(
    settings, fake_embeddings, tmp_path, monkeypatch
) -> None:
    made: list[Assistant] = []

    def assistant_for(*a, **k) -> Assistant:
        made.append(
            Assistant(
                settings,
                embeddings=fake_embeddings,
                llm=FakeListChatModel(responses=[BAKERY_REPLY]),
            )
        )
        return made[-1]

    monkeypatch.setattr("qa.cli.evals.assistant_for", assistant_for)
    monkeypatch.chdir(tmp_path)
    _write_gold(tmp_path / "a.jsonl", [OPEN_ITEM])
    _write_gold(tmp_path / "b.jsonl", [OPEN_ITEM | {"id": "again"}])
    (tmp_path / "gate.toml").write_text(
        '[[sets]]\ngold = "a.jsonl"\n\n[[sets]]\ngold = "b.jsonl"\n\n'
        '[[sets]]\ngold = "c.jsonl"\nrequires = "not-here"\n'
    )
    base = tmp_path / "baseline.json"
    args = ["eval", "--manifest", "gate.toml", "--baseline", str(base)]
    result = CliRunner().invoke(app, [*args, "--gate"])
    assert result.exit_code == 1  # no baselines yet
    assert "No baseline 'a'" in result.output and "Gate failed: a, b" in result.output
    result = CliRunner().invoke(app, [*args, "--update-baseline"])
    assert result.exit_code == 0, result.output
    assert set(json.loads(base.read_text())) == {"a", "b"}
    assert "the c set is skipped" in result.output
    result = CliRunner().invoke(app, [*args, "--gate"])
    assert result.exit_code == 0, result.output
    assert "Sets: 2 of 2 passed, 1 skipped" in result.output
    assert len(made) == 3  # one assistant per command: the models load once for every set


def test_a_set_that_cannot_run_fails_the_gate_and_the_others_still_run(
    settings, fake_embeddings, tmp_path, monkeypatch
) -> None:
    assistant = Assistant(
        settings, embeddings=fake_embeddings, llm=FakeListChatModel(responses=[BAKERY_REPLY])
    )
    monkeypatch.setattr("qa.cli.evals.assistant_for", lambda *a, **k: assistant)
    monkeypatch.chdir(tmp_path)
    _write_gold(tmp_path / "a.jsonl", [OPEN_ITEM])
    (tmp_path / "gate.toml").write_text(
        '[[sets]]\ngold = "missing.jsonl"\n\n[[sets]]\ngold = "a.jsonl"\n'
    )
    result = CliRunner().invoke(app, ["eval", "--manifest", "gate.toml"])
    assert result.exit_code == 1
    assert "missing.jsonl" in result.output and "a: 1 items" in result.output
    assert "Gate failed: missing" in result.output


def test_a_malformed_gate_manifest_is_one_line_error(tmp_path) -> None:
    (tmp_path / "gate.toml").write_text("[[sets]]\ndocs = 'x'\n")
    result = CliRunner().invoke(app, ["eval", "--manifest", str(tmp_path / "gate.toml")])
    assert result.exit_code == 1 and "each [[sets]] needs a gold path" in result.output


# --- threshold, ratings and admins -----------------------------------------------------------


def test_a_new_threshold_is_used_from_the_next_question(settings, fake_embeddings) -> None:
    llm = FakeListChatModel(responses=["x"])
    assistant = Assistant(settings, embeddings=fake_embeddings, llm=llm)
    chain = assistant.chain
    assistant.use_answer_threshold(0.4)
    assert assistant.settings.answer_threshold == 0.4 and assistant.chain is not chain


def test_a_reviewed_correction_replaces_the_rating_in_place(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "feedback.jsonl")
    first, second = make_item(_answer(), "down", "1997"), make_item(_answer(), "up")
    store.append(first)
    store.append(second)
    fixed = corrected(first, "It opened in 1999, said Marta")
    store.replace(fixed)
    assert [it.id for it in store.items()] == [first.id, second.id]
    assert store.items()[0].gold["facts"] == [["1999"], ["marta"]]
    assert store.items()[0].meta["correction"] == "It opened in 1999, said Marta"
    store.replace(corrected(first, "", unanswerable=True))
    assert store.items()[0].expectation == "unanswerable"
    with pytest.raises(FeedbackError, match="no word to check"):
        corrected(first, "the")
    store.discard([first.id, "fb-unknown"])
    assert [it.id for it in store.items()] == [second.id]
    assert len(load_gold(store.path)) == 1
    store.append(first)  # appending after a rewrite still makes whole lines
    assert [it.id for it in store.items()] == [second.id, first.id]
    with pytest.raises(FeedbackError, match="No feedback item"):
        store.replace(corrected(make_item(_answer(), "up"), "1998"))


def test_admins_come_comma_separated_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("QA_ADMINS", "ann, bob,")
    assert Settings().admins == ["ann", "bob"]
    monkeypatch.delenv("QA_ADMINS")
    assert Settings().admins == [] and Settings(admins=["cy"]).admins == ["cy"]


def test_list_runs_reads_partial_runs(gold_file, tmp_path: Path) -> None:
    report = run_eval(FakeAssistant(ANSWERS), gold_file, proceed=lambda: False)
    write_reports(report, tmp_path / "r" / "x")
    (run,) = list_runs(tmp_path / "r")
    assert run.partial and run.n_items == 0 and run.label.endswith("· partial")
    assert json.loads((tmp_path / "r" / "x" / "report.json").read_text())["config"]["partial"]
