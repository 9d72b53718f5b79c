"""Answer spans picked by rules, not by a model: names, years and numbers in a sentence.

Generated gold (:mod:`qa.evaluation.generate`) needs answers a reader can check and swaps
that keep a question's look: a model asked to choose its own answer picks vague phrases, and
one asked whether a swapped name is "of the same kind" agrees with itself. So spans come from
the text's surface: a run of capitalised words (a name), a four-digit year, a number. The
same rules find the names and numbers a question mentions, at answer time too
(:func:`qa.trust.answerability.cheap_features`), so what the generator swaps and what the
decision reads are one definition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from qa.text import STOPWORDS, normalize

Kind = Literal["name", "year", "number"]

_MONTHS = (
    "January February March April May June July August September October November December"
).split()
_NOT_NAMES = frozenset(
    _MONTHS
    + "Monday Tuesday Wednesday Thursday Friday Saturday Sunday I The A An In On At Of For By "
    "It He She They We This That These Those There Here His Her Its Their What Which Who Whom "
    "Whose When Where Why How Did Does Do Is Was Were Are Has Had Have Can Could Will Would "
    "Should May Might After Before During From With While Although Since As If But And Or "
    "However Also According Some Many Most Other Another".split()
)
_JOINERS = frozenset({"of", "de", "the", "von", "van", "del", "da", "du", "and", "&"})
_WORD = re.compile(r"[A-Za-z][\w'’.-]*|\d[\d,.]*%?")
_YEAR = re.compile(r"^(1[0-9]{3}|20[0-9]{2})s?$")
_NUMBER = re.compile(r"^\d[\d,]*(\.\d+)?%?$")


@dataclass(frozen=True)
class Span:
    """A name, year or number as written in ``text`` (``start``/``end`` are offsets)."""

    text: str
    kind: Kind
    start: int
    end: int


def spans(text: str) -> list[Span]:
    """The names (runs of capitalised words, "of"/"de" allowed inside), years and numbers of
    ``text``. A capitalised first word counts only when a name runs on from it."""
    words = list(_WORD.finditer(text))
    out: list[Span] = []
    i = 0
    while i < len(words):
        w = words[i].group().rstrip(".,")
        if _YEAR.match(w):
            out.append(Span(w, "year", words[i].start(), words[i].start() + len(w)))
        elif _NUMBER.match(w):
            w = w.rstrip("%,.")
            out.append(Span(w, "number", words[i].start(), words[i].start() + len(w)))
        elif _capital(w):
            j = i
            while j + 1 < len(words):
                nxt = words[j + 1].group().rstrip(".,")
                gap = text[words[j].end() : words[j + 1].start()]
                if gap.strip() or "\n" in gap or words[j].group()[-1:] in ",.":
                    break  # a comma, a sentence or a line break ends the name (a title,
                    # heading or photo credit runs into the next line's first word)
                if _capital(nxt) or (
                    nxt in _JOINERS and j + 2 < len(words) and _capital(words[j + 2].group())
                ):
                    j += 1
                else:
                    break
            first = i == 0 or bool(re.search(r"[.!?:\"“]\s*$", text[: words[i].start()]))
            run = [words[k] for k in range(i, j + 1)]
            while run and run[0].group().rstrip(".,") in _NOT_NAMES:
                run.pop(0)
            # A capitalised first word alone is only the sentence's start ("Scholars say").
            if run and not (first and len(run) == 1 and run[0] is words[i]):
                start, end = run[0].start(), run[-1].start() + len(run[-1].group().rstrip(".,"))
                out.append(Span(text[start:end], "name", start, end))
            i = j
        i += 1
    return [s for s in out if normalize(s.text) and normalize(s.text) not in STOPWORDS]


def _capital(word: str) -> bool:
    return (
        word[:1].isupper()
        and word not in _NOT_NAMES
        and not word.isupper()
        or (word.isupper() and 2 <= len(word) <= 6 and word.isalpha())
    )


def mentioned(question: str) -> set[str]:
    """The normalised words of the names and numbers ``question`` mentions."""
    return {t for s in spans(question) for t in normalize(s.text).split() if t not in STOPWORDS}
