"""The Chroma vector store: embedded in ``index/`` by default, or a Chroma server."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

import chromadb
import httpx
from chromadb.config import Settings as ChromaSettings
from langchain_chroma import Chroma
from langchain_core.embeddings import Embeddings

from qa.config import Settings
from qa.errors import BackendError, IndexNotFoundError
from qa.ingest import Chunk

_BATCH = 64
_P = ParamSpec("_P")
_R = TypeVar("_R")


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk and its relevance, higher is better: cosine similarity for dense
    search, the reciprocal-rank-fusion score for hybrid search."""

    chunk: Chunk
    score: float


RRF_K = 60  # the usual reciprocal-rank-fusion constant: damps the weight of the very top ranks


def fuse(rankings: Sequence[Sequence[Chunk]], k: int) -> list[Hit]:
    """Reciprocal rank fusion: each ranking adds ``1 / (RRF_K + rank)`` to a chunk's score."""
    scores: dict[str, float] = {}
    chunks: dict[str, Chunk] = {}
    for ranking in rankings:
        for rank, chunk in enumerate(ranking, 1):
            scores[chunk.id] = scores.get(chunk.id, 0.0) + 1.0 / (RRF_K + rank)
            chunks[chunk.id] = chunk
    best = sorted(scores, key=lambda id_: -scores[id_])[:k]
    return [Hit(chunks[id_], scores[id_]) for id_ in best]


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


def fingerprint(settings: Settings) -> str:
    """What the stored vectors depend on; a change means the index must be rebuilt."""
    spec = {
        "embedding_model": settings.embedding_model,
        "chunk_size": settings.chunk_size,
        "chunk_overlap": settings.chunk_overlap,
        # Bump when readers change the metadata of unchanged text (2: headings, PDF pages).
        "ingest": 2,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def open_client(settings: Settings) -> chromadb.ClientAPI:
    """An embedded client on ``settings.index_dir`` or an HTTP client for a Chroma server."""
    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.chroma_host:
        _check_server(settings.chroma_host, settings.chroma_port, settings.request_timeout)
        return chromadb.HttpClient(
            host=settings.chroma_host, port=settings.chroma_port, settings=chroma_settings
        )
    settings.index_dir.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(settings.index_dir), settings=chroma_settings)


def _check_server(host: str, port: int, timeout: float) -> None:
    # chromadb's own client waits forever on a server that accepts but does not answer, so its
    # liveness is checked first with a bounded wait.
    url = f"http://{host}:{port}/api/v2/heartbeat"
    try:
        httpx.get(url, timeout=timeout).raise_for_status()
    except httpx.HTTPError as err:
        raise BackendError(
            f"Cannot reach the Chroma server at {host}:{port} ({type(err).__name__}); start it "
            f"with `chroma run --path index --port {port}`, or unset QA_CHROMA_HOST to use the "
            "embedded index"
        ) from err


