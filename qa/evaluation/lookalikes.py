"""How a generated question is made to look answerable when it is not
(:mod:`qa.evaluation.generate`), the way SQuAD 2.0's crowd did it, and how an answer's
evidence is taken out of its passage.

Each change is checked against the indexed sentences: a question made unanswerable on paper is
useless if some sentence answers it after all (the decision would be taught that a right answer
is wrong). The checks read words, not meaning, so they are conservative: a change is refused
when any sentence holds what it put in together with half the question's other words, or, for
a negation, when a sentence on the question's words is itself negated. No rule here knows any
document: the antonyms are a closed list of common pairs.
"""

from __future__ import annotations

import math
import random
import re
import unicodedata
from collections.abc import Callable

from qa.passages import Chunk
from qa.spans import Span, spans
from qa.text import contains, normalize, split_sentences
from qa.trust.verify import ASKING, content_words, stem

ANTONYMS = dict(
    pair
    for a, b in (
        ("first", "last"),
        ("before", "after"),
        ("largest", "smallest"),
        ("biggest", "smallest"),
        ("highest", "lowest"),
        ("longest", "shortest"),
        ("earliest", "latest"),
        ("oldest", "newest"),
        ("most", "least"),
        ("best", "worst"),
        ("maximum", "minimum"),
        ("increase", "decrease"),
        ("increased", "decreased"),
        ("increases", "decreases"),
        ("increasing", "decreasing"),
        ("rise", "fall"),
        ("rose", "fell"),
        ("win", "lose"),
        ("won", "lost"),
        ("earlier", "later"),
        ("higher", "lower"),
        ("larger", "smaller"),
        ("older", "younger"),
        ("above", "below"),
        ("inside", "outside"),
        ("internal", "external"),
        ("import", "export"),
        ("imports", "exports"),
        ("accepted", "rejected"),
        ("allowed", "banned"),
        ("opened", "closed"),
        ("began", "ended"),
        ("start", "end"),
        ("public", "private"),
        ("ancient", "modern"),
        ("strong", "weak"),
        ("rich", "poor"),
        ("major", "minor"),
    )
    for pair in ((a, b), (b, a))
)
"""Common antonym pairs, every inflection listed (a closed list: no rule knows any document)."""
_NEGATED = re.compile(
    r"\b(?:not|never|no|none|nobody|nothing|neither|nor|without)\b|n[’']t\b", re.IGNORECASE
)
_AUXILIARY_VERB = re.compile(
    r"\b(?:is|was|were|are|did|does|do|has|have|had|can|could|will|would|should)(?=\s)",
    re.IGNORECASE,
)
_NEGATION = re.compile(r"\s+(?:not|never)\b|\b(?P<aux>[A-Za-z]+)n[’']t\b")
_CONTRACTED = {"will": "won't", "can": "can't"}
_UNCONTRACTED = {"wo": "will", "ca": "can", "sha": "shall"}
_PRONOUN = re.compile(r"\b(he|she|his|her|him|they|them|their)\b", re.IGNORECASE)
CONTEXT_SHARE = 0.5
"""A chunk holding a swapped-in name and this share of the question's other content words
might answer the swapped question: the item is dropped."""


