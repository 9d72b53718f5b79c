"""What a document becomes and every side passes around: chunks, the spans of them flagged as
written for an AI assistant, and retrieved hits.

:mod:`qa.documents` makes chunks, :mod:`qa.trust.guard` flags them as they are stored, the
store returns hits, and :mod:`qa.answering` and :mod:`qa.trust` read them; the types live here
so none of those sides has to import another for them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

Reason = str  # "instruction" | "control-token" | "markup" | "comment" | "encoded" | "credentials"


@dataclass(frozen=True)
class Flag:
    """A span of a chunk's text that reads as instructions to an AI assistant.

    ``start``/``end`` are offsets into the chunk's text; ``score`` is the model's probability
    (1.0 for a rule); ``reason`` says what was found, in words safe to show a user:
    ``instruction``, ``control-token`` (a chat-template turn marker), ``markup`` (active HTML
    shown as text), ``comment`` (an instruction hidden in a comment) or ``encoded`` (one hidden
    by spacing its letters or by base64).
    """

    start: int
    end: int
    score: float
    reason: Reason


@dataclass(frozen=True)
class Chunk:
    """A piece of a document, the unit that is embedded, retrieved and cited."""

    id: str
    text: str
    source: str
    n: int
    start: int
    end: int
    title: str
    page: int = 0  # 1-based PDF page; 0 for formats without pages
    # Spans written for an AI assistant (qa.trust.guard), found when the chunk is stored; derived
    # from the text, so they take no part in equality.
    flags: tuple[Flag, ...] = field(default=(), compare=False)

    @property
    def metadata(self) -> dict[str, str | int]:
        meta: dict[str, str | int] = {
            "source": self.source,
            "chunk": self.n,
            "start": self.start,
            "end": self.end,
            "title": self.title,
        }
        if self.page:
            meta["page"] = self.page
        if self.flags:
            meta["flags"] = json.dumps([[f.start, f.end, f.score, f.reason] for f in self.flags])
        return meta


def flags_from_metadata(meta: dict) -> tuple[Flag, ...]:
    """The flags a chunk's metadata stores (see :attr:`Chunk.metadata`)."""
    return tuple(
        Flag(int(a), int(b), float(s), str(r))
        for a, b, s, r in json.loads(meta.get("flags") or "[]")
    )


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk and its relevance, higher is better: cosine similarity for dense
    search, the reciprocal-rank-fusion score for hybrid search."""

    chunk: Chunk
    score: float
    # Retrieval mode: the prompt may show only the sentences that bear on the question
    # (qa.answering.focus); the whole chunk stays the evidence and the citation.
    focused: bool = False
    # Retrieval mode: the best first (not a whole corpus in document order), so a short answer
    # may be read from the first alone (progressive reading, qa.answering.chain).
    ranked: bool = False
