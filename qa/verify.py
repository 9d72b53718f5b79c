"""Is an answer supported, and should it be shown? Text support, the answer checker, and the
learned answerability decision.

Small local models name the wrong entity or invent an answer when the passages do not hold it.
Two checks stand between the model's reply and the user:

* **support** (``verify``): a retrieved passage must contain the answer's words and numbers;
* **answerability** (``Answerability``): a logistic model, fitted on SQuAD 2.0 articles by
  ``bench/fit_answerability.py``, reads the model's final hidden state at the answer's first
  token (answerability is linearly decodable there, Slobodkin et al., EMNLP 2023) together
  with cheap signals (P("none"), token log-probabilities, how much of the question the cited
  passage covers, whether the answer's type fits the question) and gives the probability that
  the shown answer is right. Below ``Settings.answer_threshold`` qa abstains.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

from langchain_core.language_models import BaseChatModel
from langchain_core.prompts import ChatPromptTemplate

from qa.answer import Citation, Signals
from qa.store import Hit
from qa.text import contains, escape_braces, normalize, strip_citations

# Compared after normalize(), so stored the same way ("n/a" becomes "n a").
_NONE = frozenset(
    normalize(s) for s in ("none", "n/a", "unknown", "not stated", "not mentioned", "no answer", "")
)
_STOPWORDS = frozenset(
    "a an the of in on at to for by with and or is was were are be been it its this that "
    "he she they his her their as from about years year old".split()
)
# Question words and fillers that say what is asked, not what about.
_ASKING = frozenset(
    "what which who whom whose when where why how many much did do does was were is are "
    "name called kind type".split()
)


def _tokens(text: str) -> list[str]:
    return normalize(text).split()


def _content(text: str) -> set[str]:
    return {t for t in _tokens(text) if t not in _STOPWORDS}


@dataclass(frozen=True)
class Parsed:
    """The model's reply: the answer line and, if it wrote one, its quote."""

    quote: str
    answer: str


def parse_reply(reply: str) -> Parsed:
    """Read ``Answer:``/``Quote:`` lines, tolerating a model that drifts from the format."""
    quote = re.search(r"quote:\s*(.*)", reply, re.IGNORECASE)
    answer = re.search(r"answer:\s*(.*)", reply, re.IGNORECASE)
    return Parsed(
        quote=(quote.group(1) if quote else "").strip().strip('"“”'),
        answer=(answer.group(1) if answer else "").strip(),
    )


def locate_quote(quote: str, hits: list[Hit]) -> int | None:
    """Index of the hit that contains ``quote`` (normalized; else 80 % of its words)."""
    q = normalize(quote)
    if len(q) < 3:
        return None
    for i, hit in enumerate(hits):
        if q in normalize(hit.chunk.text):
            return i
    # Small models paraphrase a word or two; accept a quote whose words mostly appear.
    q_tokens = q.split()
    best, best_i = 0.0, None
    for i, hit in enumerate(hits):
        words = set(_tokens(hit.chunk.text))
        share = sum(t in words for t in q_tokens) / len(q_tokens)
        if share > best:
            best, best_i = share, i
    return best_i if best >= 0.8 and len(q_tokens) >= 4 else None


def is_supported(answer: str, evidence: str) -> bool:
    """The answer's content words (and every number in it) occur in the evidence."""
    words = set(_tokens(evidence))
    content = [t for t in _tokens(answer) if t not in _STOPWORDS]
    if not content:
        return False
    numbers = [t for t in content if any(ch.isdigit() for ch in t)]
    if any(n not in words for n in numbers):
        return False
    return sum(t in words for t in content) / len(content) >= 0.5


def pick_evidence(question: str, quote: str, answer: str, hits: list[Hit]) -> int | None:
    """Index of the passage that supports ``answer``, or None if none does.

    Small models often give a right answer with the wrong quote, so a quote (if any) only
    breaks ties: the passage holding it wins if it supports the answer, else the supporting
    passage that holds the answer as written, then the one sharing most words with the
    question.
    """
    supporting = [i for i, h in enumerate(hits) if is_supported(answer, h.chunk.text)]
    if not supporting:
        return None
    quoted = locate_quote(quote, hits) if quote else None
    if quoted in supporting:
        return quoted
    asked = _content(question)

    def rank(i: int) -> tuple[bool, int, int]:
        # A passage holding the answer as written beats one holding its words apart.
        text = hits[i].chunk.text
        return contains(text, answer), len(asked & _content(text)), -i

    return max(supporting, key=rank)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def settling_sentence(answer: str, passage: str) -> str:
    """The passage's sentence that holds ``answer`` (as written, else most of its words): what
    the UI highlights as the evidence."""
    sentences = [x for x in _SENTENCE_END.split(" ".join(passage.split())) if x]
    if not sentences:
        return ""
    words = _content(answer)
    return max(sentences, key=lambda x: (contains(x, answer), len(words & _content(x))))


