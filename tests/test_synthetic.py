"""Gold generated from the corpus and the decision refitted on it, over scripted models:
the spans picked by rules, the three kinds and their checks, repeatability, cancel, the
per-corpus fit, the check a fit must pass before it is used, and a fitted decision bound to the
index it was fitted on."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
from langchain_core.language_models import FakeListChatModel
from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk

from qa import Assistant, Settings
from qa.answer import Signals
from qa.evaluation.generate import copies, generate_gold, usable_question
from qa.evaluation.gold import load_gold
from qa.evaluation.runs import EvalPaths, find_gold_sets
from qa.spans import mentioned, spans
from qa.text import contains, split_sentences
from qa.trust.adapt import (
    CorpusDecision,
    Row,
    adoption_check,
    auc,
    fit_corpus_decision,
    write_decision,
)
from qa.trust.answerability import Answerability, names_missing, shipped_answerability
from qa.trust.synthetic import decision_path, fitted_corpus, record_path
from qa.trust.verify import ASKING, content_words

DOCS = {
    "bakery.txt": "The Elm Street Bakery opened in 1998 in the town of Riverton. Its founder, "
    "Marta Kovacs, bakes bread every morning before the market opens.\n\nThe bakery sells "
    "about 400 loaves a day to the families of Riverton and the nearby villages.\n",
    "museum.txt": "The Harbor Museum opened in 2004 near the old docks of Lisbon. Its director, "
    "Jonas Berg, collects old sea maps from every port of the northern coast.\n\nThe museum "
    "shows about 120 ship models to visitors from Porto and the other coastal cities.\n",
    "ferry.txt": "The river ferry started running in 1952 between Riverton and Millbrook. "
    "Captain Ilse Brandt steered the first crossing on a foggy morning in early spring.\n\n"
    "The ferry carries about 300 passengers a day across the wide and slow river.\n",
}


class ScriptedModel(FakeListChatModel):
    """Writes questions for the generator and answers them like a small model: a question it
    wrote gets its span back; any other gets the span of the written question it resembles
    most, confidently (the look-alike failure the decision must learn to catch)."""

    responses: list[str] = []
    written: dict[str, str] = {}

    def _call(self, messages, stop=None, run_manager=None, **kwargs):  # invoke: the writer
        return self._reply(messages)[0]

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):  # the chain
        reply, meta = self._reply(messages)
        yield ChatGenerationChunk(message=AIMessageChunk(content=reply, response_metadata=meta))

    def _reply(self, messages) -> tuple[str, dict]:
        text = str(messages[-1].content)
        if "\nAnswer: " in text and text.rstrip().endswith("Question:"):
            sentence = re.findall(r"Sentence: (.*)", text)[-1]
            answer = re.findall(r"Answer: (.*)", text)[-1]
            others = [s.text for s in spans(sentence) if s.text != answer]
            about = others[0] if others else "it"
            question = f"Which detail is known about {about} here?"
            self.written[question] = answer
            reply = question
        elif "\nKeep: " in text:
            sentence = re.findall(r"Statement: (.*)", text)[-1]
            reply = f"Is it true that {sentence.rstrip('.')}?"
        else:
            asked = text.rsplit("Question: ", 1)[-1].strip()
            words = set(asked.lower().split())
            best = max(self.written, key=lambda q: len(words & set(q.lower().split())), default="")
            span = self.written.get(asked, self.written.get(best, "none"))
            reply = f" {span}\nQuote: none"
        meta = {
            "first_token_probs": {" " + reply.split()[0]: 0.8, " none": 0.2},
            "token_logprobs": [-0.1, -0.3],
        }
        return reply, meta


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text)
    return docs


def scripted_assistant(docs: Path, tmp_path: Path, embeddings, **extra) -> Assistant:
    """An Assistant over ``docs``, indexed in small chunks, answering by :class:`ScriptedModel`."""
    settings = Settings(
        seeds_dir=docs,
        index_dir=tmp_path / "index",
        chunk_size=200,
        chunk_overlap=0,
        full_context_chars=0,
        top_k=3,
        feedback_path=tmp_path / "feedback.jsonl",
        **extra,
    )
    a = Assistant(settings, embeddings=embeddings, llm=ScriptedModel(written={}))
    a.index()
    return a


@pytest.fixture
def assistant(corpus: Path, tmp_path: Path, fake_embeddings) -> Assistant:
    return scripted_assistant(corpus, tmp_path, fake_embeddings)


def test_spans_are_names_years_and_numbers_picked_by_rules() -> None:
    found = spans("In 1685, Louis XIV revoked the Edict of Nantes; 4,000 Huguenots left Paris.")
    assert [(s.text, s.kind) for s in found] == [
        ("1685", "year"),
        ("Louis XIV", "name"),
        ("Edict of Nantes", "name"),
        ("4,000", "number"),
        ("Huguenots", "name"),
        ("Paris", "name"),
    ]
    # A capitalised first word alone is the sentence's start, not a name.
    assert [s.text for s in spans("Scholars say the ferry left.")] == []
    assert mentioned("Who founded the Yuan dynasty in 1271?") == {"yuan", "1271"}


def test_a_question_must_not_name_its_answer_nor_copy_its_sentence() -> None:
    sentence = "The Harbor Museum opened in 2004 near the old docks of Lisbon."
    assert usable_question("When did the Harbor Museum open?", sentence, "2004") is None
    assert usable_question("Did it open in 2004?", sentence, "2004") == "names its answer"
    copied = "What opened in 2004 near the old docks of Lisbon?"
    assert copies(copied, sentence)
    assert usable_question("What is the weather like?", sentence, "2004") == "off the sentence"
    pointing = "Which museum is mentioned in the given sentence?"
    assert usable_question(pointing, sentence, "Harbor Museum") == "points at the prompt"


def test_generated_items_are_gold_of_every_kind_and_each_kind_is_checked(
    assistant: Assistant, tmp_path: Path
) -> None:
    seen: list[tuple[int, int]] = []
    out = tmp_path / "generated" / "docs.jsonl"
    made = assistant.generate_gold(count=12, seed=3, out=out, progress=lambda *p: seen.append(p))
    items = load_gold(out)  # the gold format, ids unique
    kinds = made.kinds()
    assert {"answerable", "unanswerable"} <= set(kinds) and len(items) == len(made.items)
    assert seen[-1] == (len(made.items), 12) and abs(kinds["yes"] - kinds["no"]) <= 1
    chunks = assistant.store.all_chunks()
    for raw, item in zip(made.items, items, strict=True):
        meta = raw["generated"]
        assert meta["passage"] and item.sources == [meta["chunk_id"] and raw["sources"][0]]
        turn = item.turns[0]
        if meta["kind"] == "answerable":
            # The round trip gave the span back; the question does not name it.
            assert contains(meta["round_trip"], meta["span"]) and turn.answers == [meta["span"]]
            assert not contains(turn.question, meta["span"])
        if meta["kind"] in ("unanswerable", "no"):
            old, new = meta["swapped"]
            assert contains(turn.question, new) and not contains(turn.question, old)
            assert not contains(meta["passage"], new)
            # No sentence holds the part put in with half the question's other words.
            other = content_words(turn.question) - ASKING - content_words(new)
            for x in (x for c in chunks for x in split_sentences(c.text)):
                assert not contains(x, new) or len(other & content_words(x)) < len(other) / 2
        assert turn.unanswerable is (meta["kind"] == "unanswerable")
        assert turn.yes is {"yes": True, "no": False}.get(meta["kind"])


def test_a_swap_never_puts_a_form_of_the_same_name() -> None:
    from qa.evaluation.lookalikes import _related

    for a, b in [("parliament", "parliamentary"), ("china", "chinese"), ("tran", "trần")]:
        assert _related([a], [b])
    assert not _related(["holland"], ["saarland"]) and not _related(["1685"], ["1686"])


def test_a_name_never_runs_over_a_line_break() -> None:
    text = (
        "Rivals to the Russians\n\nRussia won the race to film in space.\n"
        "EPA\nRussian actress Mira Sol entered the station."
    )
    names = [s.text for s in spans(text) if s.kind == "name"]
    assert names == ["Russians", "Russia", "Russian", "Mira Sol"]


def test_generation_is_repeatable_and_can_be_cancelled(assistant: Assistant) -> None:
    first = generate_gold(assistant, count=8, seed=1)
    again = generate_gold(assistant, count=8, seed=1)
    assert first.items == again.items and first.items
    stopped = generate_gold(assistant, count=8, seed=1, cancel=lambda: True)
    assert stopped.cancelled and stopped.items == []


def test_names_missing_reads_what_a_look_alike_question_names_that_the_evidence_lacks() -> None:
    sentence = "The Harbor Museum opened in 2004 near the old docks of Lisbon."
    assert names_missing("When did the Harbor Museum open?", sentence) == 0.0
    assert names_missing("When did the Porto Museum open?", sentence) == pytest.approx(1 / 2)
    assert names_missing("When did it open?", sentence) == 0.0


def _rows(n: int, seed: int, informative: bool) -> list[Row]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        right = i % 2 == 0
        missing = (0.0 if right else 1.0) if informative else float(rng.random() < 0.5)
        features = {
            "p_none": rng.random() * 0.2,
            "first_entropy": 0.5,
            "logprob_mean": -0.2,
            "answer_words": 1.0,
            "question_covered": 0.8,
            "evidence_rank": 0.0,
            "type_fit": 0.5,
            "names_missing": missing,
            "names_missing_passage": missing,
        }
        signals = Signals({" x": 0.8, " none": 0.2}, [-0.1])
        rows.append(Row(features, signals, True, right, right, f"g{i // 2}"))
    return rows


def test_the_corpus_fit_learns_what_separates_its_rows_and_keeps_the_prior_otherwise() -> None:
    shipped = shipped_answerability()
    fitted = fit_corpus_decision(_rows(40, 0, informative=True), shipped)
    fit = next(f for f in fitted.fits if f.name == "log-probabilities")
    assert fit.prior is not None and fit.fitted_auc > fit.shipped_auc
    assert fit.fitted_loss < fit.shipped_loss
    assert "names_missing" in fitted.answerability.variants[1].probe.features
    assert all(v.threshold == fitted.threshold for v in fitted.answerability.variants)
    # Rows where the new signal is noise: it gets little weight (the bias may still move).
    noise = fit_corpus_decision(_rows(40, 1, informative=False), shipped)

    def weight(decision: CorpusDecision) -> float:
        probe = decision.answerability.variants[1].probe
        named = dict(zip(probe.features, probe.weights, strict=False))
        return abs(named.get("names_missing", 0.0))

    assert weight(noise) < weight(fitted) / 3


def test_without_enough_right_and_wrong_rows_the_shipped_weights_stay() -> None:
    shipped = shipped_answerability()
    few = fit_corpus_decision(_rows(6, 0, informative=True), shipped)
    assert all(f.prior is None for f in few.fits)
    assert few.answerability.variants[1].probe == shipped.variants[1].probe
    # ... and so does the threshold: none placed on no decided rows would show everything.
    assert few.missing > 0 and few.threshold == shipped.variants[0].threshold > 0
    assert fit_corpus_decision([], shipped).threshold == shipped.variants[0].threshold


def test_a_written_decision_loads_back_the_same(tmp_path: Path) -> None:
    fitted = fit_corpus_decision(_rows(40, 0, informative=True), shipped_answerability())
    path = write_decision(fitted.answerability, tmp_path / "decision-x.json")
    loaded = Answerability.load(path)
    assert loaded.variants == fitted.answerability.variants
    assert loaded.verdict == shipped_answerability().verdict


def test_auc_counts_pairs_ranked_right() -> None:
    assert auc([0.9, 0.8, 0.1], [True, True, False]) == 1.0
    assert auc([0.5, 0.5], [True, False]) == 0.5
    assert auc([0.5], [True]) is None


def test_the_check_refuses_a_fit_that_withholds_what_the_shipped_decision_shows() -> None:
    shipped = [0.9, 0.8, 0.7, 0.6, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.2]
    # One of the ten shown answers withheld (it also withholds one the shipped one did not show).
    close = adoption_check(shipped, [*shipped[:9], 0.3, 0.1], 0.35, 0.35, missing=0)
    assert close.passed and close.shown == 10 and close.newly_withheld == pytest.approx(0.1)
    two = adoption_check(shipped, [*shipped[:8], 0.3, 0.3, 0.1], 0.35, 0.35, missing=0)
    assert not two.passed
    # The refit of #26 on the seed: the threshold stayed, the probabilities sank.
    sunk = adoption_check(shipped, [0.5, 0.3, 0.3, 0.2, *[0.3] * 6, 0.1], 0.35, 0.35, missing=0)
    assert not sunk.passed and sunk.newly_withheld == pytest.approx(0.9)
    assert "withhold 90% of the answers the shipped decision shows" in sunk.reasons[0]
    few = adoption_check(shipped, shipped, 0.35, 0.35, missing=7)
    assert not few.passed and few.reasons == ("too few decided answers (7 more needed)",)


def test_a_fitted_threshold_is_never_less_cautious_than_the_shipped_one() -> None:
    shipped = shipped_answerability()
    fitted = fit_corpus_decision(_rows(40, 0, informative=True), shipped)
    assert fitted.threshold >= shipped.variants[0].threshold
    assert fitted.check is not None


def test_calibrate_synthetic_uses_a_fit_only_when_it_passes_the_check(
    assistant: Assistant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = assistant.calibrate_synthetic(count=24, seed=0)
    assert result.generated and result.gold == Path("evals/generated/docs.jsonl")
    assert result.questions == len(load_gold(result.gold)) > 0
    # 11 questions are too few decided answers: the check refuses, the shipped decision stays.
    check = result.fitted.check
    assert check is not None and not check.passed and result.fitted.missing > 0
    assert not result.adopted and not decision_path(assistant.settings).exists()
    assert assistant.decision is shipped_answerability() and not Path("qa.toml").exists()
    record = json.loads(record_path(assistant.settings).read_text())
    assert record["adopted"] is False and record["check"].startswith("too few decided answers")
    assert fitted_corpus(assistant.settings) == assistant.store.signature()
    # A second run reuses the generated set.
    again = assistant.calibrate_synthetic(write=False)
    assert not again.generated and again.written is None
    # The generated set is listed with the other sets, over the assistant's documents.
    sets = find_gold_sets(EvalPaths(root=Path("evals")))
    assert [s.path for s in sets if s.docs is None] == [Path("evals/generated/docs.jsonl")]


def _passing(rows, base, provenance=""):
    """A fit whose check passes, as on a corpus where refitting pays."""
    from dataclasses import replace

    from qa.trust.adapt import AdoptionCheck

    fitted = fit_corpus_decision(rows, base, provenance=provenance)
    return replace(fitted, check=AdoptionCheck(True, (), 0.0, 10))


def test_a_fitted_decision_answers_only_over_the_index_it_was_fitted_on(
    assistant: Assistant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("qa.trust.synthetic.fit_corpus_decision", _passing)
    result = assistant.calibrate_synthetic(count=24, seed=0)
    assert result.adopted and result.written == decision_path(assistant.settings)
    assert result.written.parent == tmp_path / "index"
    assert assistant.decision == Answerability.load(result.written)  # at once
    same = Assistant(assistant.settings, embeddings=assistant.embeddings, llm=assistant.llm)
    assert same.decision == Answerability.load(result.written)  # and for a later Assistant
    # Another index built in the same directory answers with the shipped decision (#33 item 5).
    other = Assistant(
        assistant.settings.model_copy(
            update={"seeds_dir": tmp_path / "other", "index_dir": tmp_path / "other-index"}
        ),
        embeddings=assistant.embeddings,
        llm=assistant.llm,
    )
    assert other.decision is shipped_answerability()
    fresh = Settings(seeds_dir=tmp_path / "other", index_dir=tmp_path / "other-index")
    assert Assistant(fresh, embeddings=assistant.embeddings).decision is shipped_answerability()
    assert assistant.for_documents(tmp_path / "o", tmp_path / "o-i").decision is (
        shipped_answerability()
    )
    # Documents changed and refitted without adopting: the old fit does not outlive them.
    assistant.calibrate_synthetic(adopt=False)
    assert assistant.decision is shipped_answerability()
    assert not result.written.exists()


def test_the_generated_metadata_is_part_of_the_gold_format(tmp_path: Path) -> None:
    path = tmp_path / "g.jsonl"
    record = {"id": "g1", "question": "Q?", "answers": ["a"], "generated": {"kind": "answerable"}}
    path.write_text(json.dumps(record) + "\n")
    assert load_gold(path)[0].turns[0].answers == ["a"]


STORY = (
    "The Vellmar Observatory\n\n"
    "The Vellmar Observatory was built in 1887 on a hill above the town of Ostrava. Its first "
    "director, Henrike Solberg, catalogued 312 variable stars during her twenty years there.\n\n"
    "In 1931 a fire destroyed the east dome, and the telescope was moved to the university in "
    "Brno. The observatory reopened as a museum in 1978 under the curator Pavel Lindqvist.\n"
)
"""A small document written for this test (no real observatory)."""


@pytest.mark.slow
def test_the_real_model_generates_items_and_calibrates_on_a_small_document(
    real_assistant: Assistant, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "observatory.txt").write_text(STORY)
    assistant = real_assistant.for_documents(docs, tmp_path / "index")
    assistant.index()
    gold = tmp_path / "observatory.jsonl"
    made = assistant.generate_gold(count=6, seed=0, out=gold)
    items = load_gold(gold)
    assert items and len(items) == len(made.items) <= 6
    for raw in made.items:
        meta = raw["generated"]
        if meta["kind"] == "answerable":
            assert contains(meta["round_trip"], meta["span"])
        if meta["kind"] in ("unanswerable", "no"):
            assert not contains(STORY, raw["question"])
    result = assistant.calibrate_synthetic(gold, write=False, ratings=False)
    assert result.questions == len(items) and not result.generated
    assert 0.0 <= result.fitted.threshold <= 1.0 and result.written is None


def test_the_evaluate_tab_generates_a_set_in_the_background(
    assistant: Assistant, tmp_path: Path
) -> None:
    import time

    from qa.llm.queue import ChatFirst
    from qa.ui.eval_jobs import EvalJobs
    from qa.ui.eval_panels import gold_sets, job_status

    paths = EvalPaths(root=tmp_path / "evals")
    jobs = EvalJobs(assistant, paths, ChatFirst())
    jobs.generate("ann", count=6)
    deadline = time.monotonic() + 60
    while jobs.running and time.monotonic() < deadline:
        time.sleep(0.05)
    state = jobs.state
    assert state is not None and state.finished and state.error is None
    assert state.out == tmp_path / "evals" / "generated" / "docs.jsonl"
    assert len(load_gold(state.out)) == state.done > 0
    assert "Generated" in job_status(state, paths) and "docs.jsonl" in job_status(state, paths)
    assert state.out in [s.path for s in gold_sets(assistant, paths)]
