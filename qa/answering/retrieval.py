"""What the LLM reads for a question: the passages, or answer sentences the index gives alone.

Most questions get the ``top_k`` best passages (hybrid or dense search). A corpus small enough
for ``full_context_chars`` is read whole, in document order, so the prompt prefix is the same
for every question and the LLM's KV cache makes answers fast. Overview questions over a larger
corpus are answered from per-document summaries, and "which documents mention X?" from the
search hits themselves, without the LLM.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import cached_property

from qa.answer import Sentence, Shape
from qa.answering.shapes import mention_topic
from qa.answering.summaries import Summaries, mentioning, overview
from qa.config import Settings
from qa.documents.store import Store
from qa.passages import Chunk, Hit
from qa.trust.spotlight import neutral_hit

MENTION_POOL = 20
"""Passages searched for "which documents mention X?"."""


class Retriever:
    """Finds the passages for a question in ``store``; ``summarize`` writes a document's
    summary from its leading passages (the chain's overview answer)."""

    def __init__(
        self, settings: Settings, store: Store, summarize: Callable[[list[Hit]], list[Sentence]]
    ) -> None:
        self.settings = settings
        self.store = store
        self._summarize = summarize

    def retrieve(self, question: str, shape: Shape = "short") -> list[Hit]:
        """The chunks the LLM will see for ``question`` (routed to ``shape``).

        Usually the ``top_k`` most similar, best first. When the whole index fits in
        ``full_context_chars``, every chunk in document order: the prompt prefix is then the
        same for every question, so the LLM's KV cache makes answers fast, and no answer is
        lost to a retrieval miss. Scores still rank them for evaluation. Retrieved passages
        are marked ``ranked`` (a short answer may be read from the best alone first,
        ``Settings.reading``) and ``focused`` (``Settings.passages``: the prompt shows their
        sentences that bear on the question).
        """
        chunks = self.whole_corpus()
        if chunks:
            scores = {h.chunk.id: h.score for h in self.search(question, len(chunks))}
            return [Hit(c, scores.get(c.id, 0.0)) for c in chunks]
        focused = self.settings.passages == "focused"
        return [
            replace(h, focused=focused, ranked=True)
            for h in self.search(question, self.settings.top_k)
        ]

    def whole_corpus(self) -> list[Chunk] | None:
        """Every chunk in document order if all of them fit ``full_context_chars``, else None
        (the chunk count rules out a large corpus without reading it)."""
        limit = self.settings.full_context_chars
        count = self.store.count()
        if count and count * self.settings.chunk_size <= limit * 2:
            chunks = self.store.all_chunks()
            if sum(len(c.text) for c in chunks) <= limit:
                return chunks
        return None

    def search(self, question: str, k: int) -> list[Hit]:
        """The ``k`` best passages by the configured retrieval (hybrid or dense)."""
        if self.settings.retrieval == "hybrid":
            return self.store.hybrid_search(question, k)
        return self.store.search(question, k)

    @cached_property
    def summaries(self) -> Summaries:
        """Per-document summaries for overview questions (``summaries.json`` next to the
        index, or in ``cache_dir`` when a Chroma server holds the index)."""
        s = self.settings
        folder = s.cache_dir if s.chroma_host else s.index_dir
        return Summaries(folder / f"summaries-{s.collection}.json", self._summarize)

    def from_index(self, question: str, shape: Shape) -> list[Sentence] | None:
        """Answer sentences the index itself gives, without the LLM: document summaries for an
        overview, the documents that mention a term for "which documents mention X?"; None
        when the question is not one of those (the chain then asks the LLM)."""
        if shape == "overview":
            return self.overview(question)
        if shape == "list" and (term := mention_topic(question)):
            return self.mentioning(term)
        return None

    def mentioning(self, term: str) -> list[Sentence]:
        """One sentence per document whose passages hold every word of ``term``, citing the
        passage (from the best ``MENTION_POOL`` search hits)."""
        return mentioning(term, [neutral_hit(h) for h in self.search(term, MENTION_POOL)])

    def overview(self, question: str) -> list[Sentence] | None:
        """Sentences from the summaries of the documents an overview question is about: all
        of them, or those it names ("Summarize the article about steam engines"). None when
        every document fits the LLM's context, or the question names no document but a topic
        ("Summarize how the war ended"): the passages answer those."""
        if self.whole_corpus() is not None:
            return None
        return overview(question, self.store.all_chunks(), self.search, self.summaries)
