"""Yes/no over a long text: the verdict re-read from the bearing sentences, and the sentence
shown after "Yes."/"No." agreeing with it (fakes whose odds depend on what they read)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from langchain_core.language_models import FakeListChatModel
from langchain_core.messages import BaseMessage

from qa.answer import UNSETTLED_TEXT, Answer
from qa.answering.chain import build_chain
from qa.answering.decisions import Thresholds
from qa.answering.yesno import Bearing, bearing, is_long, settle
from qa.passages import Chunk, Hit

# A text of more than a paragraph: the first passage says the ferry runs on Sundays, the
# second (more of the question's words) says it does not.
LONG = [
    "The river ferry runs every day of the week, Sundays included. It crosses in ten minutes. "
    "Tickets cost two euros. The ferry was built in 1952.",
    "The old river ferry to the island does not run on Sundays any more since 2019. "
    "The island has a small harbour. About 300 people live there.",
    "Ferry timetables are posted at both piers. The city council pays for the service. "
    "Cyclists ride for free.",
]
YES_SENTENCE = "The river ferry runs every day of the week, Sundays included."
NO_SENTENCE = "The old river ferry to the island does not run on Sundays any more since 2019."
QUESTION = "Does the river ferry to the island run on Sundays?"


def _hits(texts: list[str]) -> list[Hit]:
    return [
        Hit(Chunk(f"c{i}", t, "f.txt", i, 0, len(t), ""), 1.0 - i / 10) for i, t in enumerate(texts)
    ]


class ReadingFake(FakeListChatModel):
    """Answers "Yes"/"No" with first-token odds chosen by ``odds(prompt's last message)``."""

    odds: Callable[[str], dict[str, float]] = lambda text: {" Yes": 0.5, " No": 0.5}
    prompts: list[str] = []

    def _stream(self, messages: list[BaseMessage], stop=None, run_manager=None, **kwargs):
        text = str(messages[-1].content)
        self.prompts.append(text)
        meta = {"first_token_probs": self.odds(text)}
        for i, chunk in enumerate(super()._stream(messages, stop, run_manager, **kwargs)):
            if i == 0:
                chunk.message.response_metadata = meta
            yield chunk


def _reads(whole: dict[str, float], sentences: dict[str, dict[str, float]]):
    """Odds for the whole text, with the model pointed at one given sentence, and at the
    bearing sentences together (``"bearing"``)."""

    def odds(text: str) -> dict[str, float]:
        asked = text.split("\n\nQuestion:")[1]
        if "from this sentence" in asked:
            return next((o for s, o in sentences.items() if s in asked), whole)
        if "from these sentences" in asked:
            return sentences.get("bearing", whole)
        return whole

    return odds


def _ask(
    odds: Callable[[str], dict[str, float]], texts: list[str] = LONG, reading: bool = True
) -> Answer:
    llm = ReadingFake(responses=["Answer: Yes"], odds=odds, prompts=[])
    chain = build_chain(llm, lambda q, shape: _hits(texts), Thresholds(), yesno_reading=reading)
    *_, answer = chain.stream({"question": QUESTION, "history": []})
    assert isinstance(answer, Answer)
    return answer


YES = {" Yes": 0.95, " No": 0.05}
NO = {" Yes": 0.05, " No": 0.95}


def test_bearing_sentences_are_those_about_the_question_headings_left_out() -> None:
    found = bearing(QUESTION, _hits(["Ferry on Sundays", *LONG]), k=2)
    assert [b.text for b in found] == [NO_SENTENCE, YES_SENTENCE]
    assert [b.hit for b in found] == [2, 1]
    assert is_long(_hits(LONG)) and not is_long(_hits(LONG[:1]))


def test_the_shown_sentence_is_the_best_one_whose_own_reading_agrees() -> None:
    candidates = [Bearing(1, NO_SENTENCE), Bearing(0, YES_SENTENCE)]
    by_sentence = {NO_SENTENCE: NO, YES_SENTENCE: YES}

    def read(sentences: list[str], question: str) -> dict[str, float]:
        o = by_sentence[sentences[0]]
        return {"p_yes": o[" Yes"], "p_no": o[" No"]}

    assert settle(QUESTION, True, candidates, read).sentence.text == YES_SENTENCE
    assert settle(QUESTION, False, candidates, read).sentence.text == NO_SENTENCE
    assert settle(QUESTION, True, candidates[:1], read) is None  # only a "no" sentence
    assert settle(QUESTION, True, candidates, None).sentence.text == NO_SENTENCE  # no reader


def test_over_a_long_text_the_verdict_is_read_from_the_bearing_sentences() -> None:
    # The whole text says "Yes"; the bearing sentences read together say "No", as does the
    # best one read alone: "No." with the sentence that says no.
    answer = _ask(_reads(YES, {"bearing": NO, NO_SENTENCE: NO, YES_SENTENCE: YES}))
    assert answer.text == f"No. {NO_SENTENCE} [2]"
    assert answer.features["p_yes_bearing"] < 0.5 < answer.features["p_yes_answering"]


def test_a_verdict_its_own_sentences_contradict_is_an_abstention() -> None:
    # "No." over the text and its bearing sentences, but each sentence read alone says yes:
    # "No." followed by a sentence that says yes is never shown.
    answer = _ask(_reads(NO, {"bearing": NO, NO_SENTENCE: YES, YES_SENTENCE: YES}))
    assert answer.abstained and answer.status == "unconfirmed"
    # No verdict, only the sentence that bears on the question, quoted with its citation.
    assert answer.text == (f'{UNSETTLED_TEXT} The sentence that bears on it: "{NO_SENTENCE}" [2]')


def test_a_verdict_near_even_odds_is_unconfirmed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("qa.answering.decisions.DECISIVE", 0.2)
    near = {" Yes": 0.6, " No": 0.4}
    answer = _ask(_reads(near, {}), LONG[:1], reading=False)
    assert answer.status == "unconfirmed" and answer.abstained
    assert answer.withheld.startswith("Yes.") and "Yes" not in answer.text.split(":")[0]
    assert _ask(_reads(YES, {}), LONG[:1], reading=False).status == "answered"


def test_a_paragraph_keeps_the_answering_verdict_and_a_sentence_that_agrees() -> None:
    answer = _ask(_reads(YES, {"bearing": NO, NO_SENTENCE: NO, YES_SENTENCE: YES}), LONG[:2])
    assert not is_long(_hits(LONG[:2]))
    assert answer.text == f"Yes. {YES_SENTENCE} [1]"
    assert "p_yes_bearing" not in answer.features


def test_without_reading_the_answering_pass_decides_alone() -> None:
    answer = _ask(_reads(YES, {"bearing": NO, NO_SENTENCE: NO}), ["Ferry on Sundays", *LONG], False)
    assert answer.text == f"Yes. {NO_SENTENCE} [3]"  # the best sentence, never the heading


def test_every_read_reuses_the_answering_passes_passages_as_its_prefix() -> None:
    # The KV cache of the passages (a whole article) survives only for prompts that start
    # with them: each extra read adds just its question line.
    llm = ReadingFake(responses=["Answer: Yes"], odds=_reads(YES, {"bearing": YES}), prompts=[])
    chain = build_chain(llm, lambda q, shape: _hits(LONG), Thresholds(), yesno_reading=True)
    *_, answer = chain.stream({"question": QUESTION, "history": []})
    passages = llm.prompts[0].split("\n\nQuestion:")[0]
    assert len(llm.prompts) == 3  # answering, the bearing sentences, the first sentence
    assert all(p.split("\n\nQuestion:")[0] == passages for p in llm.prompts)
