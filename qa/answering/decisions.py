"""Answer or abstain, per answer shape: what a reply must pass before it is shown.

A short answer passes the model's P("none"), the passage check (:func:`qa.trust.verify.verify`),
the learned decision (:mod:`qa.trust.answerability`) and, if switched on, the answer checker, in
that order of cost. Open answers and lists keep only the sentences or items a passage backs. A
yes/no answer is the recalibrated verdict with the passage sentence that settles it, which must
agree with it (:mod:`qa.answering.yesno`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from qa.answer import UNCONFIRMED_TEXT, UNSETTLED_TEXT, Citation, Sentence, Shape, Signals
from qa.answering.prompts import PREFILL, answer_line
from qa.answering.shapes import INSTRUCTIONS, list_items, overview_topic, sentences
from qa.answering.yesno import DECISIVE, Reader, bearing, bearing_verdict, settle
from qa.passages import Hit
from qa.text import normalize, split_sentences
from qa.trust.answerability import YESNO_COVERAGE, Answerability, cheap_features, yes_probability
from qa.trust.verify import (
    Supported,
    ground,
    none_probability,
    pick_evidence,
    question_coverage,
    says_something,
    settling_sentence,
    to_citation,
    verify,
    yes_no_odds,
)


@dataclass(frozen=True)
class Thresholds:
    """When a supported answer is still withdrawn (see ``Settings``)."""

    abstain: float = 1.0  # the model's P("none") at which qa abstains
    support: float = 0.0  # the checker's P(yes) below which qa abstains; 0 skips the check
    answerability: Answerability | None = None  # the learned decision; None switches it off
    answer: float | None = None  # its P(right) below which qa abstains; None: the shipped one
    open_support: float = 0.0  # the checker's P(yes) below which an open answer is withdrawn
    samples: int = 0  # short answers sampled to check self-agreement; 0 skips the check
    agreement: float = 0.0  # the share of samples that must agree for an answer to stay asserted


@dataclass(frozen=True)
class Decision:
    supported: Supported | None
    shown: bool
    support: float | None = None
    answerability: float | None = None
    features: dict[str, float] = field(default_factory=dict)
    sentences: list[Sentence] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    decided_by: str = ""


@dataclass(frozen=True)
class Learned:
    """What the learned decision said of one supported answer."""

    shown: bool
    p_right: float | None
    features: dict[str, float]
    decided_by: str


def judge(
    question: str,
    answer: str,
    evidence: int,
    hits: list[Hit],
    signals: Signals,
    shape: Shape,
    thresholds: Thresholds,
) -> Learned:
    """The learned decision on a supported answer: the variant the backend's signals allow, its
    P(right) and whether that reaches the threshold. Shown as it is when the decision is off,
    was not fitted on this shape, or the backend reports nothing it can read."""
    features = cheap_features(question, answer, evidence, hits, signals, shape)
    model = thresholds.answerability
    if model is None:
        return Learned(True, None, features, "off")
    variant = model.variant_for(signals, shape)
    if variant is None:
        fitted = any(shape in v.shapes for v in model.variants)
        return Learned(True, None, features, "unavailable" if fitted else "")
    x = variant.probe.vector(features, signals)
    assert x is not None  # variant_for checked the signals
    p_right = variant.probe.probability(x)
    threshold = variant.threshold if thresholds.answer is None else thresholds.answer
    return Learned(p_right >= threshold, p_right, features, variant.name)


def decide_short(
    question: str,
    generated: str,
    hits: list[Hit],
    signals: Signals,
    thresholds: Thresholds,
    checker: Callable[[str, str, str], float | None] | None,
) -> Decision:
    """Answer or abstain: the model's P("none"), text support, the learned decision, and
    (if switched on) the answer checker, in that order of cost."""
    own_label = generated.lstrip().lower().startswith(PREFILL.lower())
    reply = generated if own_label else PREFILL + generated
    p_none = none_probability(signals.first_token_probs)
    if p_none is not None and p_none >= thresholds.abstain:
        return Decision(None, False)
    supported = verify(question, reply, hits)
    if supported is None:
        return Decision(None, False)
    learned = judge(
        question, supported.answer, supported.evidence, hits, signals, "short", thresholds
    )
    shown, support = learned.shown, None
    if shown and checker:
        support = checker(question, supported.answer, supported.citations[0].text)
        shown = support is None or support >= thresholds.support
    sentences = [Sentence(supported.answer, supported.citations)]
    return Decision(
        supported,
        shown,
        support,
        learned.p_right,
        learned.features,
        sentences,
        decided_by=learned.decided_by,
    )


def decide_shaped(
    question: str,
    shape: Shape,
    generated: str,
    hits: list[Hit],
    signals: Signals,
    checker: Callable[[str, str, str], float | None] | None,
    thresholds: Thresholds,
) -> Decision:
    """Open answers and lists: keep what a passage backs, drop the rest; abstain when nothing
    is left, or when the learned decision (where fitted on the shape) or the checker rejects
    what is."""
    reply = answer_line(generated)
    if shape == "list":
        kept, dropped = _keep_backed(list_items(reply), hits, _item_backing(question, hits))
    else:
        kept, dropped = _keep_backed(sentences(reply), hits, _sentence_backing(question, hits))
    if shape == "overview" and not overview_topic(question) and len(kept) < 2:
        kept += _lead(hits, 2 - len(kept), {s.text for s in kept})
    if not kept:
        return Decision(None, False, dropped=dropped)
    supported = to_supported(kept, shape)
    text = " ".join(s.text for s in kept)
    learned = judge(question, text, supported.evidence, hits, signals, shape, thresholds)
    support = None
    if learned.shown and checker and thresholds.open_support > 0:
        evidence = " ".join(dict.fromkeys(c.quote for s in kept for c in s.citations))
        support = checker(question, text, evidence)
    shown = learned.shown and (support is None or support >= thresholds.open_support)
    return Decision(
        supported,
        shown,
        support,
        learned.p_right,
        learned.features,
        kept,
        dropped,
        learned.decided_by,
    )


def _cite(n: int, hit: Hit, claim: str) -> Citation:
    return to_citation(n, hit, quote=settling_sentence(claim, hit.chunk.text))


def _keep_backed(
    claims: list[str], hits: list[Hit], backing: Callable[[str], tuple[int, ...] | None]
) -> tuple[list[Sentence], list[str]]:
    """Claims some passages back (``backing`` gives their indices), each citing them; and
    the dropped rest."""
    kept: list[Sentence] = []
    dropped: list[str] = []
    for claim in claims:
        found = backing(claim)
        if found:
            kept.append(Sentence(claim, [_cite(i + 1, hits[i], claim) for i in found]))
        else:
            dropped.append(claim)
    return kept, dropped


def _lead(hits: list[Hit], n: int, taken: set[str]) -> list[Sentence]:
    """The document's first ``n`` sentences (headings and captions left out), as written: what
    an overview falls back on when the model's own sentences do not hold up. The first passage
    is the document's beginning whenever an overview is answered from passages."""
    first = hits[0] if hits else None
    if first is None or first.chunk.n != 0:
        return []
    lead = [s for s in split_sentences(first.chunk.text) if len(s.split()) >= 6 and s not in taken]
    return [Sentence(s, [to_citation(1, first, quote=s)]) for s in lead[:n]]


