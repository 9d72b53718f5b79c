from __future__ import annotations

import math

import pytest
from langchain_core.language_models import FakeListChatModel
from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk

from qa.answer import Answer, Signals
from qa.answering.chain import build_chain
from qa.answering.decisions import Thresholds
from qa.config import Settings
from qa.passages import Chunk, Hit
from qa.trust.answerability import (
    CHEAP_FEATURES,
    Answerability,
    Probe,
    Variant,
    answer_type_fit,
    cheap_features,
    shipped_answerability,
)
from qa.trust.verify import settling_sentence


def _hits(*texts: str) -> list[Hit]:
    return [
        Hit(Chunk(id=f"id{i}", text=t, source="s.txt", n=i, start=0, end=len(t), title=""), 1.0)
        for i, t in enumerate(texts)
    ]


HITS = _hits(
    "The bakery opened in 1998. Its founder, Marta Kovacs, bakes every morning.",
    "The ferry crosses the river every 20 minutes.",
)


@pytest.mark.parametrize(
    ("question", "answer", "fit"),
    [
        ("How many loaves are sold?", "about 400", 1.0),
        ("How many loaves are sold?", "Marta", 0.0),
        ("When did the bakery open?", "in 1998", 1.0),
        ("When did the bakery open?", "in spring", 0.0),
        ("Who founded the bakery?", "Marta Kovacs", 1.0),
        ("Who founded the bakery?", "a baker", 0.0),
        ("What does the ferry cross?", "the river", 0.5),
    ],
)
def test_answer_type_fit(question: str, answer: str, fit: float) -> None:
    assert answer_type_fit(question, answer) == fit


def test_cheap_features_measure_how_much_of_the_question_the_evidence_covers() -> None:
    signals = Signals({" Marta": 0.9, " none": 0.1}, [-0.1, -0.3])
    f = cheap_features("Who founded the bakery?", "Marta Kovacs", 0, HITS, signals)
    assert set(f) == set(CHEAP_FEATURES)
    assert f["p_none"] == pytest.approx(0.1) and f["first_top_prob"] == pytest.approx(0.9)
    assert f["logprob_mean"] == pytest.approx(-0.2) and f["logprob_min"] == pytest.approx(-0.3)
    assert f["question_covered"] == 0.5  # "bakery" is in passage 1, "founded" is not ("founder")
    assert f["type_fit"] == 1.0 and f["evidence_rank"] == 0.0


def _probe(hidden: tuple[str, ...] = ("l14@end",)) -> Probe:
    # Only "p_none" matters: P(right) = sigmoid(-10 * (p_none - 0.5)).
    names = tuple(CHEAP_FEATURES)
    weights = [-10.0 if n == "p_none" else 0.0 for n in names] + [0.0, 0.0] * len(hidden)
    mean = [0.5 if n == "p_none" else 0.0 for n in names] + [0.0, 0.0] * len(hidden)
    return Probe(names, hidden, mean, [1.0] * len(weights), weights, 0.0)


def _model(threshold: float = 0.5) -> Answerability:
    """A hidden-state variant, then a log-probability one (no hidden state)."""
    return Answerability(
        (
            Variant("hidden-state", _probe(), threshold),
            Variant("log-probabilities", _probe(()), threshold),
        )
    )


def test_probability_is_a_logistic_of_standardized_inputs() -> None:
    probe = _probe()
    signals = Signals({" none": 0.3, " x": 0.7}, [-0.1], {"l14@end": [0.2, 0.4]})
    x = probe.vector(cheap_features("q?", "x", 0, HITS, signals), signals)
    assert x is not None and len(x) == len(CHEAP_FEATURES) + 2
    assert probe.probability(x) == pytest.approx(1 / (1 + math.exp(-2.0)))


def test_each_backend_gets_the_variant_its_signals_allow() -> None:
    cheap = dict.fromkeys(CHEAP_FEATURES, 0.0)
    assert _probe().vector(cheap, Signals({" x": 1.0}, [], {"final@end": [1.0]})) is None
    local = Signals({" x": 1.0}, [], {"l14@end": [1.0, 2.0]})
    served = Signals({" x": 1.0}, [-0.1], {})
    assert _model().variant_for(local).name == "hidden-state"
    assert _model().variant_for(served).name == "log-probabilities"
    assert _model().variant_for(Signals({}, [], {})) is None
    assert _model().variant_for(local, "open") is None  # not fitted on open answers


class SignallingFake(FakeListChatModel):
    """Reports first-token odds and (optionally) a hidden state, like the local model."""

    p_none: float
    states: bool = True

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        assert kwargs.get("hidden_state") is True
        meta = {"first_token_probs": {" none": self.p_none, " 1998": 1 - self.p_none}}
        yield ChatGenerationChunk(message=AIMessageChunk(content=" 1998", response_metadata=meta))
        end = {"hidden_states_end": {"l14": [0.0, 0.0]}} if self.states else {}
        yield ChatGenerationChunk(message=AIMessageChunk(content="", response_metadata=end))


@pytest.mark.parametrize("states", [True, False])
@pytest.mark.parametrize(("p_none", "shown"), [(0.1, True), (0.45, False)])
def test_the_learned_decision_withdraws_unlikely_answers(
    p_none: float, shown: bool, states: bool
) -> None:
    llm = SignallingFake(responses=["unused"], p_none=p_none, states=states)
    chain = build_chain(
        llm, lambda q, shape: HITS, Thresholds(abstain=1.0, answerability=_model(), answer=0.7)
    )
    *_, answer = chain.stream({"question": "When did the bakery open?", "history": []})
    assert isinstance(answer, Answer)
    assert answer.abstained is not shown
    assert answer.answerability == pytest.approx(1 / (1 + math.exp(10 * (p_none - 0.5))))
    assert answer.features["type_fit"] == 1.0
    assert answer.decided_by == ("hidden-state" if states else "log-probabilities")
    assert answer.withheld == ("" if shown else "1998")


def test_without_probabilities_the_answer_says_it_was_not_judged() -> None:
    chain = build_chain(
        FakeListChatModel(responses=["Answer: 1998"]),
        lambda q, shape: HITS,
        Thresholds(abstain=1.0, answerability=_model()),
    )
    *_, answer = chain.stream({"question": "When did the bakery open?", "history": []})
    assert not answer.abstained and answer.decided_by == "unavailable"
    assert answer.answerability is None


def test_the_shipped_decision_is_complete_and_documented() -> None:
    model = shipped_answerability()
    assert Settings().answer_threshold is None  # unset: each variant's own operating point
    names = [v.name for v in model.variants]
    assert names[0] == "hidden-state" and len(set(names)) == len(names)
    for v in model.variants:
        probe = v.probe
        assert set(probe.features) <= set(CHEAP_FEATURES)
        n = len(probe.weights)
        assert len(probe.mean) == len(probe.scale) == n >= len(probe.features)
        assert n == len(probe.features) + 1536 * len(probe.hidden)
        assert all(h.split("@")[1] in ("first", "end") for h in probe.hidden)
        assert 0 < v.threshold < 1 and v.curve
        assert {"threshold", "coverage", "risk"} <= set(v.curve[0])
    assert "fit_" in model.provenance


def test_the_settling_sentence_is_the_one_holding_the_answer() -> None:
    passage = "The bakery opened in 1998. Its founder, Marta Kovacs, bakes every morning."
    assert settling_sentence("Marta Kovacs", passage) == (
        "Its founder, Marta Kovacs, bakes every morning."
    )
    assert settling_sentence("in 1998", passage) == "The bakery opened in 1998."
