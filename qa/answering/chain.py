"""The answering chain (LCEL): condense follow-up -> route -> retrieve -> prompt -> LLM -> decide.

The question is routed to an answer shape (:mod:`qa.answering.shapes`). Every shape uses the
same prompt with a shape instruction after the question, so they share the KV-cached passages.
What each shape must pass before it is shown is in :mod:`qa.answering.decisions`.

* **short**: the LLM's reply is prefilled with "Answer:" so its first generated token is the
  answer, whose probability of being "none", token log-probabilities and hidden state feed the
  learned answer-or-abstain decision (:mod:`qa.trust.answerability`). Generation stops at the
  end of the answer line.
* **open**, **overview**: a few sentences, each kept only if a passage backs it
  (:func:`qa.trust.verify.ground`), then the answer checker on what is left.
* **list**: items, each kept only if a passage holds it.
* **yesno**: the model answers "Yes" or "No" in one token; the verdict is read off that token's
  odds (recalibrated on real yes/no questions), over a long text re-read from the sentences
  that bear on the question, and shown with the one that settles it, which must agree with it
  (:mod:`qa.answering.yesno`).

Citations come from the passage that supports each sentence, not from markers the model writes.
With ``Settings.reading="progressive"`` a short answer over retrieved passages is read from the
best passage first, and from all of them only when the decision does not stand behind that
answer (:mod:`qa.answering.progressive`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, replace
from functools import partial

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import Runnable, RunnableGenerator, RunnableLambda

from qa.answer import ABSTAIN_TEXT, Answer, Sentence, Shape, Signals, Timings
from qa.answering.decisions import (
    Decision,
    Thresholds,
    decide_shaped,
    decide_short,
    decide_yesno,
    to_supported,
    unconfirmed_reply,
)
from qa.answering.progressive import narrow_hits
from qa.answering.prompts import (
    PREFILL,
    SAMPLING,
    SHAPE_BINDS,
    SYSTEM,
    answer_line,
    answer_prompt,
    build_condense,
    format_passages,
)
from qa.answering.shapes import INSTRUCTIONS, overview_topic, route
from qa.answering.yesno import Reader, build_reader
from qa.passages import Hit
from qa.text import normalize, strip_citations
from qa.trust.agreement import agreement
from qa.trust.spotlight import neutral_hit, unmark
from qa.trust.verify import (
    NONE_WORDS,
    build_checker,
    none_probability,
    to_citation,
)
from qa.trust.withhold import withhold


@dataclass(frozen=True)
class Token:
    """A piece of the answer as it is generated."""

    text: str


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
    read: Reader | None = None
    forced: Runnable | None = None
    """The short answer's generator with "none" banned (backends that can ban tokens)."""
    sampled: Runnable | None = None
    """The short answer's generator, sampling (``Thresholds.samples`` > 0)."""
    narrow: int = 0
    """Passages a short answer is read from first (:mod:`qa.answering.progressive`); 0: all
    at once."""


def build_chain(
    llm: BaseChatModel,
    retrieve: Callable[[str, Shape], list[Hit]],
    thresholds: Thresholds = Thresholds(),
    from_index: Callable[[str, Shape], list[Sentence] | None] | None = None,
    shapes: bool = True,
    guard: Guard | None = None,
    yesno_reading: bool = False,
    narrow: int = 0,
) -> Runnable[dict, Token | Answer]:
    """The whole LCEL pipeline. Input ``{"question", "history"}`` (optionally ``"shape"`` and
    ``"hits"`` to skip routing and retrieval); streams ``Token``s, then yields the verified
    ``Answer``. ``retrieve(question, shape)`` gives the passages the LLM sees; ``from_index``
    answers some questions from the index itself, without the LLM (document summaries for
    overviews, the documents that mention a term), or returns None. Without ``shapes`` every
    question gets a short answer. ``guard`` says which defences against instructions planted
    in documents are on (all but datamarking by default). With ``yesno_reading`` a yes/no
    verdict over more than a paragraph also reads the sentences that bear on the question and
    is shown only with a sentence the model's own read agrees with (:mod:`qa.answering.yesno`);
    without it, the answering pass decides alone. With ``narrow``, a short answer over
    retrieved passages is read from the best ``narrow`` first, and from all of them only when
    the decision does not stand behind that answer (:mod:`qa.answering.progressive`)."""
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
        read=build_reader(llm, guard.datamark) if yesno_reading else None,
        forced=prompt | llm.bind(**(binds | SHAPE_BINDS["short"] | {"ban": ["none"]}))
        if getattr(llm, "bans_tokens", False)
        else None,
        sampled=prompt | llm.bind(**(binds | SHAPE_BINDS["short"] | SAMPLING))
        if thresholds.samples
        else None,
        narrow=narrow,
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
    supported = to_supported(kept, x["shape"]) if kept else None
    if supported:
        yield Token(supported.text)
    total_ms = (time.perf_counter() - x["t0"]) * 1000
    yield Answer(
        question=x["question"],
        text=supported.text if supported else ABSTAIN_TEXT,
        abstained=supported is None,
        status="answered" if supported else "not_found",
        citations=supported.citations if supported else [],
        retrieved=supported.citations if supported else [],
        timings=Timings(x["retrieve_ms"], total_ms, total_ms),
        standalone_question=x["standalone"],
        shape=x["shape"],
        sentences=kept,
    )


