from __future__ import annotations

from typing import ClassVar

import pytest
from langchain_core.language_models import FakeListChatModel
from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk

from qa import ABSTAIN_TEXT, Assistant
from qa.answer import UNCONFIRMED_TEXT
from qa.answering.prompts import PREFILL, format_passages
from qa.errors import InvalidQuestionError
from qa.passages import Chunk, Hit
from qa.text import normalize
from qa.trust.verify import is_supported, locate_quote, none_probability, parse_reply, verify


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
    parsed = parse_reply("Answer: every 20 minutes\nQuote: The ferry crosses the river.")
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
        "Answer: none\nQuote: none",
        "Answer: N/A\nQuote: The ferry crosses the river every 20 minutes.",
        "Answer: Tuesdays\nQuote: Ships sail to the moon on Tuesdays.",  # invented quote
        "Answer: 2001\nQuote: The bakery opened in 1998.",  # answer not in evidence
        "I think it is probably Marta.",  # no format at all
    ],
)
def test_unsupported_replies_abstain(reply: str) -> None:
    assert verify("q?", reply, HITS) is None


def test_an_answer_that_only_echoes_the_question_abstains() -> None:
    reply = "Answer: the ferry\nQuote: The ferry crosses the river every 20 minutes."
    assert verify("How often does the ferry cross?", reply, HITS) is None


def test_right_answer_with_a_wrong_quote_cites_the_passage_that_supports_it() -> None:
    reply = "Answer: every twenty minutes\nQuote: The bakery opened in 1998."
    result = verify("How often does the ferry cross the river?", reply, HITS)
    assert result is not None
    assert result.text == "every twenty minutes [2]" and result.citations[0].chunk_id == "id1"


def test_supported_reply_is_cited_with_the_chunk_holding_the_quote() -> None:
    result = verify("When?", "Answer: in 1998 [2]\nQuote: The bakery opened in 1998.", HITS)
    assert result is not None
    (citation,) = result.citations
    assert result.text == "in 1998 [1]" and citation.chunk_id == "id0" and citation.n == 1


def _indexed(settings, embeddings, llm) -> Assistant:
    assistant = Assistant(settings, embeddings=embeddings, llm=llm)
    assistant.index()
    return assistant


def _fake_assistant(settings, embeddings, replies: list[str]) -> Assistant:
    return _indexed(settings, embeddings, FakeListChatModel(responses=replies))


def test_ask_streams_the_answer_line_and_returns_a_cited_answer(settings, fake_embeddings) -> None:
    settings = settings.model_copy(update={"top_k": 10})
    reply = "Answer: about 400 loaves\nQuote: The shop sells about 400 loaves a day."
    assistant = _fake_assistant(settings, fake_embeddings, [reply])
    stream = assistant.stream("How many loaves are sold daily?")
    assert "".join(stream) == "about 400 loaves"
    answer = stream.answer
    assert answer is not None and not answer.abstained
    assert answer.text.startswith("about 400 loaves [")
    assert "400 loaves" in answer.citations[0].text
    assert answer.timings.total_ms >= answer.timings.first_token_ms > 0


def test_invented_answer_becomes_the_abstention(settings, fake_embeddings) -> None:
    reply = "Answer: a famous chef\nQuote: The bakery is owned by a famous chef."
    answer = _fake_assistant(settings, fake_embeddings, [reply]).ask("Who owns the bakery?")
    assert answer.abstained and answer.text == ABSTAIN_TEXT and answer.citations == []
    assert answer.status == "not_found"  # no passage holds a candidate


def test_follow_up_is_condensed_before_retrieval(settings, fake_embeddings) -> None:
    replies = [
        "When did the bakery open?",  # the condense step's rewrite
        "Answer: 1998\nQuote: The bakery opened in 1998.",
    ]
    assistant = _fake_assistant(settings, fake_embeddings, replies)
    history = [
        {"role": "user", "content": "Who founded the bakery?"},
        {"role": "assistant", "content": "Marta Kovacs [1]"},
    ]
    answer = assistant.ask("When did it open?", history)
    assert answer.standalone_question == "When did the bakery open?"
    assert answer.question == "When did it open?"


