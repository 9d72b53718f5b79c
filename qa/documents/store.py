"""The Chroma vector store: embedded in ``index/`` by default, or a Chroma server."""

from __future__ import annotations

import functools
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import httpx
from chromadb.errors import NotFoundError
from langchain_chroma import Chroma
from langchain_core.embeddings import Embeddings

from qa.config import Settings
from qa.documents.client import fingerprint, open_client
from qa.documents.lexical import LexicalIndex, fuse
from qa.errors import BackendError, IndexNotFoundError
from qa.passages import Chunk, Flag, Hit, flags_from_metadata
from qa.trust.guard import InjectionModel, detect, shipped_model

_BATCH = 64  # chunks embedded per call
_COPY_BATCH = 1000  # stored chunks copied per call into a new build
_P = ParamSpec("_P")
_R = TypeVar("_R")


@dataclass(frozen=True)
class DocumentInfo:
    """One indexed document: its source name, chunk count, title, when it was indexed (ISO
    time of its newest chunk; empty for chunks indexed before qa recorded it) and how many
    spans of it read as instructions to an AI assistant (``qa.trust.guard``; 0: none found)."""

    source: str
    chunks: int
    title: str = ""
    indexed_at: str = ""
    flagged: int = 0

    @property
    def type(self) -> str:
        """The file type from its suffix, e.g. ``pdf``."""
        return Path(self.source).suffix.lower().lstrip(".")


