"""Yes/no over a long text: the sentences that bear on the question, the one shown after
"Yes."/"No.", and an optional reading of the verdict from them (``Settings.yesno_reading``).

The answering pass reads every passage and its first-token odds of "Yes" against "No" are the
verdict (:func:`qa.trust.answerability.yes_probability`). The sentence shown with it is the
bearing sentence that mentions most of the question; lines under ``MIN_WORDS`` words (most
headings and captions) are never shown: on the held-out BoolQ sample bare titles were 9 of the
29 "sentences" shown before.

``yesno_reading="bearing"`` (off by default) adds what #26 asked for: over more than a
paragraph a short pass points the model at the three bearing sentences, quoted after the
question, and the verdict is the mean of both passes' log-odds; the model is then pointed at
the best bearing sentences one at a time (at most ``CHECKED``) and the first whose own odds
agree with the verdict is shown, none agreeing -> abstain. Each extra prompt starts with the
answering pass's (instructions, examples, passages), so only its question line is read: a
prompt of the bearing sentences alone cost the whole article's KV cache (the engine keeps a
cached prefix only as far as the next prompt shares it) and the next question re-read the
article, 55-80 s on 2 busy cores (``fit/yesno_bearing.py``).

Why it is off, measured (docs/benchmarks.md, "Yes/no over a long text"): with the default
1.5B model the pointed reads follow the same bias as the answering pass. On BoolQ fit texts the
mean verdict was within one question of the answering pass; on the held-out BoolQ sample it
lost one question to an abstention, on the seed article one more answer turned wrong, and a
yes/no answer over the seed took ~9 s instead of ~1 s. The model's read of a single sentence
agreed with verdicts that sentence contradicts ("a younger sheep as a lamb" for "is a ram and a
lamb the same thing": Yes), so it cannot vouch for the sentence shown.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from langchain_core.language_models import BaseChatModel

from qa.answering.prompts import PREFILL, YESNO_GRAMMAR, answer_prompt, as_data
from qa.passages import Hit
from qa.text import split_sentences
from qa.trust.verify import question_coverage, yes_no_odds

Reader = Callable[[list[str], str], dict[str, float]]
"""``(sentences, question) -> the first-token odds`` (``p_yes``, ``p_no``, ``p_none``) of the
model answering ``question`` from ``sentences``; empty if the backend reports none."""
ReadPassages = Callable[[str, list[str], str], dict[str, float]]
"""A :data:`Reader` that is first given the passages text the answering pass read."""

BEARING = 3
"""Sentences the verdict is read from over a long text."""
CHECKED = 2
"""Of those, how many the model is pointed at one by one for the settling sentence."""
PARAGRAPH = 8
"""Passages with more sentences than this are more than a paragraph: the verdict then also
reads the bearing sentences (15 of 17 BoolQ fit paragraphs have no more)."""
MIN_WORDS = 5
"""Shorter lines are headings or captions, not sentences that can settle a question."""
BEARING_LINE = 0.75
"""Over a long text the verdict is the mean log-odds of "Yes" against "No" of the answering
pass and of the read pointed at the bearing sentences; "yes" at or above this line."""
DECISIVE = 0.15
"""A verdict is shown only when its P(yes) is at least this far from 0.5; nearer, the reply
is unconfirmed and quotes the sentence that bears on the question. Chosen on BoolQ fit titles
by ``fit/yesno_decisive.py`` (``fit/results/yesno-decisive.json``): the smallest margin whose
wrong verdicts are at most 0.10 of all questions (there: 0.62 shown, 0.08 wrong)."""
SENTENCE_LINE = 0.5
"""The same line for the read pointed at one sentence. Both chosen on BoolQ fit titles by
``fit/yesno_bearing.py`` (``fit/results/yesno-bearing.json``): the model says "Yes" too easily,
and less so when pointed at one sentence."""


@dataclass(frozen=True)
class Bearing:
    """A passage sentence that bears on the question: its hit's index and its text."""

    hit: int
    text: str