def _sentence_backing(question: str, hits: list[Hit]) -> Callable[[str], tuple[int, ...] | None]:
    return lambda claim: (
        ground(claim, hits, question) if says_something(question, claim, 3) else None
    )


def _item_backing(question: str, hits: list[Hit]) -> Callable[[str], tuple[int, ...] | None]:
    def backing(item: str) -> tuple[int, ...] | None:
        i = pick_evidence(question, "", item, hits) if says_something(question, item) else None
        return None if i is None else (i,)

    return backing


def decide_yesno(
    question: str,
    generated: str,
    hits: list[Hit],
    signals: Signals,
    thresholds: Thresholds,
    read: Reader | None = None,
) -> Decision:
    """Yes or no, with the passage sentence that settles it (:mod:`qa.answering.yesno`).

    The verdict is the answering pass's (the learned verdict, or the model's odds, or without
    probabilities its word); over more than a paragraph, ``read`` re-reads it from the
    sentences that bear on the question. The sentence shown is the best bearing one whose own
    read agrees with the verdict. Abstains when no passage covers enough of the question, the
    model answers "none", or no bearing sentence agrees with the verdict; a verdict within
    ``DECISIVE`` of even odds is not shown (the reply is unconfirmed, quoting the sentence)."""
    model = thresholds.answerability
    needed = model.yesno_coverage if model else YESNO_COVERAGE
    covered = [question_coverage(question, h.chunk.text) for h in hits]
    odds = yes_no_odds(signals.first_token_probs)
    if max(covered, default=0.0) < needed or odds.get("p_none", 0.0) >= thresholds.abstain:
        return Decision(None, False, features=odds)
    p_yes = yes_probability(signals, model.verdict if model else None)
    if p_yes is None:  # a backend without probabilities: its own word
        word = normalize(answer_line(generated)).split()[:1]
        if word not in (["yes"], ["no"]):
            return Decision(None, False, features=odds)
        p_yes = float(word == ["yes"])
    candidates = bearing(question, hits) or bearing(question, hits, min_words=1)
    asked = question + INSTRUCTIONS["yesno"]
    features = odds | {"p_yes_answering": p_yes}
    reread = bearing_verdict(asked, candidates, hits, odds, read)
    if reread is not None:
        p_yes = reread
        features["p_yes_bearing"] = p_yes
    settled = settle(asked, p_yes >= 0.5, candidates, read)
    verdict = "Yes" if p_yes >= 0.5 else "No"
    if settled is None:  # no sentence, or each one read alone says the opposite
        if not candidates:
            return Decision(None, False, features=features | {"p_yes_verdict": p_yes})
        i, sentence = candidates[0].hit, candidates[0].text
        kept = [Sentence(f"{verdict}. {sentence}", [to_citation(i + 1, hits[i], quote=sentence)])]
        return Decision(
            to_supported(kept, "yesno"), False, features=features | {"p_yes_verdict": p_yes}
        )
    if settled.p_yes is not None:
        features["p_yes_sentence"] = settled.p_yes
    i, sentence = settled.sentence.hit, settled.sentence.text
    learned = judge(question, verdict, i, hits, signals, "yesno", thresholds)
    kept = [Sentence(f"{verdict}. {sentence}", [to_citation(i + 1, hits[i], quote=sentence)])]
    # A verdict near even odds is not shown: the reply quotes the sentence, unconfirmed.
    decisive = abs(p_yes - 0.5) >= DECISIVE
    return Decision(
        to_supported(kept, "yesno"),
        learned.shown and decisive,
        max(p_yes, 1 - p_yes),
        learned.p_right,
        learned.features | features | {"p_yes_verdict": p_yes},
        kept,
        decided_by=learned.decided_by,
    )