class Corpus:
    """The chunks, their sentences with their stemmed words, and each chunk's neighbours."""

    def __init__(self, chunks: list[Chunk], embed: Callable[[list[str]], list[list[float]]]):
        self.chunks = [c for c in chunks if not c.flags]
        self.sentences = [
            (sentence, {stem(w) for w in content_words(sentence)})
            for c in self.chunks
            for sentence in split_sentences(c.text)
        ]
        self._at = {(c.source, c.n): c for c in self.chunks}
        self._embed = embed
        self._vectors: dict[str, list[float]] = {}

    def passage(self, chunk: Chunk) -> list[Chunk]:
        """``chunk`` and the chunks either side of it in its document (about a paragraph)."""
        near = (self._at.get((chunk.source, chunk.n + d)) for d in (0, -1, 1))
        return [c for c in near if c is not None]

    def partners(self, span: Span, avoid: str, passage: list[Chunk]) -> list[str]:
        """Other names (most similar first) or numbers (nearest first) of ``passage``, of the
        span's kind (years for a year), sharing no word stem with it and absent from ``avoid``;
        names of as many words as the span's come first ("Holland" for "Saarland", not
        "Protestant Europe")."""
        own = normalize(span.text).split()
        found: dict[str, str] = {}
        for chunk in passage:
            for s in spans(chunk.text):
                if s.kind == span.kind:
                    found.setdefault(normalize(s.text), s.text)
        pool = [
            text
            for key, text in found.items()
            if not _related(own, key.split()) and not contains(avoid, text)
        ]
        if span.kind != "name":
            value = _value(span.text)
            return sorted(pool, key=lambda t: abs(math.log1p(_value(t)) - math.log1p(value)))
        missing = [t for t in [span.text, *pool] if t not in self._vectors]
        if missing:
            self._vectors |= dict(zip(missing, self._embed(missing), strict=True))
        a, size = self._vectors[span.text], len(span.text.split())
        return sorted(pool, key=lambda t: (len(t.split()) != size, -_cosine(a, self._vectors[t])))

    def _context(self, question: str, part: str) -> set[str]:
        words = content_words(question) - ASKING - content_words(part)
        return {stem(w) for w in words if not _NEGATED.fullmatch(w)}

    def speaks_of(self, part: str, question: str) -> bool:
        """Whether some sentence holds ``part`` (a name, number or word) with
        ``CONTEXT_SHARE`` of the question's other content words (by stem): the changed
        question might be answered there."""
        other = self._context(question, part)
        return any(
            contains(sentence, part) and len(other & words) >= CONTEXT_SHARE * len(other)
            for sentence, words in self.sentences
        )

    def negated_near(self, question: str) -> bool:
        """Whether some sentence holding ``CONTEXT_SHARE`` of the question's content words is
        itself negated: a negated question might be answered there."""
        asked = self._context(question, "")
        return any(
            len(asked & words) >= CONTEXT_SHARE * len(asked) and _NEGATED.search(sentence)
            for sentence, words in self.sentences
        )


def _related(a: list[str], b: list[str]) -> bool:
    """Whether two names share a word: by stem, accents aside, or by a common start of 4+
    letters that is all but the shorter word's last letter or 5 letters ("Parliament" and
    "Parliamentary", "China" and "Chinese", "Tran" and "Trần" are one name for a swap)."""

    def same(x: str, y: str) -> bool:
        x, y = _fold(x), _fold(y)
        if stem(x) == stem(y):
            return True
        if x.isdigit() or y.isdigit():
            return False
        need = max(4, min(5, min(len(x), len(y)) - 1))
        return len(x) >= need and len(y) >= need and x[:need] == y[:need]

    return any(same(x, y) for x in a for y in b)


def _fold(word: str) -> str:
    """``word`` without its accents ("trần" -> "tran")."""
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _value(text: str) -> float:
    try:
        return abs(float(normalize(text).replace(" ", "").rstrip("s") or 0))
    except ValueError:
        return 0.0


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a) * sum(y * y for y in b)) or 1.0)


Change = tuple[str, str, str]
"""A question changed: (the new question, the part taken out, the part put in)."""


def swap(
    question: str,
    sentence: str,
    corpus: Corpus,
    rng: random.Random,
    answer: str = "",
    *,
    passage: list[Chunk],
    kinds: tuple[str, ...] = ("name",),
) -> Change | None:
    """The question with one of its spans of ``kinds`` (one its sentence holds, not the
    answer) replaced by another of the same kind from ``passage`` but not from its sentence
    (a number or year may also become a near value when the passage has none) that no indexed
    sentence says in the question's context; None if there is none. When the sentence has a
    personal pronoun, names of the sentence just before it are left out: the pronoun may be
    that very name, and the swapped question answered."""
    keys = [
        s
        for s in spans(question)
        if s.kind in kinds and contains(sentence, s.text) and s.text != answer
    ]
    rng.shuffle(keys)
    before = _sentence_before(passage, sentence) if _PRONOUN.search(sentence) else ""
    avoid = f"{sentence} {question} {answer}"
    for key in keys:
        pool = [t for t in corpus.partners(key, avoid, passage) if not contains(before, t)]
        if key.kind != "name":
            near = _near_values(key, rng)
            pool = pool[:3] + [v for v in near if not contains(avoid, v)]
        for new in pool[:6]:
            swapped = question[: key.start] + new + question[key.end :]
            if not corpus.speaks_of(new, swapped):
                return swapped, key.text, new
    return None


