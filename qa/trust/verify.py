"""Is an answer supported by the passages? Text support for short answers, sentence by sentence
for open answers and lists, the first-token odds, and the optional answer checker.

Small local models name the wrong entity or invent an answer when the passages do not hold it.
Two checks stand between the model's reply and the user:

* **support** (``verify``): a retrieved passage must contain the answer's words and numbers;
* **answerability** (:mod:`qa.trust.answerability`): a learned decision on whether a supported short
  answer is right.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from langchain_core.language_models import BaseChatModel
from langchain_core.prompts import ChatPromptTemplate

from qa.answer import Citation
from qa.passages import Hit
from qa.text import contains, escape_braces, normalize, split_sentences, strip_citations

NONE_WORDS = frozenset(
    normalize(s) for s in ("none", "n/a", "unknown", "not stated", "not mentioned", "no answer", "")
)
"""Replies that say there is no answer, ``normalize``d ("n/a" is stored as "n a")."""
_STOPWORDS = frozenset(
    "a an the of in on at to for by with and or is was were are be been it its this that "
    "he she they his her their as from about years year old".split()
)
# Question words and fillers that say what is asked, not what about.
ASKING = frozenset(
    "what which who whom whose when where why how many much did do does was were is are "
    "name called kind type".split()
)


def tokens(text: str) -> list[str]:
    """``text`` normalized (``qa.text.normalize``) and split into words."""
    return normalize(text).split()


def content_words(text: str) -> set[str]:
    """The words of ``text`` that carry meaning (normalized, stopwords left out)."""
    return {t for t in tokens(text) if t not in _STOPWORDS}


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
        words = set(tokens(hit.chunk.text))
        share = sum(t in words for t in q_tokens) / len(q_tokens)
        if share > best:
            best, best_i = share, i
    return best_i if best >= 0.8 and len(q_tokens) >= 4 else None


def is_supported(answer: str, evidence: str) -> bool:
    """The answer's content words (and every number in it) occur in the evidence."""
    words = set(tokens(evidence))
    content = [t for t in tokens(answer) if t not in _STOPWORDS]
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
    asked = content_words(question)

    def rank(i: int) -> tuple[bool, int, int]:
        # A passage holding the answer as written beats one holding its words apart.
        text = hits[i].chunk.text
        return contains(text, answer), len(asked & content_words(text)), -i

    return max(supporting, key=rank)


def settling_sentence(answer: str, passage: str) -> str:
    """The passage's sentence that holds ``answer`` (as written, else most of its words): what
    the UI highlights as the evidence."""
    sentences = split_sentences(passage)
    if not sentences:
        return ""
    words = content_words(answer)
    return max(sentences, key=lambda x: (contains(x, answer), len(words & content_words(x))))


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
    if normalize(answer) in NONE_WORDS:
        return None
    if not content_words(answer) - content_words(question):
        return None  # the answer only repeats the question's words: it says nothing new
    i = pick_evidence(question, parsed.quote, answer, hits)
    if i is None:
        return None
    quote = parsed.quote or settling_sentence(answer, hits[i].chunk.text)
    citation = to_citation(i + 1, hits[i], quote=quote)
    return Supported(answer, i, f"{answer} [{citation.n}]", [citation])


# --- open answers, sentence by sentence ----------------------------------------------------

_NEGATIONS = frozenset("not no never neither nor nothing none without".split())
# Words a sentence may use that no passage needs to hold: grammar, and talk about the document.
_GENERIC = _STOPWORDS | frozenset(
    "also because but so than then there these those which while who whom will would can could "
    "has have had not no document documents article text passage passages story discusses "
    "describes explains mentions covers talks says".split()
)
SENTENCE_SUPPORT = 0.8
"""Share of a sentence's content words its passage must hold (word endings ignored)."""


def stem(word: str) -> str:
    """A crude stem, so "trained"/"training"/"trains" match but numbers stay whole."""
    if word.isdigit() or word.endswith("ss"):
        return word
    for suffix in ("ing", "ed", "es", "s", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def sentence_support(sentence: str, evidence: str, question: str = "") -> float:
    """How well ``evidence`` backs ``sentence``: the share of the sentence's content words it
    holds (by stem); 0 if it lacks any of the sentence's numbers or negations, or most of the
    words the sentence takes from the question (an answer that restates the question around
    unrelated facts: "X was chosen because <something the passage says>")."""
    have = tokens(evidence)
    stems = {stem(t) for t in have}
    words = tokens(sentence)
    if any(t not in have for t in words if any(ch.isdigit() for ch in t) or t in _NEGATIONS):
        return 0.0
    content = [stem(t) for t in words if t not in _GENERIC]
    if not content:
        return 0.0
    echoed = {stem(t) for t in content_words(question) - ASKING} & set(content)
    if echoed and len(echoed & stems) / len(echoed) < 0.75:
        return 0.0
    return sum(t in stems for t in content) / len(content)


def ground(
    sentence: str, hits: list[Hit], question: str = "", threshold: float = SENTENCE_SUPPORT
) -> tuple[int, ...] | None:
    """Indices of the passage that best backs ``sentence`` (at least ``threshold``), or of two
    passages that back it together (a summary sentence joins facts); None if none do."""
    scores = [sentence_support(sentence, h.chunk.text, question) for h in hits]
    ranked = sorted(range(len(hits)), key=lambda i: -scores[i])
    if not ranked or scores[ranked[0]] <= 0:
        return None
    if scores[ranked[0]] >= threshold:
        return (ranked[0],)
    pairs = [(a, b) for a in ranked[:4] for b in ranked[:4] if a < b]
    for a, b in pairs:
        text = hits[a].chunk.text + " " + hits[b].chunk.text
        if sentence_support(sentence, text, question) >= threshold:
            return (a, b)
    return None


def question_coverage(question: str, evidence: str) -> float:
    """The share of what the question is about (its content words, question words left out)
    that ``evidence`` mentions (by stem)."""
    asked = {stem(t) for t in content_words(question) - ASKING}
    have = {stem(t) for t in tokens(evidence)}
    return len(asked & have) / len(asked) if asked else 0.0


def says_something(question: str, sentence: str, min_words: int = 1) -> bool:
    """Whether ``sentence`` (at least ``min_words`` words) adds words beyond the question's
    (and is not a "none"-like reply)."""
    return (
        len(sentence.split()) >= min_words
        and normalize(sentence) not in NONE_WORDS
        and bool(content_words(sentence) - content_words(question))
    )


def none_probability(first_token_probs: dict[str, float]) -> float | None:
    """The model's probability that its answer starts with "none" (None if not reported)."""
    if not first_token_probs:
        return None
    return _share(first_token_probs, "none")


def yes_no_odds(first_token_probs: dict[str, float]) -> dict[str, float]:
    """The model's first-token probabilities of "yes", "no" and "none" (empty if not
    reported)."""
    if not first_token_probs:
        return {}
    return {f"p_{w}": _share(first_token_probs, w) for w in ("yes", "no", "none")}


def _share(probs: dict[str, float], word: str) -> float:
    return sum(p for t, p in probs.items() if t.strip().lower() == word)


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
