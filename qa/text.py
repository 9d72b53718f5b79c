"""Text normalization shared by answer verification and evaluation."""

from __future__ import annotations

import re
import unicodedata

from qa.errors import InvalidQuestionError

_UNITS = (
    ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
    + ("eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen")
    + ("eighteen", "nineteen")
)
_TENS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_NUMBER_WORDS = {w: i for i, w in enumerate(_UNITS)} | {w: 10 * i for i, w in enumerate(_TENS, 2)}
_ARTICLES = frozenset({"a", "an", "the"})

STOPWORDS = frozenset(
    """about above after again all also am and any are as at be because been before being
    between both but by can could did do does doing down during each few for from further had
    has have having he her here hers him his how i if in into is it its itself just me more
    most my no nor not now of off on once only or other our out over own same she should so
    some such than that their them then there these they this those through to too under
    until up very was we were what when where which while who whom why will with would you
    your yours s t""".split()
)
"""English function words (as ``normalize`` leaves them: ``don't`` -> ``don t``): what is left
of a sentence without them is its content."""


def _numbers_to_digits(tokens: list[str]) -> list[str]:
    out: list[str] = []
    total = current = 0
    in_run = False
    for tok in [*tokens, ""]:
        value = _NUMBER_WORDS.get(tok)
        # A word joins the running number if it extends it ("twenty" + "one", "two" + "hundred").
        joins = in_run and (
            (value is not None and current % 100 >= 20 and current % 10 == 0 and value < 10)
            or (value is not None and current % 100 == 0 and total + current > 0)
            or tok in ("hundred", "thousand")
        )
        if joins and tok == "hundred":
            current *= 100
        elif joins and tok == "thousand":
            total, current = total + current * 1000, 0
        elif joins:
            current += value or 0
        else:
            if in_run:
                out.append(str(total + current))
            in_run, total, current = value is not None, 0, value or 0
            if not in_run and tok:
                out.append(tok)
    return out


def normalize(text: str) -> str:
    """Normalize text for lenient matching of facts and gold answers.

    Lowercases; folds unicode (NFKC); turns all punctuation and symbols (any dash, quote, ``$``)
    into spaces; drops thousands separators; drops a/an/the; maps number words to digits
    ("thirty-seven" -> "37"); collapses whitespace.

    Example:
        >>> normalize("The crew stays “twelve” days—in Kazakhstan's orbit.")
        'crew stays 12 days in kazakhstan s orbit'
    """
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    text = "".join(" " if unicodedata.category(ch)[0] in "PSZC" else ch for ch in text)
    return " ".join(_numbers_to_digits([t for t in text.split() if t not in _ARTICLES]))


def contains(text: str, phrase: str) -> bool:
    """Whether ``phrase`` occurs in ``text`` as whole tokens, after ``normalize`` on both."""
    needle = normalize(phrase)
    return bool(needle) and f" {needle} " in f" {normalize(text)} "


_CITATION_MARK = re.compile(r"\s*\[\d+(?:\s*[,-]\s*\d+)*\]")


def strip_citations(text: str) -> str:
    """Remove ``[n]`` / ``[1, 2]`` citation markers from an answer."""
    return _CITATION_MARK.sub("", text)


def escape_braces(text: str) -> str:
    """``text`` as a literal inside a langchain prompt template (``{`` and ``}`` doubled)."""
    return text.replace("{", "{{").replace("}", "}}")


# A full stop ends a sentence unless it ends an abbreviation ("a.m.", "Oct.", "Dr.") or a digit
# follows ("No. 3"); the next sentence starts with a capital letter or an opening quote.
_ABBREVIATION = re.compile(
    r"(?:\b(?:[A-Za-z]\.){2,}|\b(?:Mr|Mrs|Ms|Dr|Prof|St|Jr|Sr|Inc|Co|Ltd|vs|No|Jan|Feb|Mar|Apr|"
    r"Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\.)$"
)
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])([\"”’)]?)\s+(?=[\"“‘(]?[A-Z])")


def split_sentences(text: str) -> list[str]:
    """``text`` cut into sentences; paragraphs (blank-line separated) never share one, so a
    heading stays apart from the sentence after it."""
    out: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        out += _sentences_of(" ".join(paragraph.split()))
    return out


def _sentences_of(text: str) -> list[str]:
    out: list[str] = []
    start = 0
    for m in _SENTENCE_BREAK.finditer(text):
        if _ABBREVIATION.search(text[start : m.start()]):
            continue
        out.append(text[start : m.end(1)].strip())
        start = m.end()
    out.append(text[start:].strip())
    return [x for x in out if x]


def clean_question(question: str, max_chars: int) -> str:
    """Strip control characters and whitespace; refuse empty or oversized questions."""
    text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in str(question or ""))
    text = " ".join(text.split())
    if not text:
        raise InvalidQuestionError("The question is empty; type a question about the documents")
    if len(text) > max_chars:
        raise InvalidQuestionError(
            f"The question is {len(text)} characters long; keep it under {max_chars} "
            "(QA_MAX_QUESTION_CHARS)"
        )
    return text
