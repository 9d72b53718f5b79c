"""Plain result types returned by the public API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Shape = Literal["short", "yesno", "list", "open", "overview"]
"""What kind of answer a question calls for: a few words (``short``), ``yesno`` ("Yes"/"No"
and the reason), a ``list`` of cited items, ``open`` (1-5 sentences, each cited) or an
``overview`` of the documents (from their summaries)."""

Read = Literal["wide", "narrow", "wide-after-narrow"]
"""Which passages a short answer was read from (progressive reading, ``Settings.reading``):
``wide`` (every retrieved passage at once), ``narrow`` (the best alone, and the decision stood
behind that answer) or ``wide-after-narrow`` (every passage, after the best alone did not
settle it)."""

Status = Literal["answered", "unconfirmed", "not_found"]
"""What a reply is: ``answered`` (the decision stands behind it), ``unconfirmed`` (a candidate
was found in a passage but the decision cannot stand behind it: shown marked as such, with the
sentence it came from, never asserted) or ``not_found`` (nothing relevant, no candidate)."""

ABSTAIN_TEXT = "I don't know: the documents don't say."
"""The one sentence qa answers with when nothing in the documents holds an answer."""
UNCONFIRMED_TEXT = "The documents don't confirm an answer."
"""How an unconfirmed reply begins; the candidate and its sentence follow."""
UNSETTLED_TEXT = "The documents don't settle yes or no."
"""How an unconfirmed yes/no reply begins; the sentence that bears on it follows."""


@dataclass(frozen=True)
class Citation:
    """A chunk the answer relies on; ``n`` matches the ``[n]`` marker in the answer text."""

    n: int
    source: str
    chunk_id: str
    text: str
    score: float
    start: int = 0
    end: int = 0
    quote: str = ""
    page: int = 0  # 1-based PDF page; 0 for formats without pages

    @property
    def location(self) -> str:
        """The source as people cite it: ``report.pdf, p. 3`` or ``notes.md``."""
        return f"{self.source}, p. {self.page}" if self.page else self.source


@dataclass(frozen=True)
class Sentence:
    """One shown sentence (or list item) of an answer and the passages that back it.

    ``citations`` are the supporting passages, each with ``quote`` set to the passage's
    sentence that backs *this* sentence (what the UI highlights); their ``n`` match
    ``Answer.citations``."""

    text: str
    citations: list[Citation] = field(default_factory=list)


@dataclass
class Timings:
    """Where the time of one answer went, in milliseconds."""

    retrieve_ms: float = 0.0
    first_token_ms: float = 0.0
    total_ms: float = 0.0
    prompt_tokens: int = 0
    """LLM prompt length; of those, ``prompt_eval_tokens`` were computed (the rest cached).
    These and the generation counters add up the answering passes: the narrow and the wide
    one when progressive reading widened (``read``)."""
    prompt_eval_tokens: int = 0
    prompt_eval_ms: float = 0.0
    generated_tokens: int = 0
    generation_ms: float = 0.0
    decide_ms: float = 0.0
    """After the answering pass: the checks and any extra pass (a forced candidate, sampled
    answers, a yes/no re-read)."""
    read: Read = "wide"
    """Which passages the answer was read from."""
    narrow_ms: float = 0.0
    """The narrow read and its decision, when progressive reading made one (a part of
    ``first_token_ms`` and ``total_ms``)."""
    narrow_prompt_tokens: int = 0
    """The narrow read's prompt length and what of it was computed (counted in
    ``prompt_tokens`` and ``prompt_eval_tokens`` too)."""
    narrow_prompt_eval_tokens: int = 0


@dataclass(frozen=True)
class Signals:
    """What the answering pass reports besides its text: the model's first-token
    distribution, each answer token's log-probability, and hidden states, keyed
    ``"<layer>@<position>"``: layer ``final`` or ``l14``, ``l21``
    (``qa.llm.llamacpp.TAPPED_LAYERS``), position ``first`` (predicting the first answer token) or
    ``end`` (the answer's last token). Empty for backends that report none."""

    first_token_probs: dict[str, float] = field(default_factory=dict)
    token_logprobs: list[float] = field(default_factory=list)
    states: dict[str, list[float]] = field(default_factory=dict, repr=False)


@dataclass
class Answer:
    """An answer with its evidence.

    ``text`` is what a user reads (short answer plus ``[n]`` markers, or ``ABSTAIN_TEXT``);
    ``citations`` are the supporting chunks; ``retrieved`` every chunk retrieved for the LLM,
    best first (for evaluation and debugging; a narrow read, ``Timings.read``, was shown only
    the first).
    """

    question: str
    text: str
    abstained: bool
    """True unless the reply is answered (``status``): nothing is asserted."""
    citations: list[Citation] = field(default_factory=list)
    retrieved: list[Citation] = field(default_factory=list)
    timings: Timings = field(default_factory=Timings)
    standalone_question: str = ""
    confidence: float | None = None
    """1 - the model's probability of replying "none" (no answer); None if unknown."""
    support: float | None = None
    """The answer checker's probability that the cited passage answers exactly this question
    with this answer; None if the check did not run (it is off by default)."""
    answerability: float | None = None
    """The learned decision's probability that the shown answer is right (``qa.trust.verify``);
    None if it did not run (no supported answer, switched off, or a backend without
    probabilities)."""
    decided_by: str = ""
    """Which learned decision judged the answer: ``hidden-state`` (local model),
    ``log-probabilities`` (a served model), ``unavailable`` (the backend reports no
    probabilities: the answer was shown unchecked by it), ``off`` (switched off), or empty
    (no supported answer, or a shape it does not judge)."""
    withheld: str = ""
    """A supported answer the learned decision (or the checker) withdrew; empty if none. Not
    shown to users; kept so evaluations can draw the whole risk/coverage curve."""
    planted: str = ""
    """Non-empty when the reply was withheld because it passes on what an instruction planted
    in a document wanted (``code``, ``link``, ``email``, ``phone``, ``instruction``,
    ``prompt-leak``; :mod:`qa.trust.withhold`); ``text`` then says why in one line."""
    features: dict[str, float] = field(default_factory=dict)
    """The cheap inputs of that decision (for reports and for fitting it)."""
    signals: Signals | None = field(default=None, repr=False)
    """Raw model signals, hidden state included (for fitting the decision; not shown)."""
    shape: Shape = "short"
    """The answer shape the question was routed to."""
    sentences: list[Sentence] = field(default_factory=list)
    """The shown answer sentence by sentence, each with its own citations (one sentence for a
    short answer; empty when qa abstained). ``text`` is these sentences joined, each followed
    by its ``[n]`` markers."""
    dropped: list[str] = field(default_factory=list)
    """Sentences the model wrote that no passage supports: not shown, kept for evaluation."""
    status: Status = "answered"
    """``answered``, ``unconfirmed`` (``withheld`` holds the candidate, ``citations`` the
    passage it came from, each with its sentence in ``quote``) or ``not_found``."""


@dataclass(frozen=True)
class IndexReport:
    """What one ``index()`` run changed."""

    files: int
    added: int
    removed: int
    unchanged: int
    seconds: float
    skipped: list[str] = field(default_factory=list)