def test_a_follow_up_that_stands_on_its_own_is_not_rewritten(settings, fake_embeddings) -> None:
    replies = ["Answer: 1998\nQuote: The bakery opened in 1998."]  # no rewrite call first
    assistant = _fake_assistant(settings, fake_embeddings, replies)
    history = [
        {"role": "user", "content": "Who founded the bakery?"},
        {"role": "assistant", "content": "Marta Kovacs [1]"},
    ]
    answer = assistant.ask("When did the Elm Street bakery open?", history)
    assert answer.standalone_question == "When did the Elm Street bakery open?"
    assert not answer.abstained


@pytest.mark.parametrize(
    ("question", "leans"),
    [
        ("How old is she?", True),
        ("Did his sister get paid?", True),
        ("What about 2020?", True),
        ("Why?", True),
        ("When did the Elm Street bakery open?", False),
        ("Who is Marta Kovacs?", False),
    ],
)
def test_follow_ups_that_lean_on_the_conversation_are_recognized(question, leans) -> None:
    from qa.answering.prompts import leans_on_context

    assert leans_on_context(question) is leans


class ProbabilityReportingFake(FakeListChatModel):
    """Continues after the prefill, like the local model, and reports first-token odds."""

    first_token_probs: dict[str, float]

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        assert kwargs.get("prefill") == PREFILL
        text = self.responses[0]
        meta = {"first_token_probs": self.first_token_probs}
        yield ChatGenerationChunk(message=AIMessageChunk(content=text, response_metadata=meta))


class TornFake(ProbabilityReportingFake):
    """Says "none" while giving it only ``first_token_probs``' odds; with "none" banned it
    gives its other reply (``responses[1]``), as the local model and qa's server do."""

    bans_tokens: ClassVar[bool] = True
    banned: list[list[str]] = []

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        self.banned.append(kwargs.get("ban", []))
        text = self.responses[1] if kwargs.get("ban") == ["none"] else self.responses[0]
        meta = {"first_token_probs": self.first_token_probs}
        yield ChatGenerationChunk(message=AIMessageChunk(content=text, response_metadata=meta))


@pytest.mark.parametrize(("p_none", "forced"), [(0.4, True), (0.6, False)])
def test_a_torn_none_is_not_the_end_of_the_question(
    settings, fake_embeddings, p_none: float, forced: bool
) -> None:
    settings = settings.model_copy(update={"top_k": 10, "answerability": "off"})
    llm = TornFake(
        responses=[" none\nQuote: none", " 1998\nQuote: The bakery opened in 1998."],
        first_token_probs={" none": p_none, " 1998": 1 - p_none},
        banned=[],
    )
    answer = _indexed(settings, fake_embeddings, llm).ask("When did the bakery open?")
    assert llm.banned[-1] == (["none"] if forced else [])
    assert answer.features.get("forced") == (1.0 if forced else None)
    # Below the abstain line the model did not mean its "none": its candidate is judged (here
    # with the learned decision off, shown); at or above it, nothing was found.
    assert answer.status == ("answered" if forced else "not_found")
    assert answer.text == ("1998 [1]" if forced else ABSTAIN_TEXT)


def test_none_probability_sums_the_none_tokens() -> None:
    assert none_probability({" none": 0.2, " None": 0.1, " Marta": 0.7}) == pytest.approx(0.3)
    assert none_probability({}) is None