def _answer(x: dict, models: _Models, thresholds: Thresholds) -> Iterator[Token | Answer]:
    guard = models.guard
    planted = any(h.chunk.flags for h in x["hits"])
    # Everything after retrieval (prompt, verification, citations) sees the neutral text.
    hits: list[Hit] = [neutral_hit(h) for h in x["hits"]] if guard.neutralize else x["hits"]
    shape: Shape = x["shape"]
    timings = Timings(retrieve_ms=x["retrieve_ms"])
    # An overview of one aspect ("Summarize how the war ended") is an open question.
    shape_used = "open" if shape == "overview" and overview_topic(x["standalone"]) else shape
    question = x["standalone"] + INSTRUCTIONS[shape_used]
    generate = models.generate[shape_used]
    # Over flagged passages nothing is streamed (the reply is checked before it is shown), and
    # they are read as before: all at once.
    quiet = planted and guard.withhold
    narrow = [] if x["given_hits"] or planted else narrow_hits(hits, shape, models.narrow)
    if narrow:
        narrow_t0 = time.perf_counter()
        read = yield from _read(
            x, narrow, question, generate, timings, stream=False, datamark=guard.datamark
        )
        decision = _decide(x, shape, read, models, thresholds)
        timings.narrow_ms = (time.perf_counter() - narrow_t0) * 1000
        timings.narrow_prompt_tokens = timings.prompt_tokens
        timings.narrow_prompt_eval_tokens = timings.prompt_eval_tokens
        timings.read = "narrow" if decision.shown else "wide-after-narrow"
    if timings.read == "narrow":
        timings.first_token_ms = (time.perf_counter() - x["t0"]) * 1000
        yield Token(answer_line(read.generated))
    else:
        read = yield from _read(
            x, hits, question, generate, timings, stream=not quiet, datamark=guard.datamark
        )
        decide_t0 = time.perf_counter()
        decision = _decide(x, shape, read, models, thresholds)
        timings.decide_ms = (time.perf_counter() - decide_t0) * 1000
    timings.total_ms = (time.perf_counter() - x["t0"]) * 1000
    timings.first_token_ms = timings.first_token_ms or timings.total_ms
    yield _reply(x, hits, read, decision, timings, quiet)


@dataclass(frozen=True)
class _Pass:
    """One answering pass: the passages the model read, its prompt and what it said."""

    hits: list[Hit]
    passages: str
    prompt: dict
    generated: str
    signals: Signals


def _read(
    x: dict,
    hits: list[Hit],
    question: str,
    generate: Runnable,
    timings: Timings,
    *,
    stream: bool,
    datamark: bool,
) -> Generator[Token, None, _Pass]:
    """Generate the reply to ``question`` over ``hits`` (returned as a :class:`_Pass`), adding
    the pass's usage to ``timings``; with ``stream``, yield the answer line as it comes."""
    passages = format_passages(hits, datamark, x["standalone"])
    prompt = {"passages": passages, "question": question}
    generated, streamed = "", 0
    reading = _Reading()
    for chunk in generate.stream(prompt):
        meta = chunk.response_metadata
        reading.add(meta)
        for key, value in meta.get("usage", {}).items():  # reported by the local model
            setattr(timings, key, getattr(timings, key) + value)
        generated += str(chunk.content)
        visible = answer_line(generated)
        if stream and len(visible) > streamed:
            if not timings.first_token_ms:
                timings.first_token_ms = (time.perf_counter() - x["t0"]) * 1000
            yield Token(visible[streamed:])
            streamed = len(visible)
    generated = unmark(generated) if datamark else generated
    return _Pass(hits, passages, prompt, generated, reading.signals())


