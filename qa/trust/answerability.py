"""The learned answer decision and the yes/no verdict.

Small models state wrong answers as confidently as right ones, so qa does not show an answer
only because a passage holds its words. A logistic model, fitted by ``fit/fit_decision.py``
on three sources of human-written questions (SQuAD: Wikipedia; BoolQ: real search queries;
MultiRC: news, fiction, science, law) and validated leaving one source out, gives the
probability that a supported answer is right. Below the threshold qa abstains.

It reads what the answering pass already reports, so it costs nothing extra: the first-token
odds, the answer's token log-probabilities, how the answer and its passage relate to the
question, and on the local backend the model's hidden state at the answer's first token
(answerability is linearly decodable there; Slobodkin et al., EMNLP 2023). Served backends
report log-probabilities but no hidden states, so a second variant reads only those; a backend
that reports neither gets no learned decision, and its answers say so (``Answer.decided_by``).

The yes/no verdict is fitted on BoolQ: P(yes) from the odds of "Yes" against "No" at the
first answer token (the fit may add the hidden state there; the shipped one does not, see
``fit/fit_decision.py``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from qa.answer import Shape, Signals
from qa.passages import Hit
from qa.spans import mentioned
from qa.text import contains, normalize, split_sentences
from qa.trust.verify import (
    ASKING,
    content_words,
    none_probability,
    question_coverage,
    tokens,
    yes_no_odds,
)

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
    "answer_verbatim",
    "sentence_covered",
    "yesno",
    "yesno_margin",
    "open",
    "names_missing",
    "names_missing_passage",
)
"""Every cheap input a fitted decision may read (``decision.json`` names the ones it keeps).
The shipped decision does not read ``names_missing*``: a per-corpus fit may
(:mod:`qa.trust.adapt`)."""


def cheap_features(
    question: str,
    answer: str,
    evidence: int,
    hits: list[Hit],
    signals: Signals,
    shape: Shape = "short",
) -> dict[str, float]:
    """Signals of a supported answer that need no extra model pass (``CHEAP_FEATURES``).

    ``answer`` is the short answer, the yes/no verdict ("Yes"/"No") or an open answer's text;
    ``evidence`` the index of the passage that backs it."""
    probs = signals.first_token_probs
    lps = signals.token_logprobs or [0.0]
    asked = content_words(question) - ASKING
    covered = [len(asked & content_words(h.chunk.text)) / max(len(asked), 1) for h in hits]
    passage = hits[evidence].chunk.text if hits else ""
    answer_words = content_words(answer)
    odds = yes_no_odds(probs)
    yesno = shape == "yesno"
    sentence = _sentence_holding(answer, passage)
    return {
        "p_none": none_probability(probs) or 0.0,
        "first_top_prob": max(probs.values(), default=0.0),
        "first_entropy": -sum(p * math.log(p) for p in probs.values() if p > 0),
        "logprob_mean": sum(lps) / len(lps),
        "logprob_min": min(lps),
        "answer_words": math.log1p(len(answer.split())),
        "answer_in_question": len(answer_words & content_words(question))
        / max(len(answer_words), 1),
        "question_covered": covered[evidence] if covered else 0.0,
        "question_covered_best": max(covered, default=0.0),
        # By retrieval score, not position: in full-context mode passages come in document order.
        "evidence_rank": sum(h.score > hits[evidence].score for h in hits) / max(len(hits), 1)
        if hits
        else 0.0,
        "type_fit": answer_type_fit(question, answer),
        # How many passages the model saw: top-k, or the whole small corpus in full-context mode.
        "passages": math.log1p(len(hits)),
        "answer_verbatim": float(bool(answer) and not yesno and contains(passage, answer)),
        "sentence_covered": question_coverage(question, sentence),
        "yesno": float(yesno),
        "yesno_margin": abs(odds.get("p_yes", 0.0) - odds.get("p_no", 0.0)) if yesno else 0.0,
        "open": float(shape in ("open", "list", "overview")),
        # A look-alike question names someone or something its evidence does not: the share of
        # the question's names and numbers missing from the answer's sentence and passage.
        "names_missing": names_missing(question, sentence),
        "names_missing_passage": names_missing(question, passage),
    }


def names_missing(question: str, evidence: str) -> float:
    """The share of the names and numbers ``question`` mentions (:func:`qa.spans.mentioned`)
    that ``evidence`` lacks; 0 when it mentions none."""
    names = mentioned(question)
    return len(names - set(tokens(evidence))) / len(names) if names else 0.0


def _sentence_holding(answer: str, passage: str) -> str:
    """The passage sentence that holds ``answer`` (as written, else most of its words)."""
    words = content_words(answer)
    return max(
        split_sentences(passage),
        key=lambda s: (contains(s, answer), len(words & content_words(s))),
        default="",
    )


YESNO_COVERAGE = 0.5
"""Without a fitted value: a yes/no question is settled only by a passage that mentions this
share of what it asks about (by stem)."""


@dataclass(frozen=True)
class Probe:
    """A fitted logistic model: P = sigmoid(bias + ((x - mean) / scale) @ weights), where x is
    the cheap features named in ``features``, then the hidden states named in ``hidden`` (keys
    of ``Signals.states``)."""

    features: tuple[str, ...]
    hidden: tuple[str, ...]
    mean: list[float]
    scale: list[float]
    weights: list[float]
    bias: float

    def vector(self, cheap: dict[str, float], signals: Signals) -> list[float] | None:
        """The model's input, or None when the backend did not report what it needs."""
        states = signals.states
        if not signals.first_token_probs or any(len(states.get(h, ())) == 0 for h in self.hidden):
            return None
        x = [cheap[name] for name in self.features]
        for h in self.hidden:
            x += list(states[h])
        return x

    def probability(self, x: list[float]) -> float:
        """P for an input built by ``vector``."""
        z = self.bias + sum(
            w * (v - m) / s
            for w, v, m, s in zip(self.weights, x, self.mean, self.scale, strict=True)
        )
        return 1.0 / (1.0 + math.exp(-max(min(z, 60.0), -60.0)))

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Probe:
        fields = {k: raw[k] for k in ("mean", "scale", "weights", "bias")}
        return cls(tuple(raw["features"]), tuple(raw["hidden"]), **fields)


