"""Answer shapes: routing, sentence-by-sentence grounding, lists, yes/no and summaries (fakes)."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.language_models import FakeListChatModel

from qa.answer import Answer, Sentence
from qa.answering.chain import build_chain
from qa.answering.decisions import Thresholds
from qa.answering.shapes import list_items, overview_topic, route, sentences
from qa.answering.summaries import Summaries
from qa.passages import Chunk, Hit
from qa.text import split_sentences
from qa.trust.verify import ground, question_coverage, sentence_support

PASSAGES = [
    "The bakery on Elm Street opened in 1998. Its founder, Marta Kovacs, bakes every morning.",
    "Her nephew Peter, 31, runs the shop. The bakery sells about 400 loaves a day.",
    "The ferry crosses the river every 20 minutes between 6 a.m. and 9 p.m. every day.",
]


def _hits(texts: list[str] = PASSAGES, source: str = "s.txt") -> list[Hit]:
    return [
        Hit(Chunk(f"{source}-{i}", t, source, i, 0, len(t), ""), 1.0) for i, t in enumerate(texts)
    ]


@pytest.mark.parametrize(
    ("question", "shape"),
    [
        ("When did the bakery open?", "short"),
        ("How many loaves does it sell?", "short"),
        ("Did the bakery open in 1998?", "yesno"),
        ("Is it open on Sundays or Mondays?", "short"),
        ("is house tax and property tax are same", "yesno"),
        ("is there a difference between doves and pigeons", "yesno"),
        ("are all the members of the band still alive", "yesno"),
        ("is david from love it or list it a real realtor", "yesno"),
        ("did the queen have any brothers or sisters", "yesno"),
        ("Was the plane allowed to land, why or why not?", "yesno"),
        ("Was Jimmi a squirrel or a rabbit", "short"),
        ("can you drink tap water in the city", "yesno"),
        ("Can you list the people involved?", "list"),
        ("List every product the bakery sells.", "list"),
        ("Who are the people involved?", "list"),
        ("Which documents mention the ferry?", "list"),
        ("Why did Marta open the bakery?", "open"),
        ("How did Peter learn to run the shop?", "open"),
        ("Compare the bakery with the ferry.", "open"),
        ("What is this document about?", "overview"),
        ("Summarize the article.", "overview"),
        ("What are these documents about?", "overview"),
    ],
)
def test_questions_are_routed_to_the_shape_they_ask_for(question: str, shape: str) -> None:
    assert route(question) == shape


def test_an_overview_topic_is_what_the_question_names_besides_the_documents() -> None:
    assert overview_topic("What are these documents about?") == ""
    assert overview_topic("Summarize the article about steam engines.") == "steam engines"


def test_sentences_skip_abbreviations_repeats_and_a_cut_off_ending() -> None:
    text = (
        "The ferry runs at 6 a.m. Every day. It left on Oct. 5 from Dover. It left on Oct. 5 from"
    )
    assert sentences(text + " Dover. The ferry is") == [
        "The ferry runs at 6 a.m. Every day.",
        "It left on Oct. 5 from Dover.",
    ]
    assert split_sentences('He said "Yes." Then he left.') == ['He said "Yes."', "Then he left."]


def test_list_items_split_names_but_keep_sentences_whole() -> None:
    reply = "Marta Kovacs, Peter and Ilse; the ferry, which crosses the wide river every day [2]"
    assert list_items(reply) == [
        "Marta Kovacs",
        "Peter",
        "Ilse",
        "the ferry, which crosses the wide river every day",
    ]
    assert list_items("Peter, Peter, Marta,") == ["Peter", "Marta"]


def test_a_sentence_is_backed_only_by_a_passage_holding_its_words_numbers_and_negations() -> None:
    assert sentence_support("Peter runs the shop.", PASSAGES[1]) == 1.0
    assert sentence_support("Peter, 32, runs the shop.", PASSAGES[1]) == 0.0  # wrong number
    assert sentence_support("Peter does not run the shop.", PASSAGES[1]) == 0.0  # negation
    assert sentence_support("Peter bakes bread in Paris.", PASSAGES[1]) < 0.8
    assert ground("The founder bakes every morning.", _hits()) == (0,)
    assert ground("Marta Kovacs founded the bakery that Peter runs.", _hits()) == (0, 1)
    assert ground("The ferry sells loaves in Paris.", _hits()) is None


def test_a_sentence_restating_the_question_around_other_facts_is_not_backed() -> None:
    question = "Why was Peter chosen to lead the shop?"
    claim = "Peter was chosen because the bakery sells about 400 loaves a day."
    assert sentence_support(claim, PASSAGES[1]) >= 0.8  # the words alone would pass
    assert sentence_support(claim, PASSAGES[1], question) == 0.0
    assert question_coverage("Does Peter run the shop?", PASSAGES[1]) == 1.0


class ShapedFake(FakeListChatModel):
    """Replies in turn, reporting ``odds`` as its first-token probabilities (as the local model
    does; empty: a backend that reports none)."""

    odds: dict[str, float] = {}

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        meta = {"first_token_probs": self.odds} if self.odds else {}
        for i, chunk in enumerate(super()._stream(messages, stop, run_manager, **kwargs)):
            if i == 0:
                chunk.message.response_metadata = meta
            yield chunk


def _ask(
    question: str,
    reply: str,
    odds: dict[str, float] | None = None,
    thresholds: Thresholds | None = None,
) -> Answer:
    llm = ShapedFake(responses=[reply], odds=odds or {})
    chain = build_chain(llm, lambda q, shape: _hits(), thresholds or Thresholds())
    *_, answer = chain.stream({"question": question, "history": []})
    assert isinstance(answer, Answer)
    return answer


def test_open_answers_keep_only_backed_sentences_each_citing_its_passage() -> None:
    reply = (
        "Answer: The bakery opened in 1998. Its founder Marta Kovacs bakes every morning. "
        "Marta studied baking in Vienna for ten years. Her nephew Peter runs the shop."
    )
    answer = _ask("How did the bakery start?", reply)
    assert answer.shape == "open" and not answer.abstained
    assert [s.text for s in answer.sentences] == [
        "The bakery opened in 1998.",
        "Its founder Marta Kovacs bakes every morning.",
        "Her nephew Peter runs the shop.",
    ]
    assert [[c.n for c in s.citations] for s in answer.sentences] == [[1], [1], [2]]
    assert answer.sentences[2].citations[0].quote == "Her nephew Peter, 31, runs the shop."
    assert answer.dropped == ["Marta studied baking in Vienna for ten years."]
    assert answer.text.endswith("Her nephew Peter runs the shop. [2]")


def test_an_open_answer_with_nothing_backed_abstains() -> None:
    answer = _ask("Why did Marta move to Vienna?", "Answer: She wanted to study music there.")
    assert answer.abstained and answer.sentences == []
    assert answer.dropped == ["She wanted to study music there."]


def test_list_items_are_each_cited_and_invented_ones_dropped() -> None:
    answer = _ask("List every person mentioned.", "Answer: Marta Kovacs; Peter; Ilse Brandt")
    assert answer.shape == "list"
    assert answer.text == "- Marta Kovacs [1]\n- Peter [2]"
    assert answer.dropped == ["Ilse Brandt"]


@pytest.mark.parametrize(
    ("odds", "text"),
    [
        ({" No": 0.9, " Yes": 0.1}, "No. Her nephew Peter, 31, runs the shop. [2]"),
        ({" Yes": 0.8, " No": 0.2}, "Yes. Her nephew Peter, 31, runs the shop. [2]"),
        ({" none": 0.9, " No": 0.1}, None),
    ],
)
def test_yes_no_is_read_off_the_first_token_and_shows_the_sentence_that_settles_it(
    odds: dict[str, float], text: str | None
) -> None:
    answer = _ask("Is Peter 40 years old?", "Answer: No", odds, Thresholds(abstain=0.5))
    assert answer.shape == "yesno"
    assert answer.abstained is (text is None)
    if text:
        assert answer.text == text
        assert answer.sentences[0].citations[0].quote == "Her nephew Peter, 31, runs the shop."


def test_yes_no_without_probabilities_takes_the_models_word() -> None:
    answer = _ask("does peter run the shop", "Answer: Yes")
    assert answer.text == "Yes. Her nephew Peter, 31, runs the shop. [2]"
    assert _ask("does peter run the shop", "Answer: Maybe").abstained


def test_yes_no_abstains_when_no_passage_sentence_is_about_the_question() -> None:
    answer = _ask("Does Peter own a boat?", "Answer: No", {" No": 0.9, " Yes": 0.1})
    assert answer.abstained


def test_summaries_are_written_once_renewed_on_change_and_dropped_with_their_document(
    tmp_path: Path,
) -> None:
    calls: list[str] = []

    def summarize(hits: list[Hit]) -> list[Sentence]:
        calls.append(hits[0].chunk.source)
        return [Sentence("A summary.", [])]

    summaries = Summaries(tmp_path / "summaries.json", summarize)
    docs = {
        "a.txt": [h.chunk for h in _hits(PASSAGES[:2], "a.txt")],
        "b.txt": [h.chunk for h in _hits(PASSAGES[2:], "b.txt")],
    }
    summaries.get(docs, ["a.txt", "b.txt"])
    summaries.get(docs, ["a.txt"])
    assert calls == ["a.txt", "b.txt"]  # the second question wrote nothing
    docs["a.txt"] = [h.chunk for h in _hits(["The bakery closed."], "a.txt")]
    summaries.get(docs, ["a.txt"])
    assert calls[-1] == "a.txt" and len(calls) == 3  # changed document, new summary
    del docs["b.txt"]
    summaries.get(docs, ["a.txt"])
    assert "b.txt" not in (tmp_path / "summaries.json").read_text()


def _corpus(settings, fake_embeddings, replies: list[str]):
    from qa.assistant import Assistant

    small = settings.model_copy(update={"full_context_chars": 50})  # the corpus does not fit
    assistant = Assistant(
        small, embeddings=fake_embeddings, llm=FakeListChatModel(responses=replies)
    )
    assistant.index()
    return assistant


def test_which_documents_mention_a_term_is_answered_from_the_index(
    settings, fake_embeddings
) -> None:
    assistant = _corpus(settings, fake_embeddings, replies=[])  # the LLM is never asked
    answer = assistant.ask("Which documents mention the river?")
    assert answer.shape == "list" and not answer.abstained
    assert [s.text for s in answer.sentences] == ["ferry.md"]
    assert answer.citations[0].quote == "The ferry crosses the river every 20 minutes."
    assert assistant.ask("Which documents mention a volcano?").abstained


def test_overviews_of_a_large_corpus_come_from_summaries_written_once(
    settings, fake_embeddings
) -> None:
    summary = "Answer: The bakery opened in 1998. Its founder Marta Kovacs bakes every morning."
    assistant = _corpus(settings, fake_embeddings, replies=[summary, "Answer: none"])
    answer = assistant.ask("What are these documents about?")
    assert answer.shape == "overview" and not answer.abstained
    assert answer.sentences[0].text == "The bakery opened in 1998."
    assert answer.sentences[0].citations[0].source == "bakery.txt"
    stored = assistant.retriever.summaries.path.read_text()
    assert "bakery.txt" in stored and "ferry.md" in stored
    again = assistant.ask("Summarize the document about the bakery.")  # no LLM call left for it
    assert again.text.startswith("The bakery opened in 1998.")


def test_an_overview_falls_back_on_the_documents_first_sentences() -> None:
    answer = _ask("What is this document about?", "Answer: It covers many interesting topics.")
    assert answer.shape == "overview"
    assert [s.text for s in answer.sentences] == [
        "The bakery on Elm Street opened in 1998.",
        "Its founder, Marta Kovacs, bakes every morning.",
    ]
    assert answer.dropped == ["It covers many interesting topics."]
    assert _ask("Summarize how the bakery closed.", "Answer: none").abstained
