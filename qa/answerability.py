"""The learned answer-or-abstain decision for short answers.

A logistic model, fitted on SQuAD 2.0 articles by ``bench/fit_answerability.py``, reads the
model's hidden state at the answer's first token (answerability is linearly decodable there,
Slobodkin et al., EMNLP 2023) together with cheap signals (P("none"), token log-probabilities,
how much of the question the cited passage covers, whether the answer's type fits the question)
and gives the probability that the shown answer is right. Below ``Settings.answer_threshold``
qa abstains.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

from qa.answer import Signals
from qa.store import Hit
from qa.text import normalize
from qa.verify import ASKING, content_words, none_probability, tokens, yes_no_odds

_NUMBER_WORDS = frozenset(
    "one two three four five six seven eight nine ten eleven twelve hundred thousand million "
    "billion dozen several few".split()
)
_MONTHS = frozenset(
    "january february march april may june july august september october november december "
    "century centuries decade bc ad".split()
)


def answer_type_fit(question: str, answer: str) -> float:
    """1 if the answer has the shape the question asks for ("how many" -> a number, "when" ->
    a date, "who" -> a name), 0 if not, 0.5 when the question does not say."""
    q = normalize(question).split()
    words = answer.split()
    numeric = any(ch.isdigit() for ch in answer) or bool(_NUMBER_WORDS & set(tokens(answer)))
    if "how" in q and any(w in q for w in ("many", "much", "long", "old", "far", "large")):
        return float(numeric)
    if q[:1] == ["when"] or "year" in q or "what year" in " ".join(q):
        return float(numeric or bool(_MONTHS & set(tokens(answer))))
    if q[:1] in (["who"], ["whom"]):
        return float(any(w[:1].isupper() for w in words))
    return 0.5


CHEAP_FEATURES = (
    "p_none",
    "first_top_prob",
    "first_entropy",
    "logprob_mean",
    "logprob_min",
    "answer_words",
    "answer_in_question",
    "question_covered",
    "question_covered_best",
    "evidence_rank",
    "type_fit",
    "passages",
)


def cheap_features(
    question: str, answer: str, evidence: int, hits: list[Hit], signals: Signals
) -> dict[str, float]:
    """Signals of a supported answer that need no extra model pass (see ``CHEAP_FEATURES``)."""
    probs = signals.first_token_probs
    p_none = none_probability(probs) or 0.0
    top = max(probs.values(), default=0.0)
    entropy = -sum(p * math.log(p) for p in probs.values() if p > 0)
    lps = signals.token_logprobs or [0.0]
    asked = content_words(question) - ASKING
    covered = [len(asked & content_words(h.chunk.text)) / max(len(asked), 1) for h in hits]
    answer_words = content_words(answer)
    asked_all = content_words(question)
    return {
        "p_none": p_none,
        "first_top_prob": top,
        "first_entropy": entropy,
        "logprob_mean": sum(lps) / len(lps),
        "logprob_min": min(lps),
        "answer_words": math.log1p(len(answer.split())),
        "answer_in_question": len(answer_words & asked_all) / max(len(answer_words), 1),
        "question_covered": covered[evidence] if covered else 0.0,
        "question_covered_best": max(covered, default=0.0),
        # By retrieval score, not position: in full-context mode passages come in document order.
        "evidence_rank": sum(h.score > hits[evidence].score for h in hits) / max(len(hits), 1),
        "type_fit": answer_type_fit(question, answer),
        # How many passages the model saw: top-k, or the whole small corpus in full-context mode.
        "passages": math.log1p(len(hits)),
    }


@dataclass(frozen=True)
class Answerability:
    """A fitted logistic model: P(the shown answer is right | features).

    Its input is the cheap features named in ``features``, then the hidden states named in
    ``hidden`` (keys of ``Signals.states``), standardized with ``mean``/``scale``.
    """

    features: tuple[str, ...]
    hidden: tuple[str, ...]
    mean: list[float]
    scale: list[float]
    weights: list[float]
    bias: float
    threshold: float
    provenance: str = ""
    curve: list[dict[str, float]] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path | str | None = None) -> Answerability:
        """The shipped model (``qa/data/answerability.json``) or one written by the fit script."""
        if path is None:
            text = resources.files("qa").joinpath("data/answerability.json").read_text()
        else:
            text = Path(path).read_text()
        raw = json.loads(text)
        raw["features"], raw["hidden"] = tuple(raw["features"]), tuple(raw["hidden"])
        return cls(**raw)

    def vector(self, cheap: dict[str, float], signals: Signals) -> list[float] | None:
        """The model's input, or None when the backend did not report what it needs."""
        states = signals.states
        if not signals.first_token_probs or any(not states.get(h) for h in self.hidden):
            return None
        x = [cheap[name] for name in self.features]
        for h in self.hidden:
            x += states[h]
        return x

    def probability(self, x: list[float]) -> float:
        """P(right) for an input built by ``vector``."""
        z = self.bias + sum(
            w * (v - m) / s
            for w, v, m, s in zip(self.weights, x, self.mean, self.scale, strict=True)
        )
        return 1.0 / (1.0 + math.exp(-max(min(z, 60.0), -60.0)))


@cache
def shipped_answerability() -> Answerability:
    """The model that ships with qa (loaded once)."""
    return Answerability.load()


@dataclass(frozen=True)
class YesNoVerdict:
    """A fitted logistic model: P(the answer to a yes/no question is "yes" | the answering
    pass's first-token odds and hidden state)."""

    features: tuple[str, ...]
    hidden: tuple[str, ...]
    mean: list[float]
    scale: list[float]
    weights: list[float]
    bias: float
    provenance: str = ""


def yes_probability(signals: Signals, verdict: YesNoVerdict | None = None) -> float | None:
    """P(yes) for a yes/no question: the learned verdict when the backend reported what it
    reads, else the model's own odds of "yes" against "no"; None without probabilities."""
    odds = yes_no_odds(signals.first_token_probs)
    yes, no = odds.get("p_yes", 0.0), odds.get("p_no", 0.0)
    if yes + no <= 0:
        return None
    return yes / (yes + no)