def _server_errors(
    method: Callable[Concatenate[Store, _P], _R],
) -> Callable[Concatenate[Store, _P], _R]:
    """A Chroma server lost mid-session raises httpx errors; report them as a BackendError."""

    @functools.wraps(method)
    def call(self: Store, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(self, *args, **kwargs)
        except httpx.HTTPError as err:
            raise BackendError(
                f"Lost {self.location} ({type(err).__name__}); restart it with `chroma run "
                f"--path index --port {self.settings.chroma_port}` and retry"
            ) from err

    return call


class Store:
    """Chunks in a Chroma collection, kept in step with the documents on disk."""

    def __init__(self, settings: Settings, embeddings: Embeddings) -> None:
        self.settings = settings
        self.client = open_client(settings)
        self._embeddings = embeddings
        self._fingerprint = fingerprint(settings)
        self._db = self._open_collection()
        self._lexical: LexicalIndex | None = None

    def _open_collection(self) -> Chroma:
        name = self.settings.collection
        existing = {c.name for c in self.client.list_collections()}
        if name in existing:
            meta = self.client.get_collection(name).metadata or {}
            if meta.get("qa_fingerprint") != self._fingerprint:
                # Vectors from another model or chunking must not be mixed with new ones.
                self.client.delete_collection(name)
        return Chroma(
            client=self.client,
            collection_name=name,
            embedding_function=self._embeddings,
            collection_metadata={
                "hnsw:space": "cosine",
                "qa_fingerprint": self._fingerprint,
                "embedding_model": self.settings.embedding_model,
            },
        )

    @property
    def location(self) -> str:
        """Where the index lives, for messages: ``index/`` or ``the Chroma server at host:port``."""
        if self.settings.chroma_host:
            return f"the Chroma server at {self.settings.chroma_host}:{self.settings.chroma_port}"
        return f"{self.settings.index_dir}/"

    @_server_errors
    def count(self) -> int:
        """Number of chunks stored."""
        return self._db._collection.count()

    @_server_errors
    def sources(self) -> dict[str, int]:
        """Chunks per source document."""
        metas = self._db.get(include=["metadatas"])["metadatas"]
        counts: dict[str, int] = {}
        for meta in metas:
            counts[str(meta["source"])] = counts.get(str(meta["source"]), 0) + 1
        return counts

    @_server_errors
    def sync(
        self,
        chunks: Sequence[Chunk],
        *,
        replace_sources: set[str] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> tuple[int, int, int]:
        """Make the stored chunks of ``replace_sources`` (default: all) equal to ``chunks``.

        Returns (added, removed, unchanged). Unchanged chunks are not re-embedded.
        """
        stored = self._db.get(include=["metadatas"])
        in_scope = {
            id_
            for id_, meta in zip(stored["ids"], stored["metadatas"], strict=True)
            if replace_sources is None or meta["source"] in replace_sources
        }
        wanted = {c.id: c for c in chunks}
        new = [c for id_, c in wanted.items() if id_ not in in_scope]
        stale = sorted(in_scope - wanted.keys())
        for i in range(0, len(new), _BATCH):
            batch = new[i : i + _BATCH]
            self._db.add_texts(
                [c.text for c in batch],
                metadatas=[c.metadata for c in batch],
                ids=[c.id for c in batch],
            )
            if progress:
                progress(i + len(batch), len(new))
        if stale:
            self._db.delete(ids=stale)
        if new or stale:
            self._lexical = None
        return len(new), len(stale), len(wanted) - len(new)

    def _require_chunks(self) -> int:
        count = self.count()
        if count == 0:
            raise IndexNotFoundError(
                f"The index in {self.location} is empty; run `qa index` to index "
                f"the documents in {self.settings.seeds_dir}/"
            )
        return count

    @_server_errors
    def hybrid_search(self, query: str, k: int, pool: int = 20) -> list[Hit]:
        """The ``k`` best chunks by fusing the dense and BM25 rankings of the top ``pool``.

        The BM25 index is built in memory from the stored chunks and rebuilt whenever this
        store changes them or the stored count differs (another process re-indexed).
        """
        count = self._require_chunks()
        if self._lexical is None or len(self._lexical.chunks) != count:
            self._lexical = LexicalIndex(self.all_chunks())
        pool = max(pool, k)
        dense = [h.chunk for h in self.search(query, pool)]
        return fuse([dense, self._lexical.search(query, pool)], k)

    @_server_errors
    def search(self, query: str, k: int) -> list[Hit]:
        """The ``k`` chunks most similar to ``query`` (dense embeddings), best first."""
        self._require_chunks()
        results = self._db.similarity_search_with_score(query, k=k)
        return [
            Hit(_to_chunk(doc.id or "", doc.page_content, doc.metadata), 1.0 - dist)
            for doc, dist in results
        ]

    @_server_errors
    def all_chunks(self) -> list[Chunk]:
        """Every stored chunk, in document order."""
        got = self._db.get(include=["documents", "metadatas"])
        chunks = [
            _to_chunk(id_, text, meta)
            for id_, text, meta in zip(got["ids"], got["documents"], got["metadatas"], strict=True)
        ]
        return sorted(chunks, key=lambda c: (c.source, c.n))


def _to_chunk(id_: str, text: str, meta: dict) -> Chunk:
    return Chunk(
        id=id_,
        text=text,
        source=str(meta.get("source", "")),
        n=int(meta.get("chunk", 0)),
        start=int(meta.get("start", 0)),
        end=int(meta.get("end", 0)),
        title=str(meta.get("title", "")),
        page=int(meta.get("page", 0)),
    )
