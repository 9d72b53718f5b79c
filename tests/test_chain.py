from __future__ import annotations

import pytest
from langchain_core.language_models import FakeListChatModel

from qa import ABSTAIN_TEXT, Assistant
from qa.chain import is_supported, locate_quote, parse_reply, verify
from qa.errors import InvalidQuestionError
from qa.ingest import Chunk
from qa.store import Hit
from qa.text import normalize


def _hits(*texts: str) -> list[Hit]:
    return [
        Hit(
            Chunk(id=f"id{i}", text=t, source=f"s{i}.txt", n=i, start=0, end=len(t), title=""),
            score=1.0 - i / 10,
        )
        for i, t in enumerate(texts)
    ]


HITS = _hits(
    "The bakery opened in 1998. Its founder, Marta Kovacs, 52, bakes every morning.",
    "The ferry crosses the river every 20 minutes.",
)


def test_normalize_unifies_quotes_dashes_and_case() -> None:
    assert normalize("“Top Gun” — it’s GREAT!") == normalize("'top gun' - it's great")


def test_parse_reply_reads_both_lines() -> None:
    parsed = parse_reply("Quote: The ferry crosses the river.\nAnswer: every 20 minutes")
    assert parsed.quote == "The ferry crosses the river." and parsed.answer == "every 20 minutes"


def test_quote_is_located_in_the_right_chunk_even_if_slightly_paraphrased() -> None:
    assert locate_quote("The ferry crosses the river every 20 minutes.", HITS) == 1
    assert locate_quote("the ferry crossed the river every 20 minutes", HITS) == 1
    assert locate_quote("Ships sail to the moon on Tuesdays", HITS) is None


def test_numbers_in_the_answer_must_be_in_the_evidence() -> None:
    assert is_supported("52", HITS[0].chunk.text)
    assert not is_supported("53", HITS[0].chunk.text)
    assert not is_supported("none", HITS[0].chunk.text)


@pytest.mark.parametrize(
    "reply",
    [
        "Quote: none\nAnswer: none",
        "Quote: The ferry crosses the river every 20 minutes.\nAnswer: N/A",
        "Quote: Ships sail to the moon on Tuesdays.\nAnswer: Tuesdays",  # invented quote
        "Quote: The bakery opened in 1998.\nAnswer: 2001",  # answer not in evidence
        "I think it is probably Marta.",  # no format at all
    ],
)
def test_unsupported_replies_abstain(reply: str) -> None:
    assert verify("q?", reply, HITS) is None


def test_an_answer_that_only_echoes_the_question_abstains() -> None:
    reply = "Quote: The ferry crosses the river every 20 minutes.\nAnswer: the ferry"
    assert verify("How often does the ferry cross?", reply, HITS) is None


def test_right_answer_with_a_wrong_quote_cites_the_passage_that_supports_it() -> None:
    reply = "Quote: The bakery opened in 1998.\nAnswer: every twenty minutes"
    result = verify("How often does the ferry cross the river?", reply, HITS)
    assert result is not None
    assert result[0] == "every twenty minutes [2]" and result[1][0].chunk_id == "id1"


def test_supported_reply_is_cited_with_the_chunk_holding_the_quote() -> None:
    result = verify("When?", "Quote: The bakery opened in 1998.\nAnswer: in 1998 [2]", HITS)
    assert result is not None
    text, (citation,) = result
    assert text == "in 1998 [1]" and citation.chunk_id == "id0" and citation.n == 1


def _fake_assistant(settings, embeddings, replies: list[str]) -> Assistant:
    assistant = Assistant(settings, embeddings=embeddings, llm=FakeListChatModel(responses=replies))
    assistant.index()
    return assistant


def test_ask_streams_the_answer_line_and_returns_a_cited_answer(settings, fake_embeddings) -> None:
    settings = settings.model_copy(update={"top_k": 10})
    reply = "Quote: The shop sells about 400 loaves a day.\nAnswer: about 400 loaves"
    assistant = _fake_assistant(settings, fake_embeddings, [reply])
    stream = assistant.stream("How many loaves are sold daily?")
    assert "".join(stream) == "about 400 loaves"
    answer = stream.answer
    assert answer is not None and not answer.abstained
    assert answer.text.startswith("about 400 loaves [")
    assert "400 loaves" in answer.citations[0].text
    assert answer.timings.total_ms >= answer.timings.first_token_ms > 0


def test_invented_answer_becomes_the_abstention(settings, fake_embeddings) -> None:
    reply = "Quote: The bakery is owned by a famous chef.\nAnswer: a famous chef"
    answer = _fake_assistant(settings, fake_embeddings, [reply]).ask("Who owns the bakery?")
    assert answer.abstained and answer.text == ABSTAIN_TEXT and answer.citations == []


def test_follow_up_is_condensed_before_retrieval(settings, fake_embeddings) -> None:
    replies = [
        "When did the bakery open?",  # the condense step's rewrite
        "Quote: The bakery opened in 1998.\nAnswer: 1998",
    ]
    assistant = _fake_assistant(settings, fake_embeddings, replies)
    history = [
        {"role": "user", "content": "Who founded the bakery?"},
        {"role": "assistant", "content": "Marta Kovacs [1]"},
    ]
    answer = assistant.ask("When did it open?", history)
    assert answer.standalone_question == "When did the bakery open?"
    assert answer.question == "When did it open?"


@pytest.mark.parametrize("question", ["", "   \n\t", "\x00\x01"])
def test_empty_questions_are_refused(settings, fake_embeddings, question: str) -> None:
    assistant = Assistant(settings, embeddings=fake_embeddings, llm=FakeListChatModel(responses=[]))
    with pytest.raises(InvalidQuestionError, match="empty"):
        assistant.ask(question)


def test_huge_questions_are_refused(settings, fake_embeddings) -> None:
    assistant = Assistant(settings, embeddings=fake_embeddings, llm=FakeListChatModel(responses=[]))
    with pytest.raises(InvalidQuestionError, match="characters long"):
        assistant.ask("why " * 30_000)