def to_citation(n: int, hit: Hit, quote: str = "") -> Citation:
    """A Citation for the ``n``-th passage."""
    c = hit.chunk
    return Citation(n, c.source, c.id, c.text, hit.score, c.start, c.end, quote, page=c.page)


@dataclass(frozen=True)
class Supported:
    """An answer a passage supports: its text, the passage's index among the hits, and the
    cited text shown to the user."""

    answer: str
    evidence: int
    text: str
    citations: list[Citation]


def verify(question: str, reply: str, hits: list[Hit]) -> Supported | None:
    """The cited answer, or None when the reply is unsupported by the retrieved chunks."""
    parsed = parse_reply(reply)
    answer = strip_citations(parsed.answer).strip()
    if normalize(answer) in _NONE:
        return None
    if not _content(answer) - _content(question):
        return None  # the answer only repeats the question's words: it says nothing new
    i = pick_evidence(question, parsed.quote, answer, hits)
    if i is None:
        return None
    quote = parsed.quote or settling_sentence(answer, hits[i].chunk.text)
    citation = to_citation(i + 1, hits[i], quote=quote)
    return Supported(answer, i, f"{answer} [{citation.n}]", [citation])


def none_probability(first_token_probs: dict[str, float]) -> float | None:
    """The model's probability that its answer starts with "none" (None if not reported)."""
    if not first_token_probs:
        return None
    return _share(first_token_probs, "none")


def _share(probs: dict[str, float], word: str) -> float:
    return sum(p for t, p in probs.items() if t.strip().lower() == word)


# --- learned answerability ---------------------------------------------------------------


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
    numeric = any(ch.isdigit() for ch in answer) or bool(_NUMBER_WORDS & set(_tokens(answer)))
    if "how" in q and any(w in q for w in ("many", "much", "long", "old", "far", "large")):
        return float(numeric)
    if q[:1] == ["when"] or "year" in q or "what year" in " ".join(q):
        return float(numeric or bool(_MONTHS & set(_tokens(answer))))
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
    asked = _content(question) - _ASKING
    covered = [len(asked & _content(h.chunk.text)) / max(len(asked), 1) for h in hits]
    answer_words = _content(answer)
    return {
        "p_none": p_none,
        "first_top_prob": top,
        "first_entropy": entropy,
        "logprob_mean": sum(lps) / len(lps),
        "logprob_min": min(lps),
        "answer_words": math.log1p(len(answer.split())),
        "answer_in_question": len(answer_words & _content(question)) / max(len(answer_words), 1),
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


# --- answer checker (optional second pass) -------------------------------------------------

CHECK_SYSTEM = """You check answers against a passage. Reply "yes" only if the passage states \
that the proposed answer answers exactly this question: about the same person, thing, event, \
time and place the question asks about. Otherwise reply "no"."""

# Invented examples: a supported answer, a right-looking answer to a different question, and
# an answer taken from the wrong part of the passage.
CHECK_EXAMPLES: list[tuple[str, str, str, str]] = [
    (
        "The bakery opened in 1998. Its founder, Marta Kovacs, bakes every morning, while her "
        "nephew Peter runs the shop.",
        "Who runs the bakery?",
        "Peter",
        "yes",
    ),
    (
        "The bakery opened in 1998. Its founder, Marta Kovacs, bakes every morning, while her "
        "nephew Peter runs the shop.",
        "Who founded the flower shop?",
        "Marta Kovacs",
        "no",
    ),
    (
        "The tour ended with a concert in Osaka on May 3. The orchestra had opened the tour in "
        "Tokyo.",
        "Where did the tour start?",
        "Osaka",
        "no",
    ),
]


def build_checker(llm: BaseChatModel) -> Callable[[str, str, str], float | None]:
    """``(question, answer, passage) -> P(yes)``: the model's belief that the passage answers
    exactly this question with this answer (None if the model reports no probabilities).

    A second prompt per answer (about as long as the first): off by default since the learned
    answerability decision replaced it (``Settings.support_threshold``)."""
    messages: list[tuple[str, str]] = [("system", CHECK_SYSTEM)]
    for passage, question, answer, verdict in CHECK_EXAMPLES:
        user = f"Passage: {passage}\nQuestion: {question}\nProposed answer: {answer}"
        messages += [("human", escape_braces(user)), ("ai", verdict)]
    messages.append(
        ("human", "Passage: {passage}\nQuestion: {question}\nProposed answer: {answer}")
    )
    check = ChatPromptTemplate.from_messages(messages) | llm.bind(max_tokens=1)

    def p_yes(question: str, answer: str, passage: str) -> float | None:
        passage = " ".join(passage.split())
        # Streamed (and drained, which releases the model) for the first chunk's metadata.
        chunks = list(check.stream({"question": question, "answer": answer, "passage": passage}))
        probs = chunks[0].response_metadata.get("first_token_probs") if chunks else None
        if not probs:
            return None
        yes, no = _share(probs, "yes"), _share(probs, "no")
        return yes / (yes + no) if yes + no > 0 else 0.0

    return p_yes
