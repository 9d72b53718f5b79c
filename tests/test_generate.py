"""Look-alike unanswerables made the way SQuAD 2.0's crowd made them (#33 item 6): a name or
number from the same passage, a negation, an antonym, each refused when an indexed sentence
might answer it; and evidence-removal items, written as a set of their own and asked over
their own document. Over hand-made chunks and the scripted model of ``test_synthetic``."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from qa import Assistant
from qa.documents.ingest import split_text
from qa.evaluation.evaluate import per_document, run_eval
from qa.evaluation.generate import (
    HOW_SHARES,
    OVERSHOOT,
    generate_gold,
    removed_path,
    write_removed,
)
from qa.evaluation.gold import load_gold
from qa.evaluation.lookalikes import ANTONYMS, Corpus, antonym, negate, swap, without_evidence
from qa.evaluation.runs import EvalPaths, find_gold_sets
from qa.text import contains, split_sentences
from tests.test_synthetic import DOCS, scripted_assistant

HARBOR = (
    "The Harbor Museum opened in 1904 near the old docks of Lisbon. Its first director, Jonas "
    "Berg, collected sea maps from every port of the coast. In 1931 the museum bought the "
    "schooner Aurora from Captain Ilse Brandt for 4,000 escudos. A fire in 1952 destroyed the "
    "east wing, and the maps were moved to the library of Porto."
)
FERRY = (
    "The river ferry started running in 1911 between Riverton and Millbrook. Its last crossing "
    "was steered by Captain Hugo Lind on a foggy morning, and nobody was hurt."
)
"""Two small documents written for these tests (no real museum or ferry)."""


@pytest.fixture
def corpus() -> Corpus:
    chunks = split_text(HARBOR, source="harbor.txt", chunk_size=200, chunk_overlap=0)
    chunks += split_text(FERRY, source="ferry.txt", chunk_size=200, chunk_overlap=0)
    return Corpus(chunks, DeterministicFakeEmbedding(size=32).embed_documents)


def _where(corpus: Corpus, text: str) -> tuple[str, list]:
    """The sentence holding ``text`` and its passage."""
    for chunk in corpus.chunks:
        for sentence in split_sentences(chunk.text):
            if text in sentence:
                return sentence, corpus.passage(chunk)
    raise AssertionError(text)


def test_a_swap_brings_in_a_name_of_the_same_passage_never_one_from_elsewhere(
    corpus: Corpus,
) -> None:
    sentence, passage = _where(corpus, "schooner Aurora")
    question = "From whom did the museum buy the schooner Aurora?"
    for seed in range(8):
        made = swap(question, sentence, corpus, random.Random(seed), "Ilse Brandt", passage=passage)
        assert made is not None
        new_q, old, new = made
        assert old == "Aurora" and new_q == question.replace("Aurora", new)
        # From the same passage, not from the sentence asked about, not from the other document.
        assert any(contains(c.text, new) for c in passage) and not contains(sentence, new)
        assert not contains(FERRY, new)


def test_a_swap_an_indexed_sentence_may_answer_is_refused(corpus: Corpus) -> None:
    sentence, passage = _where(corpus, "Jonas Berg")
    # "Who collected sea maps of the coast in Porto?": a sentence holds Porto with the maps.
    question = "Where did Jonas Berg collect sea maps of the coast?"
    for seed in range(8):
        made = swap(question, sentence, corpus, random.Random(seed), "every port", passage=passage)
        assert made is None or not corpus.speaks_of(made[2], made[0])
    assert corpus.speaks_of("Porto", "Where were the maps moved to after the fire in Porto?")


def test_a_number_swap_takes_a_number_of_the_passage_or_a_near_value(corpus: Corpus) -> None:
    sentence, passage = _where(corpus, "4,000 escudos")
    question = "From whom did the museum buy a schooner in 1931?"
    made = swap(
        question, sentence, corpus, random.Random(0), "Ilse Brandt", passage=passage,
        kinds=("year", "number"),
    )  # fmt: skip
    assert made is not None and made[1] == "1931"
    assert made[2].isdigit() and len(made[2]) == 4 and made[2] != "1931"
    # Never a year the corpus gives for this purchase, never the sentence's own.
    assert not contains(sentence, made[2])


def test_negation_goes_in_at_the_auxiliary_or_comes_out(corpus: Corpus) -> None:
    assert negate("When did the museum buy the schooner?", corpus) == (
        "When didn't the museum buy the schooner?",
        "did",
        "didn't",
    )
    assert negate("Who was the first director of the museum?", corpus)[0] == (
        "Who wasn't the first director of the museum?"
    )
    assert negate("Why was the east wing not rebuilt?", corpus)[0] == (
        "Why was the east wing rebuilt?"
    )
    assert negate("Who collected sea maps?", corpus) is None  # no auxiliary
    # A sentence on the question's words is negated ("nobody was hurt"): it might answer.
    assert negate("Who was hurt on the last crossing of the ferry?", corpus) is None


def test_an_antonym_comes_from_the_closed_list_and_only_where_no_sentence_says_it(
    corpus: Corpus,
) -> None:
    assert ANTONYMS["first"] == "last" and ANTONYMS["last"] == "first"
    made = antonym("Who was the first director of the museum?", corpus, random.Random(0))
    assert made == ("Who was the last director of the museum?", "first", "last")
    # The ferry's last crossing is in the corpus: its first is not asked about as "last".
    assert antonym("Who steered the first crossing of the ferry?", corpus, random.Random(0)) is (
        None
    )
    assert antonym("Who steered a crossing?", corpus, random.Random(0)) is None


def test_evidence_removal_takes_out_every_sentence_with_the_answer(corpus: Corpus) -> None:
    _, passage = _where(corpus, "schooner Aurora")
    text = without_evidence(passage, "Ilse Brandt", "From whom did the museum buy the schooner?")
    assert text is not None and "Museum" in text and not contains(text, "Ilse Brandt")
    # Nothing left on the question's words: not a look-alike.
    assert without_evidence(passage, "Ilse Brandt", "Who sailed a yacht to Madeira?") is None


def test_generated_look_alikes_say_how_they_were_made_in_roughly_squad2_cr_shares(
    tmp_path: Path, fake_embeddings
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in {**DOCS, "harbor2.txt": HARBOR, "ferry2.txt": FERRY}.items():
        (docs / name).write_text(text)
    assistant = scripted_assistant(docs, tmp_path, fake_embeddings)
    made = generate_gold(assistant, count=24, seed=0)
    look_alikes = [it for it in made.items if it["generated"]["kind"] in ("unanswerable", "no")]
    assert look_alikes and made.hows() == {
        it["generated"]["how"]: sum(
            x["generated"].get("how") == it["generated"]["how"] for x in made.items
        )
        for it in look_alikes
    }
    total = sum(HOW_SHARES.values())
    unanswerable = [it for it in look_alikes if it["generated"]["kind"] == "unanswerable"]
    for how in HOW_SHARES:
        n = sum(it["generated"]["how"] == how for it in unanswerable)
        assert n <= OVERSHOOT * max(len(unanswerable) * HOW_SHARES[how] / total, 0.5) + 1
    # Two kinds at least, and a "no" is never a negation ("Wasn't it ...?" still asks yes).
    assert len({it["generated"]["how"] for it in unanswerable}) >= 2
    assert all(it["generated"]["how"] != "negation" for it in look_alikes if "yes" in it)
    for it in look_alikes:
        old, new = it["generated"]["swapped"]
        assert it["question"] == it["generated"]["original"].replace(old, new, 1)


def test_the_evidence_removal_set_is_written_apart_and_asked_of_its_own_document(
    tmp_path: Path, fake_embeddings
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in {**DOCS, "harbor2.txt": HARBOR, "ferry2.txt": FERRY}.items():
        (docs / name).write_text(text)
    assistant: Assistant = scripted_assistant(docs, tmp_path, fake_embeddings)
    made = generate_gold(assistant, count=24, seed=0)
    assert made.removed and made.removed == generate_gold(assistant, count=24, seed=0).removed
    gold = tmp_path / "evals" / "generated" / "docs.jsonl"
    path = write_removed(made.removed, gold)
    assert path == removed_path(gold) == gold.parent / "docs-removed" / "docs-removed.jsonl"
    items = load_gold(path)
    answerable = {it["id"]: it for it in made.items}
    for raw, item in zip(made.removed, items, strict=True):
        turn = item.turns[0]
        source = answerable[raw["generated"]["from"]]
        assert turn.unanswerable and turn.question == source["question"]
        text = (path.parent / "docs" / item.sources[0]).read_text()
        assert not contains(text, source["answers"][0]) and "document" not in raw["question"]
    # Not listed over the assistant's own documents (where the answers still are).
    sets = find_gold_sets(EvalPaths(root=tmp_path / "evals"))
    assert path not in [s.path for s in sets]
    # Asked as `qa eval --docs <its docs> --per-document` asks it.
    ask_with = per_document(assistant.for_documents, path.parent / "docs", tmp_path / "alone")
    (tmp_path / "alone").mkdir()
    report = run_eval(assistant, items, ask_with=ask_with)
    assert report.metrics["errors"] == 0 and len(report.items) == len(items)
