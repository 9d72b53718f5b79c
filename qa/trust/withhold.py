"""The last check before a reply is shown: does it pass on what a planted instruction wanted?

Index-time flags (``qa.trust.guard``) and a neutralized prompt (``qa.trust.spotlight``) stop most
injections, but a 1.5B model can still repeat a planted code word it saw in an unflagged
neighbour, or a detector can miss a span. Quote verification cannot help: planted text is in a
document, so a reply that repeats it verifies. This check compares the reply with the flagged
spans of the passages the model saw and withholds it when it carries

- a code word, link, email address or phone number found in a flagged span, unless the user
  typed it or the question asks for that kind of contact and an unflagged sentence gives it;
- an odd word (ALL CAPS, CamelCase, letters and digits) that only flagged text holds: a part
  of a planted code, or a name an instruction invents for the assistant;
- mostly words that only flagged text supplies (the model answered from the instruction);
- a long run of qa's own system prompt (a leak).

The user then sees an abstention with one line saying why, never the planted text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from qa.passages import Chunk
from qa.text import STOPWORDS, normalize
from qa.trust.guard import Artefact, artefacts, reveal
from qa.trust.spotlight import neutralize

# Words that ask for a way to reach someone: then an unflagged contact may be given.
_ASKS_CONTACT = frozenset(
    "call phone number telephone ring email mail contact reach website site link url page "
    "address online download visit where".split()
)
_LEAK_RUN = 8  # words in a row from the system prompt
_BORROWED_SHARE = 0.5  # share of the reply's own words that only flagged text supplies

_REASONS = {
    "code": "it repeats a code word that {src} plants for AI assistants",
    "link": "it passes on a link that {src} plants for AI assistants",
    "email": "it passes on an email address that {src} plants for AI assistants",
    "phone": "it passes on a phone number that {src} plants for AI assistants",
    "instruction": "it follows instructions written inside {src} instead of stating its facts",
    "prompt-leak": "it would reveal qa's own instructions",
}


@dataclass(frozen=True)
class Withheld:
    """Why a reply is not shown. ``kind``: ``code``, ``link``, ``email``, ``phone``,
    ``instruction`` or ``prompt-leak``; ``source``: the document behind it (empty for a leak);
    ``reason``: one line for the user, naming no planted text."""

    kind: str
    source: str
    reason: str


def _withheld(kind: str, source: str) -> Withheld:
    src = f"the document {source}" if source else "a document"
    return Withheld(kind, source, f"Answer withheld: {_REASONS[kind].format(src=src)}.")


def _in(artefact: Artefact, text: str) -> bool:
    """Whether ``text`` mentions ``artefact``, however it is spaced or punctuated."""
    if artefact.kind == "phone":
        return artefact.key in re.sub(r"\D", "", text)
    if artefact.kind == "code":
        return artefact.key in re.sub(r"[^A-Z0-9]", "", text.upper())
    return artefact.key in text.lower()


def _odd_words(text: str) -> set[str]:
    """Words no dictionary has: ALL CAPS, CamelCase, or letters mixed with digits."""
    return {
        w
        for w in re.findall(r"\w{4,}", text)
        if (w != w.lower() and w != w.capitalize())
        or (w.isalnum() and not w.isalpha() and not w.isdigit())
    }


def _words(text: str) -> set[str]:
    return {w for w in normalize(text).split() if w not in STOPWORDS and len(w) > 2}


def _leaks(reply: str, system: str) -> bool:
    prompt = f" {normalize(system)} "
    words = normalize(reply).split()
    return any(
        f" {' '.join(words[i : i + _LEAK_RUN])} " in prompt
        for i in range(len(words) - _LEAK_RUN + 1)
    )


def withhold(
    question: str, reply: str, passages: Sequence[Chunk], *, system: str = ""
) -> Withheld | None:
    """Whether to withhold ``reply`` (the answer text, citation markers allowed), given the
    ``question`` as the user asked it, the ``passages`` the model saw (chunks with their index
    flags) and, optionally, the ``system`` prompt; None to show it."""
    if system and _leaks(reply, system):
        return _withheld("prompt-leak", "")
    flagged = [c for c in passages if c.flags]
    if not flagged:
        return None
    clean = "\n".join(neutralize(c.text, c.flags) for c in passages)
    asks_contact = bool(_ASKS_CONTACT & set(normalize(question).split()))
    for chunk in flagged:
        planted = "\n".join(v for f in chunk.flags for v in reveal(chunk.text[f.start : f.end]))
        for artefact in sorted(artefacts(planted), key=lambda a: (a.kind, a.key)):
            if not _in(artefact, reply) or _in(artefact, question):
                continue
            given_plainly = _in(artefact, clean) and artefact.kind != "code"
            if not (given_plainly and asks_contact):
                return _withheld(artefact.kind, chunk.source)
        odd = _odd_words(planted) & _odd_words(reply)
        if odd - _odd_words(clean) - _odd_words(question):
            return _withheld("code", chunk.source)
    own = _words(reply) - _words(question)
    borrowed = own - _words(clean)
    planted_words = set().union(
        *(_words(c.text[f.start : f.end]) for c in flagged for f in c.flags)
    )
    from_planted = borrowed & planted_words
    if len(from_planted) >= 2 and len(from_planted) >= _BORROWED_SHARE * len(own):
        source = next(c.source for c in flagged if _words(c.text) & from_planted)
        return _withheld("instruction", source)
    return None