def to_supported(kept: list[Sentence], shape: Shape) -> Supported:
    """The shown text (each sentence with its ``[n]`` markers) and the distinct citations."""
    marked = [f"{s.text} " + "".join(f"[{c.n}]" for c in s.citations) for s in kept]
    text = "\n".join(f"- {m}" for m in marked) if shape == "list" else " ".join(marked)
    citations = list({c.n: c for s in reversed(kept) for c in s.citations}.values())[::-1]
    first = kept[0].citations[0]
    return Supported(kept[0].text, first.n - 1, text, sorted(citations, key=lambda c: c.n))


QUOTE_CHARS = 300
"""An unconfirmed reply quotes at most this much of its sentence."""


def unconfirmed_reply(supported: Supported, shape: Shape) -> str:
    """What a user reads when a candidate was found but the decision cannot stand behind it:
    that the documents do not confirm an answer, the candidate marked as unconfirmed, and the
    passage sentence it came from with its citation. A yes/no reply gives no verdict, only
    the sentence that bears on the question."""
    cited = supported.citations[0]
    quote = " ".join((cited.quote or settling_sentence(supported.answer, cited.text)).split())
    if len(quote) > QUOTE_CHARS:
        quote = quote[: QUOTE_CHARS - 1].rsplit(" ", 1)[0] + "…"
    source = f'"{quote}" [{cited.n}]'
    if shape == "yesno":
        return f"{UNSETTLED_TEXT} The sentence that bears on it: {source}"
    if shape == "short":
        return f"{UNCONFIRMED_TEXT} Unconfirmed: {supported.answer}, from {source}"
    return f"{UNCONFIRMED_TEXT} Unconfirmed: {supported.text}"
