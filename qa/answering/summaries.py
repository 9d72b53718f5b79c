"""Per-document summaries, for overview questions about corpora larger than the LLM's context,
and the other answers the index gives without the LLM ("which documents mention X?").

A summary is a few sentences the answering chain writes about a document's opening passages,
each grounded in and citing the passage it comes from, like any open answer. Summaries are made
lazily, on the first overview question, because writing one costs an LLM call per document
(see docs/benchmarks.md), and are kept in a JSON file next to the index. Each is keyed by a
fingerprint of the document's chunk ids, so an unchanged document is never summarized again, a
changed one gets a new summary and a removed one loses its summary.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

from qa.answer import Sentence
from qa.answering.shapes import overview_topic
from qa.passages import Chunk, Hit
from qa.trust.verify import content_words, settling_sentence, stem, to_citation, tokens

log = logging.getLogger(__name__)

MAX_OVERVIEW_DOCUMENTS = 12
"""An overview of everything covers this many documents (each costs one summary, once)."""
LEAD_CHARS = 2500
"""How much of a document's beginning its summary is written from."""

Summarize = Callable[[list[Hit]], list[Sentence]]
"""Grounded sentences about these passages (the answering chain, asked what they are about)."""


def document_fingerprint(chunks: list[Chunk]) -> str:
    """Changes whenever the document's text (hence a chunk id) changes."""
    return hashlib.sha1("\n".join(c.id for c in chunks).encode()).hexdigest()[:16]


def lead(chunks: list[Chunk], limit: int = LEAD_CHARS) -> list[Chunk]:
    """The document's first chunks, up to ``limit`` characters (at least one)."""
    out: list[Chunk] = []
    for chunk in chunks:
        if out and sum(len(c.text) for c in out) + len(chunk.text) > limit:
            break
        out.append(chunk)
    return out


class Summaries:
    """The summaries file (``path``) and the function that writes a missing summary."""

    def __init__(self, path: Path, summarize: Summarize) -> None:
        self.path = path
        self._summarize = summarize

    def _load(self) -> dict[str, dict]:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            log.warning("unreadable summaries file %s; summaries will be rewritten", self.path)
            return {}

    def _save(self, data: dict[str, dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".summaries-")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, self.path)

    def get(
        self, documents: dict[str, list[Chunk]], wanted: list[str]
    ) -> dict[str, list[Sentence]]:
        """The summaries of the ``wanted`` documents, writing the missing or stale ones.
        ``documents`` maps every indexed source to its chunks in order; summaries of sources
        not in it are forgotten."""
        stored = self._load()
        kept = {s: v for s, v in stored.items() if s in documents}
        for source in wanted:
            chunks = documents[source]
            fingerprint = document_fingerprint(chunks)
            if kept.get(source, {}).get("fingerprint") != fingerprint:
                log.info("summarizing %s", source)
                sentences = self._summarize([Hit(c, 1.0) for c in lead(chunks)])
                kept[source] = {
                    "fingerprint": fingerprint,
                    "sentences": [
                        {"text": s.text, "chunks": [c.chunk_id for c in s.citations]}
                        for s in sentences
                    ],
                }
        if kept != stored:
            self._save(kept)
        by_id = {c.id: c for chunks in documents.values() for c in chunks}
        return {s: _sentences(kept[s]["sentences"], by_id) for s in wanted}


def _sentences(stored: list[dict], chunks: dict[str, Chunk]) -> list[Sentence]:
    """Stored summary sentences with citations rebuilt from the live chunks (``n`` = 0 until
    the answer numbers them)."""
    out = []
    for s in stored:
        cited = [chunks[i] for i in s["chunks"] if i in chunks]
        if cited:
            citations = [
                to_citation(0, Hit(c, 1.0), settling_sentence(s["text"], c.text)) for c in cited
            ]
            out.append(Sentence(s["text"], citations))
    return out


def overview(
    question: str,
    chunks: list[Chunk],
    search: Callable[[str, int], list[Hit]],
    summaries: Summaries,
) -> list[Sentence] | None:
    """Sentences from the summaries of the documents an overview question is about: all of
    them (up to ``MAX_OVERVIEW_DOCUMENTS``), or the ones it names ("Summarize the article about
    steam engines", ranked by ``search``). None when it names a topic but no document."""
    by_source: dict[str, list[Chunk]] = {}
    for c in chunks:
        by_source.setdefault(c.source, []).append(c)
    if topic := overview_topic(question):
        named = [s for s in by_source if _names(s, by_source[s][0].title, topic)]
        ranked = dict.fromkeys(h.chunk.source for h in search(question, 4))
        sources = [s for s in ranked if s in named][:2]
        per_document = 3
    else:
        sources = sorted(by_source)[:MAX_OVERVIEW_DOCUMENTS]
        per_document = 1 if len(sources) > 3 else 2
    if not sources:
        return None
    written = summaries.get(by_source, sources)
    return [s for source in sources for s in written[source][:per_document]]


def _names(source: str, title: str, topic: str) -> bool:
    """Whether ``topic`` names the document: half its words are in the file name, or all of
    them in the title."""
    asked = {stem(w) for w in topic.split()}
    name = {stem(w) for w in re.findall(r"[a-z0-9]+", Path(source).stem.lower())}
    return len(asked & name) * 2 >= len(asked) or asked <= {stem(t) for t in tokens(title)}


def mentioning(term: str, hits: list[Hit]) -> list[Sentence]:
    """One sentence per document among ``hits`` whose passage holds every word of ``term``
    (by stem), naming the document and citing that passage."""
    wanted = {stem(t) for t in content_words(term)}
    found: dict[str, Hit] = {}
    for hit in hits:
        words = {stem(t) for t in tokens(hit.chunk.text)}
        if wanted and wanted <= words and hit.chunk.source not in found:
            found[hit.chunk.source] = hit
    return [
        Sentence(source, [to_citation(0, hit, settling_sentence(term, hit.chunk.text))])
        for source, hit in found.items()
    ]
