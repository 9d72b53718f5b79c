"""The lexical half of hybrid retrieval: BM25 over the stored chunks, and reciprocal rank fusion
of its ranking with the dense one.

BM25 finds the exact names and numbers a question repeats, which embeddings can rank low;
fusing by rank, not score, needs no calibration between the two (dense vs hybrid is measured by
``bench/retrieval.py``). Split from ``qa/documents/store.py``, which holds the Chroma side.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qa.passages import Chunk

RRF_K = 60  # the usual reciprocal-rank-fusion constant: damps the weight of the very top ranks


def fuse(rankings: Sequence[Sequence[Chunk]], k: int) -> list[tuple[Chunk, float]]:
    """Reciprocal rank fusion: each ranking adds ``1 / (RRF_K + rank)`` to a chunk's score;
    the ``k`` best (chunk, score) pairs, best first."""
    scores: dict[str, float] = {}
    chunks: dict[str, Chunk] = {}
    for ranking in rankings:
        for rank, chunk in enumerate(ranking, 1):
            scores[chunk.id] = scores.get(chunk.id, 0.0) + 1.0 / (RRF_K + rank)
            chunks[chunk.id] = chunk
    best = sorted(scores, key=lambda id_: -scores[id_])[:k]
    return [(chunks[id_], scores[id_]) for id_ in best]


class LexicalIndex:
    """BM25 (bm25s, English stop words and Snowball stemming) over a fixed list of chunks."""

    def __init__(self, chunks: Sequence[Chunk]) -> None:
        import bm25s
        import Stemmer

        self.chunks = list(chunks)
        self._bm25s = bm25s
        self._stemmer = Stemmer.Stemmer("english")
        self._retriever = bm25s.BM25()
        self._retriever.index(self._tokenize([c.text for c in self.chunks]), show_progress=False)

    def _tokenize(self, texts: list[str]) -> Any:
        return self._bm25s.tokenize(
            texts, stopwords="en", stemmer=self._stemmer, show_progress=False
        )

    def search(self, query: str, k: int) -> list[Chunk]:
        """Up to ``k`` chunks sharing terms with ``query``, best first."""
        tokens = self._tokenize([query])
        if not self.chunks or not tokens.ids[0]:
            return []
        ids, scores = self._retriever.retrieve(
            tokens, k=min(k, len(self.chunks)), show_progress=False
        )
        return [self.chunks[i] for i, s in zip(ids[0], scores[0], strict=True) if s > 0]
