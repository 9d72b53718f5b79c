"""Answer shapes: which kind of answer a question calls for, what the model is told to write
for it, and how its reply is cut into the sentences or items that are checked one by one.

The router is a handful of rules on the question's wording. It runs before anything else, costs
nothing, and ``bench/router.py`` compares it with asking the model (see docs/benchmarks.md).
"""

from __future__ import annotations

import re

from qa.answer import Shape
from qa.text import split_sentences, strip_citations

# Auxiliaries that open a yes/no question ("Did ...?", "Is ...?").
_YESNO_START = frozenset(
    "is are was were am do does did can could has have had will would should shall may might "
    "must isn't aren't wasn't weren't don't doesn't didn't can't couldn't hasn't haven't hadn't "
    "won't wouldn't shouldn't".split()
)
_DOCUMENT_WORDS = r"(document|article|text|story|file|page|paper|report|book|chapter|passage)s?"
_OVERVIEW = re.compile(
    r"\b(what (is|are|'s) (this|these|the|that|those) " + _DOCUMENT_WORDS + r"\b.*\babout"
    r"|what (is|are) (it|they) about"
    r"|summar(y|ise|ize|ies)|overview|gist|tl;?dr|main (points?|ideas?|topics?|themes?)"
    r"|what do (the|these) " + _DOCUMENT_WORDS + r" (say|cover|discuss))\b"
)
_MENTION = re.compile(
    r"\b(which|what) " + _DOCUMENT_WORDS + r" (mention|talk about|discuss|cover|refer to)"
)
_LIST = re.compile(
    r"^(list|enumerate|name (all|every|each|the))\b|\b(all the|every|each of the)\b"
    r"|^(who|what) (are|were) (the|all)\b.*\b(people|persons|names|members|agencies|"
    r"organi[sz]ations|countries|places|films|books|companies|kinds|types|steps|parts)\b"
    r"|^who (are|were) (the|all)\b"
    r"|^which (people|persons|countries|agencies|organi[sz]ations|companies|films|books)\b"
)
_OPEN = re.compile(
    r"^(why|explain|describe|compare|contrast|tell me about|in what way)\b"
    r"|^how (do|does|did|is|are|was|were|can|could|has|have|had|will|would|should)\b"
    r"|\b(compare|comparison|differ|difference|similarit|relationship between|in what ways?)\b"
    r"|^what (happened|happens|did .+ (say|do|think|describe|explain))\b"
)


_ABOUT_WORDS = frozenset(
    "what is are was were this these that those the a an it they them its their about of do does "
    "say cover discuss give me please brief briefly short main point points idea ideas topic "
    "topics theme themes gist tldr tl dr overview summary summaries summarize summarise "
    "document documents article articles text texts story stories file files page pages paper "
    "papers report reports book books chapter chapters passage passages s".split()
)


def overview_topic(question: str) -> str:
    """What an overview question names besides "the documents" ("Summarize the article about
    steam engines" -> "steam engines"); empty when it asks about everything."""
    words = re.findall(r"[a-z0-9]+", question.lower())
    return " ".join(w for w in words if w not in _ABOUT_WORDS)


def mention_topic(question: str) -> str:
    """The term of a "which documents mention X?" question ("" for other questions)."""
    q = " ".join(question.lower().replace("’", "'").split())
    found = _MENTION.search(q)
    return q[found.end() :].strip(" ?.!") if found else ""


# "Can you list ...", "Please tell me ...": a polite opening, not the question.
_POLITE = re.compile(
    r"^(please |(can|could|would|will) you (please )?)(?=(list|name|tell|give|explain|describe|"
    r"summari[sz]e|show|find|say|compare)\b)"
)


def _is_choice(q: str) -> bool:
    """ "Is it A or B?": a choice between short alternatives at the end, not a yes/no. An "or"
    inside a longer phrase ("is david from love it or list it a real realtor") is not one, nor
    one after "any" or "ever" ("did she have any brothers or sisters"), nor "why or why not"."""
    if " or " not in q or re.search(r"\b(any|ever|either)\b.* or |why or why not", q):
        return False
    return len(q.rsplit(" or ", 1)[1].split()) <= 3


def route(question: str) -> Shape:
    """The answer shape ``question`` calls for (rules on its wording; see module docstring).

    Questions are read as people type them: lower case and no question mark count the same
    ("is house tax and property tax are same" is a yes/no question)."""
    q = " ".join(question.lower().replace("’", "'").split()).rstrip(" ?.!")
    q = _POLITE.sub("", q)
    words = re.findall(r"[a-z']+", q)
    if _MENTION.search(q):
        return "list"
    if _OVERVIEW.search(q):
        return "overview"
    # An auxiliary first asks yes or no, whatever follows ("is there a difference between ...",
    # "are all the members still alive").
    if words and words[0] in _YESNO_START and not _is_choice(q):
        return "yesno"
    if _OPEN.search(q):
        return "open"
    if _LIST.search(q):
        return "list"
    return "short"


INSTRUCTIONS: dict[Shape, str] = {
    "short": "",
    "open": "\n(Answer in 2 to 4 short sentences. Keep the passages' own words.)",
    "overview": "\n(Answer in 2 to 4 short sentences. Keep the passages' own words.)",
    "list": "\n(List every item the passages give, separated by semicolons.)",
    "yesno": "\n(Answer yes or no.)",
}
"""Appended to the question. The system prompt and examples stay those of short answers, so
every shape shares the KV-cached prompt prefix (the passages) and a shape switch costs no
prompt re-evaluation."""


def sentences(text: str, limit: int = 5) -> list[str]:
    """``text`` cut into at most ``limit`` sentences: markers removed, repeats dropped, and a
    last sentence cut off by the token limit left out."""
    text = " ".join(strip_citations(text).split())
    out: list[str] = []
    parts = split_sentences(text)
    for i, part in enumerate(parts):
        unfinished = i == len(parts) - 1 and len(parts) > 1 and part[-1] not in '.!?"”’)'
        if unfinished or part.lower() in (o.lower() for o in out):
            continue
        out.append(part)
    return out[:limit]


def list_items(text: str, limit: int = 15) -> list[str]:
    """The items of a list reply: split on semicolons, line breaks and bullets, and on commas
    or "and" when every piece is short (a list of names, not a sentence); repeats dropped."""
    text = strip_citations(text)
    pieces = [p.strip(" -*•\t.") for p in re.split(r"[;\n]|\s\*\s|\s•\s", text)]
    items: list[str] = []
    for piece in pieces:
        parts = [p.strip(" .") for p in re.split(r",\s*(?:and\s+)?|\s+and\s+", piece)]
        parts = [p for p in parts if p]
        if len(parts) > 1 and all(len(p.split()) <= 5 for p in parts):
            items += parts
        elif piece:
            items.append(piece)
    seen: set[str] = set()
    unique = [i for i in items if i and not (i.lower() in seen or seen.add(i.lower()))]
    return unique[:limit]
