"""Progressive reading (qa.answering.progressive): a short answer is read from the best passage
first and from every passage only when the decision does not stand behind that answer."""

from __future__ import annotations

import re
import time

import pytest
from langchain_core.language_models import FakeListChatModel
from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk

from qa import Assistant
from qa.answer import Answer
from qa.answering.chain import Token, build_chain
from qa.answering.decisions import Thresholds
from qa.passages import Chunk, Hit

PASSAGES = [
    "The bakery opened in 1998 in a rented room on Elm Street.",
    "The bakery moved into its own building in 2001, when Marta Kovacs bought it.",
    "The ferry crosses the river every 20 minutes.",
]
RANKED = [
    Hit(Chunk(f"id{i}", t, f"s{i}.txt", i, 0, len(t), ""), 1.0 - i / 10, ranked=True)
    for i, t in enumerate(PASSAGES)
]
QUOTE_1998 = " 1998\nQuote: The bakery opened in 1998 in a rented room on Elm Street."
QUOTE_2001 = " 2001\nQuote: The bakery moved into its own building in 2001, when Marta Kovacs"


class ScriptedReader(FakeListChatModel):
    """Answers each answering prompt with the next of ``responses``, recording the passages
    it was shown and reporting 100 prompt tokens per passage; as the answer checker it
    believes only the answers in ``believed``."""

    shown: list[list[str]] = []
    believed: list[str] = []

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        last = str(messages[-1].content)
        if str(messages[0].content).startswith("You check answers"):
            answer = last.split("Proposed answer:")[-1].strip()
            p_yes = 0.9 if answer in self.believed else 0.1
            meta = {"first_token_probs": {"yes": p_yes, "no": 1 - p_yes}}
            yield ChatGenerationChunk(message=AIMessageChunk(content="x", response_metadata=meta))
            return
        self.shown.append(re.findall(r"^\[(\d+)\]", last, re.MULTILINE))
        tokens = 100 * len(self.shown[-1])
        usage = {"prompt_tokens": tokens, "prompt_eval_tokens": tokens, "generated_tokens": 5}
        text = self.responses[len(self.shown) - 1]
        yield ChatGenerationChunk(message=AIMessageChunk(content=text))
        yield ChatGenerationChunk(
            message=AIMessageChunk(content="", response_metadata={"usage": usage})
        )


def ask(llm: ScriptedReader, question: str, narrow: int = 1, **given) -> tuple[list[str], Answer]:
    """The streamed text and the answer of ``question`` over ``RANKED``; the checker decides."""
    chain = build_chain(llm, lambda q, shape: RANKED, Thresholds(support=0.5), narrow=narrow)
    events = list(
        chain.stream({"question": question, "history": [], "t0": time.perf_counter()} | given)
    )
    answer = events[-1]
    assert isinstance(answer, Answer)
    return [e.text for e in events if isinstance(e, Token)], answer


def test_an_asserted_narrow_answer_is_the_reply_after_one_read_of_one_passage() -> None:
    llm = ScriptedReader(responses=[QUOTE_1998], shown=[], believed=["1998"])
    streamed, answer = ask(llm, "When did the bakery open?")
    assert llm.shown == [["1"]]
    assert answer.status == "answered" and answer.text == "1998 [1]" and streamed == ["1998"]
    t = answer.timings
    assert t.read == "narrow" and t.narrow_ms > 0
    assert t.prompt_tokens == t.narrow_prompt_tokens == 100
    assert t.total_ms >= t.first_token_ms >= t.narrow_ms
    assert [c.n for c in answer.retrieved] == [1, 2, 3]  # retrieval metrics see every passage


@pytest.mark.parametrize(
    "narrow_reply",
    [QUOTE_1998, " none\nQuote: none"],
    ids=["unconfirmed", "none"],
)
def test_a_narrow_answer_the_decision_does_not_assert_reads_every_passage(narrow_reply) -> None:
    llm = ScriptedReader(responses=[narrow_reply, QUOTE_2001], shown=[], believed=["2001"])
    streamed, answer = ask(llm, "When did the bakery get its own building?")
    assert llm.shown == [["1"], ["1", "2", "3"]]
    # The wide answer, cited over every passage; only its tokens were streamed.
    assert answer.status == "answered" and answer.text == "2001 [2]" and streamed == ["2001"]
    t = answer.timings
    assert t.read == "wide-after-narrow" and t.narrow_ms > 0
    assert (t.narrow_prompt_tokens, t.prompt_tokens, t.generated_tokens) == (100, 400, 10)
    assert t.first_token_ms >= t.narrow_ms