def _decide(
    x: dict, shape: Shape, read: _Pass, models: _Models, thresholds: Thresholds
) -> Decision:
    """What the checks of ``shape`` make of one pass's reply."""
    question, generated, hits, signals = x["standalone"], read.generated, read.hits, read.signals
    if shape == "yesno":
        reader = partial(models.read, read.passages) if models.read else None
        return decide_yesno(question, generated, hits, signals, thresholds, reader)
    if shape != "short":
        return decide_shaped(question, shape, generated, hits, signals, models.checker, thresholds)
    decision = decide_short(question, generated, hits, signals, thresholds, models.checker)
    if models.forced is not None and torn(generated, signals.first_token_probs, thresholds.abstain):
        # The model said "none" but put most of its odds elsewhere: its best candidate that
        # is not "none", from the same prompt (cached: only decoding is paid).
        forced = _Reading()
        text = "".join(str(c.content) for c in _tapped(models.forced.stream(read.prompt), forced))
        decision = decide_short(question, text, hits, forced.signals(), thresholds, models.checker)
        decision.features["forced"] = 1.0
    if models.sampled is not None and decision.supported:
        decision = self_checked(decision, models.sampled, read.prompt, thresholds)
    return decision


def _reply(
    x: dict, hits: list[Hit], read: _Pass, decision: Decision, timings: Timings, quiet: bool
) -> Answer:
    """The answer a decision makes of a pass: asserted, unconfirmed or not found."""
    shown = decision.supported if decision.shown else None
    held = None
    if quiet:
        # The raw reply too: one the checks already refused still says why it was refused.
        reply = shown.text if shown else answer_line(read.generated)
        if reply:
            held = withhold(x["question"], reply, [h.chunk for h in x["hits"]], system=SYSTEM)
            shown = None if held else shown
    # A candidate the decision cannot stand behind is shown as unconfirmed, never asserted.
    candidate = decision.supported if not shown and not held else None
    if held:
        text, status = held.reason, "unconfirmed"
    elif shown:
        text, status = shown.text, "answered"
    elif candidate:
        text, status = unconfirmed_reply(candidate, x["shape"]), "unconfirmed"
    else:
        text, status = ABSTAIN_TEXT, "not_found"
    cited = shown or candidate
    p_none = none_probability(read.signals.first_token_probs)
    return Answer(
        question=x["question"],
        text=text,
        abstained=shown is None,
        citations=cited.citations if cited else [],
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
        signals=read.signals,
        shape=x["shape"],
        sentences=decision.sentences if shown else [],
        dropped=decision.dropped,
        status=status,
    )


def self_checked(
    decision: Decision, sampled: Runnable, prompt: dict, thresholds: Thresholds
) -> Decision:
    """``decision`` with the share of sampled answers that agree with its candidate
    (``features["agreement"]``); an asserted answer too few agree with is only unconfirmed.
    The samples continue the prompt just read, so only their few tokens are decoded."""
    assert decision.supported is not None
    replies = sampled.batch([prompt] * thresholds.samples)
    samples = [answer_line(str(r.content)) for r in replies]
    share = agreement(decision.supported.answer, samples)
    features = decision.features | {"agreement": share}
    if decision.shown and share < thresholds.agreement:
        return replace(decision, shown=False, features=features, decided_by="agreement")
    return replace(decision, features=features)


class _Reading:
    """The signals an answering pass reports in its chunks' metadata (:class:`Signals`)."""

    def __init__(self) -> None:
        self.probs: dict[str, float] = {}
        self.logprobs: list[float] = []
        self.states: dict[str, list[float]] = {}

    def add(self, meta: dict) -> None:
        self.probs = self.probs or meta.get("first_token_probs", {})
        self.logprobs = meta.get("token_logprobs", self.logprobs)
        for position, key in (("first", "hidden_states"), ("end", "hidden_states_end")):
            self.states |= {f"{layer}@{position}": v for layer, v in meta.get(key, {}).items()}

    def signals(self) -> Signals:
        return Signals(self.probs, self.logprobs, self.states)


def _tapped(chunks: Iterator, reading: _Reading) -> Iterator:
    for chunk in chunks:
        reading.add(chunk.response_metadata)
        yield chunk


def torn(generated: str, first_token_probs: dict[str, float], abstain: float) -> bool:
    """Whether the model replied "none" while putting most of its first-token odds on other
    answers: below ``abstain`` (``Settings.abstain_threshold``, the line at which qa takes the
    model's "none" for an answer) it did not mean it."""
    p_none = none_probability(first_token_probs)
    said = normalize(strip_citations(answer_line(generated)))
    return said in NONE_WORDS and p_none is not None and p_none < abstain


class AnswerStream:
    """Iterate to get the answer's text as it is generated; ``.answer`` holds the verified
    result once the iteration is over (its text may differ: an unsupported answer becomes an
    abstention)."""

    def __init__(self, events: Iterator[Token | Answer]) -> None:
        self._events = events
        self.answer: Answer | None = None

    def __iter__(self) -> Iterator[str]:
        for event in self._events:
            if isinstance(event, Answer):
                self.answer = event
            else:
                yield event.text

    def close(self) -> None:
        """Stop generating: the model frees the answer's place at its next step."""
        close = getattr(self._events, "close", None)
        if close is not None:
            close()