def _backend_errors(
    method: Callable[Concatenate[Store, _P], _R],
) -> Callable[Concatenate[Store, _P], _R]:
    """A Chroma server lost mid-session raises httpx errors; report them as a BackendError.

    A collection deleted under a read (another process re-indexed and dropped the collection
    this one was reading) is retried once on the collection that is live now.
    """

    @functools.wraps(method)
    def call(self: Store, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            try:
                return method(self, *args, **kwargs)
            except NotFoundError:
                self._forget_live()
                return method(self, *args, **kwargs)
        except httpx.HTTPError as err:
            raise BackendError(
                f"Lost {self.location} ({type(err).__name__}); restart it with `chroma run "
                f"--path index --port {self.settings.chroma_port}` and retry"
            ) from err

    return call


class Store:
    """Chunks in a Chroma collection, kept in step with the documents on disk.

    A live collection is never modified, which makes indexing crash-safe. Each :meth:`sync`
    that changes something builds a complete new collection ``<collection>__build_<time>_<id>``
    (unchanged chunks are copied with their stored vectors, only new chunks are embedded), then
    flips a pointer, the metadata of the small ``<collection>__active`` collection (one atomic
    write, in embedded and in server mode), and only then deletes the older builds. A process
    killed before the flip leaves the previous index live; its half-built collection is deleted
    by the next index run. Readers re-read the pointer on every call, so a re-index by another
    process is seen at the next question, and they only ever load finished collections.

    Writers (:meth:`sync`) must hold :func:`index_lock`.
    """

    def __init__(
        self, settings: Settings, embeddings: Embeddings, guard: InjectionModel | None = None
    ) -> None:
        self.settings = settings
        self._guard = guard or shipped_model()
        self.client = open_client(settings)
        self._embeddings = embeddings
        self._fingerprint = fingerprint(settings)
        self._pointer = f"{settings.collection}__active"
        self._build_prefix = f"{settings.collection}__build_"
        self._live_name: str | None = None
        self._db: Chroma | None = None
        self._foreign = False  # the live collection was built with other settings
        self._lexical: LexicalIndex | None = None

    def _live(self) -> Chroma | None:
        """The collection the pointer names (re-read on every call); None if nothing usable is
        indexed."""
        name = self._read_pointer()
        if name != self._live_name or self._db is None:
            self._live_name, self._db, self._lexical = name, self._open(name), None
        return self._db

    def _forget_live(self) -> None:
        self._live_name, self._db, self._lexical = None, None, None

    def _read_pointer(self) -> str:
        return str(self._pointer_meta().get("live", self.settings.collection))

    def _pointer_meta(self) -> dict[str, Any]:
        try:
            return dict(self.client.get_collection(self._pointer).metadata or {})
        except NotFoundError:
            return {}  # an index built before the pointer existed

    @_backend_errors
    def excluded(self) -> set[str]:
        """Sources removed from the index whose files were kept: indexing the documents folder
        skips them until they are indexed by name again. Kept in the pointer's metadata, so
        the list changes in the same atomic write that makes a collection live."""
        return set(json.loads(str(self._pointer_meta().get("excluded", "[]"))))

    @property
    def live_name(self) -> str:
        """The name of the live collection; changes with every index change (an index
        version for feedback records)."""
        return self._read_pointer()

    def _open(self, name: str) -> Chroma | None:
        try:
            meta = self.client.get_collection(name).metadata or {}
        except NotFoundError:
            self._foreign = False
            return None
        self._foreign = meta.get("qa_fingerprint") != self._fingerprint
        if self._foreign:
            return None  # vectors from another model or chunking: the next sync rebuilds
        return Chroma(
            client=self.client,
            collection_name=name,
            embedding_function=self._embeddings,
            create_collection_if_not_exists=False,
        )

    @property
    def location(self) -> str:
        """Where the index lives, for messages: ``index/`` or ``the Chroma server at host:port``."""
        if self.settings.chroma_host:
            return f"the Chroma server at {self.settings.chroma_host}:{self.settings.chroma_port}"
        return f"{self.settings.index_dir}/"

    @_backend_errors
    def count(self) -> int:
        """Number of chunks stored."""
        db = self._live()
        return db._collection.count() if db else 0

    @_backend_errors
    def sources(self) -> dict[str, int]:
        """Chunks per source document."""
        db = self._live()
        metas = _get_all(db, ["metadatas"])["metadatas"] if db else []
        counts: dict[str, int] = {}
        for meta in metas:
            counts[str(meta["source"])] = counts.get(str(meta["source"]), 0) + 1
        return counts

    @_backend_errors
    def chunk_ids(self) -> set[str]:
        """Every stored chunk's id (read without the texts)."""
        db = self._live()
        return set(_get_all(db, [])["ids"]) if db else set()

    def signature(self) -> str:
        """What the stored text is: a hash of every chunk's id (ids hash source and text), so
        it changes when any document is added, changed or removed ("" when nothing is)."""
        ids = sorted(self.chunk_ids())
        return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16] if ids else ""

    @_backend_errors
    def documents(self) -> list[DocumentInfo]:
        """Every indexed document, by source name."""
        db = self._live()
        metas = _get_all(db, ["metadatas"])["metadatas"] if db else []
        found: dict[str, dict[str, Any]] = {}
        for meta in metas:
            doc = found.setdefault(
                str(meta["source"]), {"chunks": 0, "title": "", "at": "", "flagged": 0}
            )
            doc["chunks"] += 1
            doc["title"] = doc["title"] or str(meta.get("title", ""))
            doc["at"] = max(doc["at"], str(meta.get("indexed_at", "")))
            doc["flagged"] += len(flags_from_metadata(meta))
        return [
            DocumentInfo(name, d["chunks"], d["title"], d["at"], d["flagged"])
            for name, d in sorted(found.items())
        ]

    @_backend_errors
    def sync(
        self,
        chunks: Sequence[Chunk],
        *,
        replace_sources: set[str] | None = None,
        progress: Callable[[int, int], None] | None = None,
        excluded: set[str] | None = None,
    ) -> tuple[int, int, int]:
        """Make the stored chunks of ``replace_sources`` (default: all) equal to ``chunks``.

        ``excluded`` (if given) replaces the list of :meth:`excluded` sources, in the same
        write that makes the new collection live.

        Returns (added, removed, unchanged). Unchanged chunks are not re-embedded; if nothing
        changed, no collection is written.
        """
        db = self._live()
        stored = _get_all(db, ["metadatas"]) if db else {"ids": [], "metadatas": []}
        in_scope = {
            id_
            for id_, meta in zip(stored["ids"], stored["metadatas"], strict=True)
            if replace_sources is None or meta["source"] in replace_sources
        }
        wanted = {c.id: c for c in chunks}
        new = [c for id_, c in wanted.items() if id_ not in in_scope]
        stale = in_scope - wanted.keys()
        pointer = self._pointer_meta()
        if excluded is not None:
            pointer["excluded"] = json.dumps(sorted(excluded))
        # Chunks flagged by an older detector (or none) get this one's flags in a new build;
        # their vectors are copied, not re-embedded.
        reflag = any(m.get("guard") != self._guard.version for m in stored["metadatas"])
        if new or stale or reflag:
            kept = [id_ for id_ in stored["ids"] if id_ not in stale]
            pointer["live"] = self._build(db, kept, new, progress)
        if excluded is not None or new or stale or reflag:
            self.client.get_or_create_collection(self._pointer).modify(metadata=pointer)
        self._drop_builds()
        return len(new), len(stale), len(wanted) - len(new)

    def _build(
        self,
        db: Chroma | None,
        kept: list[str],
        new: list[Chunk],
        progress: Callable[[int, int], None] | None,
    ) -> str:
        """Write ``kept`` (copied from ``db``) and ``new`` chunks into a new collection; returns
        its name (the caller makes it live)."""
        name = f"{self._build_prefix}{time.strftime('%Y%m%d%H%M%S')}_{uuid.uuid4().hex[:8]}"
        build = self.client.create_collection(
            name,
            metadata={
                "hnsw:space": "cosine",
                "qa_fingerprint": self._fingerprint,
                "embedding_model": self.settings.embedding_model,
            },
        )
        for i in range(0, len(kept), _COPY_BATCH):
            assert db is not None
            got = db._collection.get(
                ids=kept[i : i + _COPY_BATCH], include=["embeddings", "documents", "metadatas"]
            )
            chunks = [
                _to_chunk(*row)
                for row in zip(got["ids"], got["documents"], got["metadatas"], strict=True)
            ]
            version = self._guard.version
            stale = [
                c
                for c, m in zip(chunks, got["metadatas"], strict=True)
                if m.get("guard") != version
            ]
            flagged = self._flag(stale)
            build.add(
                ids=got["ids"],
                embeddings=got["embeddings"],
                documents=got["documents"],
                metadatas=[
                    {
                        **{k: v for k, v in meta.items() if k != "flags"},
                        **flagged[c.id].metadata,
                        "guard": version,
                    }
                    if c.id in flagged
                    else meta
                    for c, meta in zip(chunks, got["metadatas"], strict=True)
                ],
            )
        now = datetime.now(UTC).isoformat(timespec="seconds")
        flagged = self._flag(new)
        for i in range(0, len(new), _BATCH):
            batch = [flagged[c.id] for c in new[i : i + _BATCH]]
            texts = [c.text for c in batch]
            build.add(
                ids=[c.id for c in batch],
                embeddings=self._embeddings.embed_documents(texts),
                documents=texts,
                metadatas=[
                    {**c.metadata, "indexed_at": now, "guard": self._guard.version} for c in batch
                ],
            )
            if progress:
                progress(i + len(batch), len(new))
        return name

    def _flag(self, chunks: list[Chunk]) -> dict[str, Chunk]:
        return {c.id: c for c in flag_chunks(chunks, self._guard)}

    def _drop_builds(self) -> None:
        """Delete every build but the live one: replaced ones, and half-built ones left by a
        killed run (safe under :func:`index_lock`: no other build is in progress)."""
        live = self._read_pointer()
        for collection in self.client.list_collections():
            name = collection.name
            old = name.startswith(self._build_prefix) or name == self.settings.collection
            if old and name != live:
                self.client.delete_collection(name)

    def _require_chunks(self) -> int:
        count = self.count()
        if count == 0 and self._foreign:
            raise IndexNotFoundError(
                f"The index in {self.location} was built with another embedding model or "
                "chunking (QA_EMBEDDING_MODEL, QA_CHUNK_SIZE, QA_CHUNK_OVERLAP); run `qa index` "
                "to rebuild it"
            )
        if count == 0:
            raise IndexNotFoundError(
                f"The index in {self.location} is empty; run `qa index` to index "
                f"the documents in {self.settings.seeds_dir}/"
            )
        return count

    @_backend_errors
    def hybrid_search(self, query: str, k: int, pool: int = 20) -> list[Hit]:
        """The ``k`` best chunks by fusing the dense and BM25 rankings of the top ``pool``.

        The BM25 index is built in memory from the stored chunks and rebuilt whenever the live
        collection changes (a re-index by this or another process).
        """
        self._require_chunks()
        lexical = self._lexical
        if lexical is None:
            lexical = self._lexical = LexicalIndex(self.all_chunks())
        pool = max(pool, k)
        dense = [h.chunk for h in self._dense(query, pool)]
        return [Hit(c, score) for c, score in fuse([dense, lexical.search(query, pool)], k)]

    @_backend_errors
    def search(self, query: str, k: int) -> list[Hit]:
        """The ``k`` chunks most similar to ``query`` (dense embeddings), best first."""
        self._require_chunks()
        return self._dense(query, k)

    def _dense(self, query: str, k: int) -> list[Hit]:
        assert self._db is not None
        results = self._db.similarity_search_with_score(query, k=k)
        return [
            Hit(_to_chunk(doc.id or "", doc.page_content, doc.metadata), 1.0 - dist)
            for doc, dist in results
        ]

    @_backend_errors
    def all_chunks(self) -> list[Chunk]:
        """Every stored chunk, in document order."""
        db = self._live()
        if db is None:
            return []
        got = _get_all(db, ["documents", "metadatas"])
        chunks = [
            _to_chunk(id_, text, meta)
            for id_, text, meta in zip(got["ids"], got["documents"], got["metadatas"], strict=True)
        ]
        return sorted(chunks, key=lambda c: (c.source, c.n))


