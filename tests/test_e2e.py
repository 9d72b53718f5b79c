"""The shipped models end to end: real embeddings, real Chroma, real local LLM."""

from __future__ import annotations

import pytest

from qa import Assistant
from qa.text import contains

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

# Facts checked on normalized text, not wording; each question is paraphrased from the article.
FACTUAL = [
    ("How long will the crew stay aboard the space station?", "12 days"),
    ("Which TV channel aired the launch live?", "channel one"),
    ("How much money is Tom Cruise's space movie said to cost?", "200 million"),
    ("Who is directing Tom Cruise's film?", "liman"),
    ("How many months did the film crew have to prepare?", "four"),
]
NOT_IN_ARTICLE = [
    "What is Tom Cruise's favorite food?",
    "How many people died during the mission?",
]


@pytest.mark.parametrize(("question", "fact"), FACTUAL)
def test_answers_factual_questions_with_a_citation_holding_the_fact(
    real_assistant: Assistant, question: str, fact: str
) -> None:
    answer = real_assistant.ask(question)
    assert not answer.abstained, answer
    assert contains(answer.text, fact)
    assert any(contains(c.text, fact) for c in answer.citations)
    assert f"[{answer.citations[0].n}]" in answer.text


@pytest.mark.parametrize("question", NOT_IN_ARTICLE)
def test_abstains_when_the_article_does_not_say(real_assistant: Assistant, question: str) -> None:
    answer = real_assistant.ask(question)
    assert answer.abstained and answer.citations == []


def test_follow_up_question_uses_the_conversation(real_assistant: Assistant) -> None:
    first = real_assistant.ask("Which TV channel aired the launch live?")
    history = [
        {"role": "user", "content": "Which TV channel aired the launch live?"},
        {"role": "assistant", "content": first.text},
    ]
    follow = real_assistant.ask("What show will that channel air?", history)
    assert contains(follow.standalone_question, "channel one")