def _sentence_before(passage: list[Chunk], sentence: str) -> str:
    """The sentence before ``sentence`` in the first chunk of ``passage`` ("" if none)."""
    sentences = split_sentences(passage[0].text) if passage else []
    i = sentences.index(sentence) if sentence in sentences else 0
    return sentences[i - 1] if i > 0 else ""


def _near_values(span: Span, rng: random.Random) -> list[str]:
    """Values near a year (a few years either side) or a whole number (a half, three
    quarters, and so on), written like it, in a seeded order; none for other numbers."""
    text = span.text
    digits = text.replace(",", "")
    if not digits.isdigit():
        return []
    value = int(digits)
    if span.kind == "year":
        near = [value + d for d in (-7, -5, -3, -2, -1, 1, 2, 3, 5, 7)]
    elif value <= 12:
        near = [value + d for d in (-2, -1, 1, 2, 3)]
    else:
        near = [round(value * f) for f in (0.5, 0.75, 1.25, 1.5, 2)]
    out = [f"{v:,}" if "," in text else str(v) for v in near if v > 0 and v != value]
    rng.shuffle(out)
    return out


def negate(question: str, corpus: Corpus) -> Change | None:
    """The question with "not" put in at its first auxiliary verb ("When did" -> "When
    didn't"), or, when it has one, its "not", "never" or "n't" taken out; None if it has
    neither or some sentence on its words is negated (it might answer the changed question)."""
    if m := _NEGATION.search(question):
        old = m.group()
        new = m.group("aux") or ""
        new = _UNCONTRACTED.get(new.lower(), new)
    elif m := _AUXILIARY_VERB.search(question):
        old = m.group()
        new = _CONTRACTED.get(old.lower(), old.lower() + "n't")
        new = new[0].upper() + new[1:] if old[0].isupper() else new
    else:
        return None
    changed = question[: m.start()] + new + question[m.end() :]
    if corpus.negated_near(changed):
        return None
    return changed, old.strip(), new


def antonym(question: str, corpus: Corpus, rng: random.Random) -> Change | None:
    """The question with one of its words of ``ANTONYMS`` (lower case: never inside a name)
    replaced by its opposite that no indexed sentence says in the question's context; None if
    there is none."""
    hits = [m for m in re.finditer(r"\b[a-z]+\b", question) if m.group() in ANTONYMS]
    rng.shuffle(hits)
    for m in hits:
        new = ANTONYMS[m.group()]
        changed = question[: m.start()] + new + question[m.end() :]
        if not corpus.speaks_of(new, changed):
            return changed, m.group(), new
    return None


def without_evidence(passage: list[Chunk], answer: str, question: str) -> str | None:
    """The text of ``passage`` (its chunks merged by their offsets) with every sentence that
    holds ``answer`` taken out, or None when the rest would not look like it answers
    ``question``: fewer than two sentences left, or none of the question's content words."""
    kept = [s for s in split_sentences(_merged(passage)) if not contains(s, answer)]
    text = " ".join(kept)
    asked = {stem(w) for w in content_words(question) - ASKING}
    if len(kept) < 2 or contains(text, answer):
        return None
    if not asked & {stem(w) for w in content_words(text)}:
        return None
    return text


def _merged(chunks: list[Chunk]) -> str:
    """The text the chunks of one document cover, overlaps once."""
    parts: list[str] = []
    end = -1
    for c in sorted(chunks, key=lambda c: c.start):
        if end < 0 or c.start >= end:
            parts.append(c.text)
        else:
            parts[-1] += c.text[end - c.start :]
        end = max(end, c.end)
    return "\n\n".join(parts)