def flag_chunks(chunks: Sequence[Chunk], guard: InjectionModel | None = None) -> list[Chunk]:
    """``chunks`` with the flags ``qa.trust.guard.detect`` finds in them. A flag also marks the
    overlapping part of the same document's other chunks in the list: a sentence cut by the
    chunk overlap is judged where it is whole, not by its tail alone."""
    found = [detect(c.text, guard) for c in chunks]
    spans: dict[str, list[tuple[int, int, Flag]]] = {}
    for c, flags in zip(chunks, found, strict=True):
        spans.setdefault(c.source, []).extend(
            (c.start + f.start, c.start + f.end, f) for f in flags
        )
    out = []
    for c, own in zip(chunks, found, strict=True):
        flags = list(own)
        for start, end, f in spans.get(c.source, []):
            a, b = max(start, c.start) - c.start, min(end, c.end) - c.start
            if a < b and not any(g.start <= a and b <= g.end for g in flags):
                flags.append(Flag(a, b, f.score, f.reason))
        out.append(replace(c, flags=tuple(sorted(flags, key=lambda f: (f.start, f.end)))))
    return out


_PAGE = 5000  # one get() of a 100k-chunk collection fails in SQLite: "too many SQL variables"


def _get_all(db: Chroma, include: list[str]) -> dict[str, list]:
    """Every stored record's ids and ``include`` fields, read page by page."""
    got: dict[str, list] = {"ids": [], **{key: [] for key in include}}
    while True:
        page = db.get(include=include, limit=_PAGE, offset=len(got["ids"]))
        for key in got:
            got[key] += page[key]
        if len(page["ids"]) < _PAGE:
            return got


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
        flags=flags_from_metadata(meta),
    )
