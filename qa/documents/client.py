"""Reaching the index: Chroma's client (embedded in ``index/`` or a server), the lock that
serializes index runs, and the fingerprint of what the stored vectors depend on.

A server that accepts but never answers would hang chromadb's own client, and two processes
indexing at once would each build half an index; this module turns both into a bounded wait or
a message that says what to do.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import chromadb
import httpx
from chromadb.config import Settings as ChromaSettings

from qa.config import Settings
from qa.errors import BackendError, IndexNotFoundError


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
    try:
        return chromadb.PersistentClient(path=str(settings.index_dir), settings=chroma_settings)
    # A damaged chroma.sqlite3 raises chromadb's InternalError the first time; later attempts in
    # the same process fail in other ways (chromadb caches the half-stopped client).
    except Exception as err:
        raise IndexNotFoundError(
            f"The index in {settings.index_dir}/ is damaged ({err}); delete that folder and run "
            "`qa index` to rebuild it"
        ) from err


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


def lock_path(settings: Settings) -> Path:
    """The lock file that serializes index runs: in the index folder, or for a Chroma server
    under ``cache_dir``, one per server and collection."""
    if settings.chroma_host:
        key = f"{settings.chroma_host}-{settings.chroma_port}-{settings.collection}"
        return settings.cache_dir / "locks" / f"{re.sub(r'[^A-Za-z0-9.-]', '_', key)}.lock"
    return settings.index_dir / ".qa-index.lock"


@contextmanager
def index_lock(settings: Settings, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the index lock (an ``flock``, released by the OS if the process dies).

    If another run holds it, ``on_wait`` gets a message naming its pid, then this waits for it.
    """
    path = lock_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as file:  # "a+": opening must not erase the holder's pid
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or "unknown"
            if on_wait:
                on_wait(f"Another qa index is running (pid {holder}); waiting for it to finish…")
            fcntl.flock(file, fcntl.LOCK_EX)
        file.truncate(0)
        file.write(str(os.getpid()))
        file.flush()
        try:
            yield
        finally:
            file.truncate(0)
            fcntl.flock(file, fcntl.LOCK_UN)
