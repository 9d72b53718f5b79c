"""The answering chain (LCEL): condense follow-up -> route -> retrieve -> prompt -> LLM -> decide.

The question is routed to an answer shape (:mod:`qa.answering.shapes`). Every shape uses the same
prompt
with a shape instruction after the question, so they share the KV-cached passages.

* **short**: the LLM's reply is prefilled with "Answer:" so its first generated token is the
  answer, whose probability of being "none", token log-probabilities and hidden state feed the
  learned answer-or-abstain decision (:mod:`qa.trust.answerability`). Generation stops at the end of
  the answer line.
* **open**, **overview**: a few sentences, each kept only if a passage backs it
  (:func:`qa.trust.verify.ground`), then the answer checker on what is left.
* **list**: items, each kept only if a passage holds it.
* **yesno**: the model answers "Yes" or "No" in one token; the verdict is read off that token's
  odds (recalibrated on real yes/no questions), and the passage sentence that mentions most of
  what is asked is shown as the reason.

Citations come from the passage that supports each sentence, not from markers the model writes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import Runnable, RunnableGenerator, RunnableLambda

from qa.answer import ABSTAIN_TEXT, Answer, Citation, Sentence, Shape, Signals, Timings
from qa.answering.prompts import (
    PREFILL,
    SHAPE_BINDS,
    SYSTEM,
    answer_prompt,
    build_condense,
    format_passages,
)
from qa.answering.shapes import INSTRUCTIONS, list_items, overview_topic, route, sentences
from qa.documents.store import Hit
from qa.text import normalize, split_sentences
from qa.trust.answerability import YESNO_COVERAGE, Answerability, cheap_features, yes_probability
from qa.trust.spotlight import neutral_hit, unmark
from qa.trust.verify import (
    Supported,
    build_checker,
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
from qa.trust.withhold import withhold


@dataclass(frozen=True)
class Token:
    """A piece of the answer as it is generated."""

    text: str


@dataclass(frozen=True)
class Thresholds:
    """When a supported answer is still withdrawn (see ``Settings``)."""

    abstain: float = 1.0  # the model's P("none") at which qa abstains
    support: float = 0.0  # the checker's P(yes) below which qa abstains; 0 skips the check
    answerability: Answerability | None = None  # the learned decision; None switches it off
    answer: float | None = None  # its P(right) below which qa abstains; None: the shipped one
    open_support: float = 0.0  # the checker's P(yes) below which an open answer is withdrawn


@dataclass(frozen=True)
class Guard:
    """The defences against instructions planted in documents (``Settings.guard``), each of
    which can be switched off to measure it: ``neutralize`` (flagged spans never reach the
    prompt, citations or verification), ``withhold`` (a reply carrying what a flagged span
    plants is withheld, with a one-line reason) and ``datamark`` (passage words joined by a
    marker the system prompt calls data; off by default, see docs/reliability.md)."""

    neutralize: bool = True
    withhold: bool = True
    datamark: bool = False


@dataclass(frozen=True)
class _Models:
    """The runnables one answer may use: a generator per shape and the second-pass prompts."""

    generate: dict[Shape, Runnable]
    checker: Callable[[str, str, str], float | None] | None
    guard: Guard


def build_chain(
    llm: BaseChatModel,
    retrieve: Callable[[str, Shape], list[Hit]],
    thresholds: Thresholds = Thresholds(),
    from_index: Callable[[str, Shape], list[Sentence] | None] | None = None,
    shapes: bool = True,
    guard: Guard | None = None,
) -> Runnable[dict, Token | Answer]:
    """The whole LCEL pipeline. Input ``{"question", "history"}`` (optionally ``"shape"`` and
    ``"hits"`` to skip routing and retrieval); streams ``Token``s, then yields the verified
    ``Answer``. ``retrieve(question, shape)`` gives the passages the LLM sees; ``from_index``
    answers some questions from the index itself, without the LLM (document summaries for
    overviews, the documents that mention a term), or returns None. Without ``shapes`` every
    question gets a short answer. ``guard`` says which defences against instructions planted
    in documents are on (all but datamarking by default)."""
    # The quote line the examples show is not generated: the decision needs only the answer.
    binds = {"prefill": PREFILL, "stop": ["\n"]}
    checked = thresholds.support > 0 or thresholds.open_support > 0
    guard = guard or Guard()
    prompt = answer_prompt(guard.datamark)
    models = _Models(
        generate={
            shape: prompt | llm.bind(**(binds | extra)) for shape, extra in SHAPE_BINDS.items()
        },
        checker=build_checker(llm) if checked else None,
        guard=guard,
    )

    def answer_events(inputs: Iterator[dict]) -> Iterator[Token | Answer]:
        for x in inputs:
            indexed = None
            if from_index and not x.get("given_hits") and x["shape"] in ("overview", "list"):
                indexed = from_index(x["standalone"], x["shape"])
            if indexed is None:
                yield from _answer(x, models, thresholds)
            else:
                yield from _indexed_answer(x, indexed)

    def add_hits(x: dict) -> dict:
        t0 = time.perf_counter()
        shape = x.get("shape") or (route(x["standalone"]) if shapes else "short")
        hits = x.get("hits") or retrieve(x["standalone"], shape)
        ms = (time.perf_counter() - t0) * 1e3
        return {**x, "shape": shape, "hits": hits, "given_hits": "hits" in x, "retrieve_ms": ms}

    def add_standalone(x: dict) -> dict:
        return {**x, "standalone": condense.invoke(x), "t0": x.get("t0", time.perf_counter())}

    condense = build_condense(llm)
    return (
        RunnableLambda(add_standalone) | RunnableLambda(add_hits) | RunnableGenerator(answer_events)
    )


def _indexed_answer(x: dict, summary: list[Sentence]) -> Iterator[Token | Answer]:
    """An answer from the index itself (summary sentences, documents): cited, renumbered."""
    numbers: dict[str, int] = {}
    kept = []
    for s in summary:
        cites = [
            replace(c, n=numbers.setdefault(c.chunk_id, len(numbers) + 1)) for c in s.citations
        ]
        kept.append(Sentence(s.text, cites))
    supported = _supported(kept, x["shape"]) if kept else None
    if supported:
        yield Token(supported.text)
    total_ms = (time.perf_counter() - x["t0"]) * 1000
    yield Answer(
        question=x["question"],
        text=supported.text if supported else ABSTAIN_TEXT,
        abstained=supported is None,
        citations=supported.citations if supported else [],
        retrieved=supported.citations if supported else [],
        timings=Timings(x["retrieve_ms"], total_ms, total_ms),
        standalone_question=x["standalone"],
        shape=x["shape"],
        sentences=kept,
    )


def _answer_line(generated: str) -> str:
    """The part of the answer line generated so far (the quote line is only evidence).

    Models that ignore the prefill write "Answer:" themselves; hold back until that is clear.
    """
    line = generated.split("\n", 1)[0].lstrip()
    if PREFILL.lower().startswith(line.lower()):
        return ""
    if line.lower().startswith(PREFILL.lower()):
        line = line[len(PREFILL) :]
    return line.strip()


def _answer(x: dict, models: _Models, thresholds: Thresholds) -> Iterator[Token | Answer]:
    guard = models.guard
    planted = any(h.chunk.flags for h in x["hits"])
    # Everything after retrieval (prompt, verification, citations) sees the neutral text.
    hits: list[Hit] = [neutral_hit(h) for h in x["hits"]] if guard.neutralize else x["hits"]
    shape: Shape = x["shape"]
    t0 = x["t0"]
    timings = Timings(retrieve_ms=x["retrieve_ms"])
    generated, streamed = "", 0
    probs: dict[str, float] = {}
    states: dict[str, list[float]] = {}
    logprobs: list[float] = []
    # An overview of one aspect ("Summarize how the war ended") is an open question.
    shape_used = "open" if shape == "overview" and overview_topic(x["standalone"]) else shape
    question = x["standalone"] + INSTRUCTIONS[shape_used]
    for chunk in models.generate[shape_used].stream(
        {"passages": format_passages(hits, guard.datamark), "question": question}
    ):
        meta = chunk.response_metadata
        probs = probs or meta.get("first_token_probs", {})
        logprobs = meta.get("token_logprobs", logprobs)
        for position, key in (("first", "hidden_states"), ("end", "hidden_states_end")):
            states |= {f"{layer}@{position}": v for layer, v in meta.get(key, {}).items()}
        for key, value in meta.get("usage", {}).items():  # reported by the local model
            setattr(timings, key, value)
        generated += str(chunk.content)
        visible = _answer_line(generated)
        # Over flagged passages nothing is streamed: the reply is checked before it is shown.
        if len(visible) > streamed and not (planted and guard.withhold):
            if not timings.first_token_ms:
                timings.first_token_ms = (time.perf_counter() - t0) * 1000
            yield Token(visible[streamed:])
            streamed = len(visible)
    if guard.datamark:
        generated = unmark(generated)
    signals = Signals(probs, logprobs, states)
    if shape == "short":
        decision = _decide(x["standalone"], generated, hits, signals, thresholds, models.checker)
    elif shape == "yesno":
        decision = _decide_yesno(x["standalone"], generated, hits, signals, thresholds)
    else:
        decision = _decide_shaped(
            x["standalone"], shape, generated, hits, signals, models, thresholds
        )
    timings.total_ms = (time.perf_counter() - t0) * 1000
    if not timings.first_token_ms:
        timings.first_token_ms = timings.total_ms
    shown = decision.supported if decision.shown else None
    held = None
    if planted and guard.withhold:
        # The raw reply too: one the checks already refused still says why it was refused.
        reply = shown.text if shown else _answer_line(generated)
        if reply:
            held = withhold(x["question"], reply, [h.chunk for h in x["hits"]], system=SYSTEM)
            shown = None if held else shown
    p_none = none_probability(probs)
    yield Answer(
        question=x["question"],
        text=held.reason if held else shown.text if shown else ABSTAIN_TEXT,
        abstained=shown is None,
        citations=shown.citations if shown else [],
        retrieved=sorted(
            (to_citation(i, h) for i, h in enumerate(hits, 1)), key=lambda c: -c.score
        ),
        timings=timings,
        standalone_question=x["standalone"],
        confidence=None if p_none is None else 1.0 - p_none,
        support=decision.support,
        answerability=decision.answerability,
        decided_by=decision.decided_by,
        withheld=decision.supported.answer if decision.supported and not decision.shown else "",
        planted=held.kind if held else "",
        features=decision.features,
        signals=signals,
        shape=shape,
        sentences=decision.sentences if shown else [],
        dropped=decision.dropped,
    )


@dataclass(frozen=True)
class _Decision:
    supported: Supported | None
    shown: bool
    support: float | None = None
    answerability: float | None = None
    features: dict[str, float] = field(default_factory=dict)
    sentences: list[Sentence] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    decided_by: str = ""


@dataclass(frozen=True)
class _Learned:
    """What the learned decision said of one supported answer."""

    shown: bool
    p_right: float | None
    features: dict[str, float]
    decided_by: str


def _learned(
    question: str,
    answer: str,
    evidence: int,
    hits: list[Hit],
    signals: Signals,
    shape: Shape,
    thresholds: Thresholds,
) -> _Learned:
    """The learned decision on a supported answer: the variant the backend's signals allow, its
    P(right) and whether that reaches the threshold. Shown as it is when the decision is off,
    was not fitted on this shape, or the backend reports nothing it can read."""
    features = cheap_features(question, answer, evidence, hits, signals, shape)
    model = thresholds.answerability
    if model is None:
        return _Learned(True, None, features, "off")
    variant = model.variant_for(signals, shape)
    if variant is None:
        fitted = any(shape in v.shapes for v in model.variants)
        return _Learned(True, None, features, "unavailable" if fitted else "")
    x = variant.probe.vector(features, signals)
    assert x is not None  # variant_for checked the signals
    p_right = variant.probe.probability(x)
    threshold = variant.threshold if thresholds.answer is None else thresholds.answer
    return _Learned(p_right >= threshold, p_right, features, variant.name)


def _decide(
    question: str,
    generated: str,
    hits: list[Hit],
    signals: Signals,
    thresholds: Thresholds,
    checker: Callable[[str, str, str], float | None] | None,
) -> _Decision:
    """Answer or abstain: the model's P("none"), text support, the learned decision, and
    (if switched on) the answer checker, in that order of cost."""
    own_label = generated.lstrip().lower().startswith(PREFILL.lower())
    reply = generated if own_label else PREFILL + generated
    p_none = none_probability(signals.first_token_probs)
    if p_none is not None and p_none >= thresholds.abstain:
        return _Decision(None, False)
    supported = verify(question, reply, hits)
    if supported is None:
        return _Decision(None, False)
    learned = _learned(
        question, supported.answer, supported.evidence, hits, signals, "short", thresholds
    )
    shown, support = learned.shown, None
    if shown and checker:
        support = checker(question, supported.answer, supported.citations[0].text)
        shown = support is None or support >= thresholds.support
    sentences = [Sentence(supported.answer, supported.citations)]
    return _Decision(
        supported,
        shown,
        support,
        learned.p_right,
        learned.features,
        sentences,
        decided_by=learned.decided_by,
    )


def _decide_shaped(
    question: str,
    shape: Shape,
    generated: str,
    hits: list[Hit],
    signals: Signals,
    models: _Models,
    thresholds: Thresholds,
) -> _Decision:
    """Open answers and lists: keep what a passage backs, drop the rest; abstain when nothing
    is left, or when the learned decision (where fitted on the shape) or the checker rejects
    what is."""
    reply = _answer_line(generated)
    if shape == "list":
        kept, dropped = _keep_backed(list_items(reply), hits, _item_backing(question, hits))
    else:
        kept, dropped = _keep_backed(sentences(reply), hits, _sentence_backing(question, hits))
    if shape == "overview" and not overview_topic(question) and len(kept) < 2:
        kept += _lead(hits, 2 - len(kept), {s.text for s in kept})
    if not kept:
        return _Decision(None, False, dropped=dropped)
    supported = _supported(kept, shape)
    text = " ".join(s.text for s in kept)
    learned = _learned(question, text, supported.evidence, hits, signals, shape, thresholds)
    support = None
    if learned.shown and models.checker and thresholds.open_support > 0:
        evidence = " ".join(dict.fromkeys(c.quote for s in kept for c in s.citations))
        support = models.checker(question, text, evidence)
    shown = learned.shown and (support is None or support >= thresholds.open_support)
    return _Decision(
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


def _decide_yesno(
    question: str, generated: str, hits: list[Hit], signals: Signals, thresholds: Thresholds
) -> _Decision:
    """Yes or no from the answering pass itself (the learned verdict, or the model's odds),
    with the passage sentence that mentions most of what the question asks about as the
    reason. A question no passage covers enough of is not settled by the documents, nor one
    the model answers "none"."""
    model = thresholds.answerability
    needed = model.yesno_coverage if model else YESNO_COVERAGE
    covered = [question_coverage(question, h.chunk.text) for h in hits]
    odds = yes_no_odds(signals.first_token_probs)
    if max(covered, default=0.0) < needed or odds.get("p_none", 0.0) >= thresholds.abstain:
        return _Decision(None, False, features=odds)
    p_yes = yes_probability(signals, model.verdict if model else None)
    if p_yes is None:  # a backend without probabilities: its own word
        word = normalize(_answer_line(generated)).split()[:1]
        if word not in (["yes"], ["no"]):
            return _Decision(None, False, features=odds)
        p_yes = float(word == ["yes"])
    candidates = [(i, s) for i, h in enumerate(hits) for s in split_sentences(h.chunk.text)]
    i, settling = max(candidates, key=lambda c: (question_coverage(question, c[1]), covered[c[0]]))
    verdict = "Yes" if p_yes >= 0.5 else "No"
    learned = _learned(question, verdict, i, hits, signals, "yesno", thresholds)
    kept = [Sentence(f"{verdict}. {settling}", [to_citation(i + 1, hits[i], quote=settling)])]
    return _Decision(
        _supported(kept, "yesno"),
        learned.shown,
        max(p_yes, 1 - p_yes),
        learned.p_right,
        learned.features | odds | {"p_yes_verdict": p_yes},
        kept,
        decided_by=learned.decided_by,
    )


def _supported(kept: list[Sentence], shape: Shape) -> Supported:
    """The shown text (each sentence with its ``[n]`` markers) and the distinct citations."""
    marked = [f"{s.text} " + "".join(f"[{c.n}]" for c in s.citations) for s in kept]
    text = "\n".join(f"- {m}" for m in marked) if shape == "list" else " ".join(marked)
    citations = list({c.n: c for s in reversed(kept) for c in s.citations}.values())[::-1]
    first = kept[0].citations[0]
    return Supported(kept[0].text, first.n - 1, text, sorted(citations, key=lambda c: c.n))