def bearing(
    question: str, hits: list[Hit], k: int = BEARING, min_words: int = MIN_WORDS
) -> list[Bearing]:
    """The ``k`` sentences that mention most of what ``question`` asks about (ties: the better
    retrieved passage first), lines under ``min_words`` words (headings, captions) left out;
    best first."""
    found = [
        (question_coverage(question, s), h.score, i, Bearing(i, s))
        for i, h in enumerate(hits)
        for s in split_sentences(h.chunk.text)
        if len(s.split()) >= min_words
    ]
    found.sort(key=lambda f: (-f[0], -f[1], f[2]))
    unique: dict[str, Bearing] = {}
    for *_, b in found:
        unique.setdefault(b.text, b)
    return list(unique.values())[:k]


def is_long(hits: list[Hit]) -> bool:
    """Whether the passages hold more than a paragraph (``PARAGRAPH`` sentences)."""
    return sum(len(split_sentences(h.chunk.text)) for h in hits) > PARAGRAPH


def log_odds(odds: dict[str, float]) -> float | None:
    """log(P(yes) / P(no)) of a read, or None when it reports neither."""
    yes, no = odds.get("p_yes", 0.0), odds.get("p_no", 0.0)
    if yes + no <= 0:
        return None
    return math.log((yes + 1e-6) / (no + 1e-6))


def probability(logit: float, line: float) -> float:
    """P(yes) of a read whose log-odds are ``logit``, centred on its fitted ``line``."""
    return 1.0 / (1.0 + math.exp(-max(min(logit - line, 60.0), -60.0)))


def bearing_verdict(
    question: str,
    candidates: list[Bearing],
    hits: list[Hit],
    answering: dict[str, float],
    read: Reader | None,
) -> float | None:
    """P(yes) over a long text: the answering pass's odds (``answering``) averaged in
    log-odds with a read pointed at the bearing sentences. None when the passages are a
    paragraph, or there is no reader or no odds."""
    if read is None or not candidates or not is_long(hits):
        return None
    whole = log_odds(answering)
    pointed = log_odds(read([c.text for c in candidates], question))
    if whole is None or pointed is None:
        return None
    return probability((whole + pointed) / 2, BEARING_LINE)


@dataclass(frozen=True)
class Settled:
    """The sentence that settles a verdict and the P(yes) of the read pointed at it (None when
    it was not read: no reader, or a backend without probabilities)."""

    sentence: Bearing
    p_yes: float | None


def settle(
    question: str, verdict: bool, candidates: list[Bearing], read: Reader | None
) -> Settled | None:
    """The first of the ``CHECKED`` best candidates whose own read agrees with ``verdict``;
    None when each one read says the opposite. Without a reader (or odds), the best one."""
    if not candidates:
        return None
    if read is None:
        return Settled(candidates[0], None)
    for c in candidates[:CHECKED]:
        logit = log_odds(read([c.text], question))
        if logit is None:
            return Settled(candidates[0], None)
        p = probability(logit, SENTENCE_LINE)
        if (p >= 0.5) == verdict:
            return Settled(c, p)
    return None


def build_reader(llm: BaseChatModel, datamark: bool = False) -> ReadPassages:
    """A :data:`ReadPassages` on ``llm``: the answering prompt over the same passages (their
    KV cache is reused: only the new question line is read), the question then pointing at
    the given sentences, one constrained token."""
    chain = answer_prompt(datamark) | llm.bind(
        prefill=PREFILL, stop=["\n"], grammar=YESNO_GRAMMAR, max_tokens=2
    )

    def read(passages: str, sentences: list[str], question: str) -> dict[str, float]:
        quoted = " ".join(f'"{as_data(s, datamark)}"' for s in sentences)
        which = "this sentence" if len(sentences) == 1 else "these sentences"
        pointed = f"{question}\n(Answer yes or no from {which} of the passages: {quoted})"
        # Streamed and drained (which releases the model) for the first chunk's metadata.
        chunks = list(chain.stream({"passages": passages, "question": pointed}))
        probs = chunks[0].response_metadata.get("first_token_probs", {}) if chunks else {}
        return yes_no_odds(probs)

    return read