@dataclass(frozen=True)
class Variant:
    """One way of deciding, by what the backend reports: ``hidden-state`` (local model) or
    ``log-probabilities`` (served models). ``threshold`` is its shipped operating point (the
    most wrong answers withheld at a cost of at most 0.05 of the right ones, on its fit pool's
    cross-validated predictions); ``shapes`` the answer shapes it was fitted on."""

    name: str
    probe: Probe
    threshold: float
    shapes: tuple[str, ...] = ("short",)
    curve: list[dict[str, float]] = field(default_factory=list)


@dataclass(frozen=True)
class Answerability:
    """The shipped decision: its variants in order of preference, the yes/no verdict, and the
    share of a yes/no question a passage must mention to settle it (``yesno_coverage``: fitted
    so that BoolQ's answerable questions are rarely refused)."""

    variants: tuple[Variant, ...]
    verdict: Probe | None = None
    provenance: str = ""
    yesno_coverage: float = YESNO_COVERAGE

    @classmethod
    def load(cls, path: Path | str | None = None) -> Answerability:
        """The shipped decision (``qa/data/decision.json``) or one written by the fit script."""
        if path is None:
            text = resources.files("qa").joinpath("data/decision.json").read_text()
        else:
            text = Path(path).read_text()
        raw = json.loads(text)
        variants = tuple(
            Variant(
                v["name"],
                Probe.from_dict(v),
                v["threshold"],
                tuple(v.get("shapes", ("short",))),
                v.get("curve", []),
            )
            for v in raw["variants"]
        )
        verdict = Probe.from_dict(raw["verdict"]) if raw.get("verdict") else None
        coverage = raw.get("yesno_coverage", YESNO_COVERAGE)
        return cls(variants, verdict, raw.get("provenance", ""), coverage)

    def variant_for(self, signals: Signals, shape: Shape = "short") -> Variant | None:
        """The first variant whose inputs the backend reported for an answer of ``shape``."""
        cheap = dict.fromkeys(CHEAP_FEATURES, 0.0)
        for v in self.variants:
            if shape in v.shapes and v.probe.vector(cheap, signals) is not None:
                return v
        return None

    def threshold(self, name: str) -> float:
        """The shipped operating point of variant ``name``."""
        return next(v.threshold for v in self.variants if v.name == name)


def yes_probability(signals: Signals, verdict: Probe | None = None) -> float | None:
    """P(yes) for a yes/no question: the learned verdict when the backend reported what it
    reads, else the model's own odds of "yes" against "no"; None without probabilities."""
    odds = yes_no_odds(signals.first_token_probs)
    yes, no = odds.get("p_yes", 0.0), odds.get("p_no", 0.0)
    if yes + no <= 0:
        return None
    if verdict is not None:
        x = verdict.vector({"yes_logit": math.log((yes + 1e-6) / (no + 1e-6))}, signals)
        if x is not None:
            return verdict.probability(x)
    return yes / (yes + no)


@cache
def shipped_answerability() -> Answerability:
    """The decision that ships with qa (loaded once)."""
    return Answerability.load()