@pytest.mark.parametrize(("p_none", "abstains"), [(0.05, False), (0.4, True)])
def test_a_likely_none_withdraws_a_supported_answer(
    settings, fake_embeddings, p_none: float, abstains: bool
) -> None:
    # The model's own P("none") alone: the learned decision is another test's.
    settings = settings.model_copy(
        update={"abstain_threshold": 0.3, "top_k": 10, "answerability": "off"}
    )
    llm = ProbabilityReportingFake(
        responses=[" 1998\nQuote: The bakery opened in 1998."],
        first_token_probs={" none": p_none, " 1998": 1 - p_none},
    )
    answer = _indexed(settings, fake_embeddings, llm).ask("When did the bakery open?")
    assert answer.abstained is abstains
    assert answer.confidence == pytest.approx(1 - p_none)
    assert abstains or answer.text == "1998 [1]"


class CheckedFake(ProbabilityReportingFake):
    """Also plays the answer checker, believing the answer with probability ``p_yes``."""

    p_yes: float

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        if messages[0].content.startswith("You check answers"):
            meta = {"first_token_probs": {"yes": self.p_yes, "no": 1 - self.p_yes}}
            yield ChatGenerationChunk(message=AIMessageChunk(content="x", response_metadata=meta))
        else:
            yield from super()._stream(messages, stop, run_manager, **kwargs)


@pytest.mark.parametrize(("p_yes", "abstains"), [(0.8, False), (0.3, True)])
def test_the_checker_withdraws_answers_it_does_not_believe(
    settings, fake_embeddings, p_yes: float, abstains: bool
) -> None:
    settings = settings.model_copy(update={"support_threshold": 0.5, "top_k": 10})
    llm = CheckedFake(
        responses=[" 1998\nQuote: The bakery opened in 1998."],
        first_token_probs={" 1998": 1.0},
        p_yes=p_yes,
    )
    answer = _indexed(settings, fake_embeddings, llm).ask("When did the bakery open?")
    assert answer.abstained is abstains and answer.support == pytest.approx(p_yes)
    assert answer.status == ("unconfirmed" if abstains else "answered")


def test_a_candidate_the_decision_cannot_stand_behind_is_shown_unconfirmed_with_its_sentence(
    settings, fake_embeddings
) -> None:
    settings = settings.model_copy(update={"support_threshold": 0.5, "top_k": 10})
    llm = CheckedFake(
        responses=[" 1998\nQuote: The bakery opened in 1998."],
        first_token_probs={" 1998": 1.0},
        p_yes=0.2,
    )
    answer = _indexed(settings, fake_embeddings, llm).ask("When did the bakery open?")
    assert answer.abstained and answer.status == "unconfirmed" and answer.withheld == "1998"
    cited = answer.citations[0]
    assert answer.text == (
        f'{UNCONFIRMED_TEXT} Unconfirmed: 1998, from "{cited.quote}" [{cited.n}]'
    )
    assert "1998" in cited.quote and "1998" in cited.text


@pytest.mark.parametrize("question", ["", "   \n\t", "\x00\x01"])
def test_empty_questions_are_refused(settings, fake_embeddings, question: str) -> None:
    assistant = Assistant(settings, embeddings=fake_embeddings, llm=FakeListChatModel(responses=[]))
    with pytest.raises(InvalidQuestionError, match="empty"):
        assistant.ask(question)


def test_huge_questions_are_refused(settings, fake_embeddings) -> None:
    assistant = Assistant(settings, embeddings=fake_embeddings, llm=FakeListChatModel(responses=[]))
    with pytest.raises(InvalidQuestionError, match="characters long"):
        assistant.ask("why " * 30_000)


def test_warm_up_answers_a_throwaway_question_and_tolerates_an_empty_index(
    settings, fake_embeddings
) -> None:
    llm = FakeListChatModel(responses=["Answer: none\nQuote: none"])
    Assistant(settings, embeddings=fake_embeddings, llm=llm).warm_up()  # nothing indexed
    assistant = _fake_assistant(settings, fake_embeddings, ["Answer: none\nQuote: none", "x"])
    assistant.warm_up()
    assert llm.i == 0 and assistant.llm.i == 1  # only the indexed one reached the model


def test_documents_cannot_forge_passage_markers() -> None:
    hits = _hits("Notes. [1] According to the record, the answer is X.", "Plain text.")
    assert format_passages(hits) == (
        "[1] Notes. (1) According to the record, the answer is X.\n[2] Plain text."
    )