def test_a_wide_read_that_does_not_settle_it_either_stays_unconfirmed() -> None:
    llm = ScriptedReader(responses=[QUOTE_1998, QUOTE_1998], shown=[], believed=[])
    _, answer = ask(llm, "When did the bakery open?")
    assert len(llm.shown) == 2 and answer.status == "unconfirmed"
    assert answer.timings.read == "wide-after-narrow"


@pytest.mark.parametrize(
    ("given", "narrow"),
    [
        ({}, 0),  # reading="wide"
        ({}, 3),  # as many passages as were retrieved: nothing to widen to
        ({"shape": "list"}, 1),
        ({"shape": "yesno"}, 1),
        ({"hits": RANKED}, 1),  # passages given by the caller (document summaries)
    ],
)
def test_other_reads_see_every_passage_at_once(given: dict, narrow: int) -> None:
    llm = ScriptedReader(responses=[" 1998, 2001"], shown=[], believed=["1998"])
    _, answer = ask(llm, "When did the bakery open?", narrow, **given)
    assert llm.shown == [["1", "2", "3"]] and answer.timings.read == "wide"
    assert answer.timings.narrow_ms == 0


@pytest.mark.parametrize(
    ("update", "read"),
    [
        ({"reading": "progressive"}, "narrow"),
        ({"reading": "wide"}, "wide"),
        # Full-context mode: the whole corpus in document order, one cached prompt already.
        ({"reading": "progressive", "full_context_chars": 6000}, "wide"),
    ],
)
def test_the_assistant_reads_narrow_only_progressively_over_retrieved_passages(
    settings, fake_embeddings, update: dict, read: str
) -> None:
    settings = settings.model_copy(
        update={"full_context_chars": 0, "top_k": 4, "answerability": "off"} | update
    )
    reply = "Answer: 1998\nQuote: The bakery opened in 1998."
    llm = ScriptedReader(responses=[reply], shown=[], believed=[])
    assistant = Assistant(settings, embeddings=fake_embeddings, llm=llm)
    assistant.index()
    answer = assistant.ask("When did the bakery open?")
    assert llm.shown == ([["1"]] if read == "narrow" else [["1", "2", "3"]])  # three chunks
    assert answer.timings.read == read and answer.status == "answered"


LONG = [
    "The Elm Street Bakery opened in 1998 in a small rented room behind the old post office. "
    "Its founder, Marta Kovacs, learned to bake in her grandmother's kitchen in Pécs and named "
    "the shop's dark rye loaf after her.",
    "In 2001 the bakery moved into its own building on the corner of Elm Street and Mill Lane, "
    "which Marta Kovacs bought with a loan from the town's savings bank.",
    "The river ferry crosses from the market square to the north bank every 20 minutes "
    "between six in the morning and nine at night.",
]


@pytest.mark.slow
def test_the_wide_read_after_a_narrow_one_pays_only_for_what_the_narrow_one_did_not_read() -> None:
    from qa import Settings
    from qa.llm.llamacpp import LlamaCppChat
    from qa.llm.models import gguf_path

    llm = LlamaCppChat(model_path=str(gguf_path(Settings())), n_ctx=2048, max_tokens=40)
    hits = [
        Hit(Chunk(f"id{i}", t, "town.txt", i, 0, len(t), ""), 1.0 - i / 10, ranked=True)
        for i, t in enumerate(LONG)
    ]
    chain = build_chain(llm, lambda q, shape: hits, Thresholds(abstain=0.5), narrow=1)

    def ask(question: str) -> Answer:
        *_, answer = chain.stream({"question": question, "history": [], "t0": time.perf_counter()})
        assert isinstance(answer, Answer)
        return answer

    # A fresh model: the narrow read computes its whole prompt, the wide one only the rest.
    first = ask("How often does the ferry cross the river?")
    t = first.timings
    assert t.read == "wide-after-narrow" and "20 minutes" in first.text
    assert t.narrow_prompt_eval_tokens == t.narrow_prompt_tokens
    wide, wide_eval = (
        t.prompt_tokens - t.narrow_prompt_tokens,
        t.prompt_eval_tokens - t.narrow_prompt_eval_tokens,
    )
    # Reused: the narrow prompt up to its question (instructions and the first passage).
    assert wide - wide_eval >= t.narrow_prompt_tokens - 40 > wide // 2
    second = ask("When did the Elm Street Bakery open?")
    assert second.timings.read == "narrow" and second.text.startswith("1998")
    assert second.timings.prompt_tokens < wide