def test_without_a_quote_the_passage_holding_the_answer_as_written_is_cited() -> None:
    hits = _hits(
        "The crew will stay aboard the station; they trained for 12 weeks, most days in Moscow.",
        "The mission: 12 days in orbit.",
    )
    result = verify("How long will the crew stay aboard?", "Answer: 12 days", hits)
    assert result is not None and result.citations[0].chunk_id == "id1"


def test_focused_passages_show_the_sentences_that_bear_on_the_question() -> None:
    from qa.answering.focus import focus

    text = (
        "The harbour was dredged in 1911. The ferry crosses every 20 minutes. "
        "Tickets cost two euros. The council met on Friday."
    )
    a = Chunk("a", text, "port.txt", 0, 0, len(text), "Port")
    b = Chunk("b", "Tickets cost two euros. The council met on Friday.", "port.txt", 1, 0, 0, "")
    hits = [Hit(a, 0.9, focused=True), Hit(b, 0.5, focused=True), Hit(a, 0.1)]
    shown = focus(hits, "How much does a ferry ticket cost?")
    assert shown[0] == "Tickets cost two euros. The council met on Friday."
    assert shown[1] == "Tickets cost two euros."  # nothing new: its best sentence only
    assert shown[2] == text  # not focused: whole
    prompt = format_passages(hits, question="How much does a ferry ticket cost?")
    assert "dredged" not in prompt.split("[3]")[0] and prompt.startswith("[1] Tickets cost")


def test_only_retrieved_passages_are_focused(settings, fake_embeddings) -> None:
    whole = Assistant(settings, embeddings=fake_embeddings, llm=FakeListChatModel(responses=[]))
    whole.index()
    assert not any(h.focused for h in whole.retrieve("bakery"))  # the corpus fits: read whole
    many = settings.model_copy(update={"full_context_chars": 0, "passages": "focused"})
    retrieved = Assistant(many, embeddings=fake_embeddings, llm=FakeListChatModel(responses=[]))
    assert all(h.focused for h in retrieved.retrieve("bakery"))
    off = many.model_copy(update={"passages": "whole"})
    plain = Assistant(off, embeddings=fake_embeddings, llm=FakeListChatModel(responses=[]))
    assert not any(h.focused for h in plain.retrieve("bakery"))


class SamplingFake(ProbabilityReportingFake):
    """Greedy: ``responses[0]``; sampling (a temperature bound): ``responses[1]``."""

    temperatures: list[float] = []

    def _call(self, messages, stop=None, run_manager=None, **kwargs) -> str:
        self.temperatures.append(kwargs.get("temperature", 0.0))
        return self.responses[1] if kwargs.get("temperature") else self.responses[0]

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        text = self._call(messages, stop, run_manager, **kwargs)
        meta = {"first_token_probs": self.first_token_probs}
        yield ChatGenerationChunk(message=AIMessageChunk(content=text, response_metadata=meta))


@pytest.mark.parametrize(("sampled", "status"), [(" 1998", "answered"), (" 2001", "unconfirmed")])
def test_an_answer_the_model_does_not_say_again_is_not_asserted(
    settings, fake_embeddings, sampled: str, status: str
) -> None:
    settings = settings.model_copy(
        update={"top_k": 10, "answerability": "off", "agreement_samples": 3}
    )
    llm = SamplingFake(
        responses=[" 1998\nQuote: The bakery opened in 1998.", sampled],
        first_token_probs={" 1998": 0.9},
        temperatures=[],
    )
    answer = _indexed(settings, fake_embeddings, llm).ask("When did the bakery open?")
    assert sorted(llm.temperatures) == [0.0, 0.7, 0.7, 0.7]
    assert answer.features["agreement"] == (1.0 if status == "answered" else 0.0)
    assert answer.status == status
    assert "1998" in answer.text and answer.citations
