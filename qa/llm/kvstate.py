"""Saved llama.cpp prompt states (KV caches), in RAM and on disk.

A long fixed prompt prefix (system prompt, worked examples, a whole small corpus) costs ~45 s
to compute on a 2-core CPU, and every restart, worker or test process used to pay it again.
:class:`StateStore` keeps the KV cache of such prefixes in files, shared by restarts and by
several workers (in RAM, :mod:`qa.llm.engine` keeps them as pinned sequences of the live cache).

A state is only ever used for a prompt that *starts with* the exact token ids it was computed
from, by the same model file (sha256) and the same llama.cpp build: the KV cache of a token
prefix is a function of those alone, so a changed corpus, prompt or model can never reuse a
stale state. Files are written atomically (temporary file, fsync, rename) and carry a magic,
a format version, the identity they belong to and a sha256 of their content: a foreign,
truncated or corrupt file is detected, deleted and rebuilt, never loaded.

Disk cost: one token's KV cache is ``2 x layers x kv_heads x head_dim`` f16 values, i.e.
28 KiB for Qwen2.5-1.5B (28.7 MB per 1,000 prompt tokens) and 12 KiB for the 0.5B.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import logging
import os
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAGIC = b"QAKVSTAT"
VERSION = 1
_HEADER = struct.Struct("<8sIIQ32s")  # magic, version, n_tokens, data bytes, identity
_DIGEST = 32
WORTH_SAVING = 256
"""Prefixes shorter than this many tokens are recomputed rather than saved (a few seconds)."""


@dataclass(frozen=True)
class KVState:
    """The KV cache of one llama.cpp sequence and the token ids it was computed from."""

    tokens: tuple[int, ...]
    data: bytes


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading token ids ``a`` and ``b`` share."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def read_sequence(ctx: Any, seq_id: int) -> bytes:
    """The KV cache of sequence ``seq_id`` (``llama_state_seq_get_data``: no logits)."""
    import llama_cpp

    size = llama_cpp.llama_state_seq_get_size(ctx, seq_id)
    buf = (ctypes.c_uint8 * size)()
    n = llama_cpp.llama_state_seq_get_data(ctx, buf, size, seq_id)
    return bytes(buf)[:n]


def write_sequence(ctx: Any, seq_id: int, data: bytes) -> bool:
    """Replace sequence ``seq_id``'s KV cache with ``data``; False if llama.cpp refused it
    (the sequence is then empty)."""
    import llama_cpp

    buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
    return llama_cpp.llama_state_seq_set_data(ctx, buf, len(data), seq_id) > 0


def build_identity(model_sha256: str) -> str:
    """What a state depends on besides its tokens: the model file and the llama.cpp build
    (library version and the CPU features it was compiled for)."""
    import llama_cpp

    system = llama_cpp.llama_print_system_info().decode(errors="replace")
    text = f"{model_sha256}\n{llama_cpp.__version__}\n{system}"
    return hashlib.sha256(text.encode()).hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file (for a model given by path; shipped models carry theirs)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class _Entry:
    path: Path
    tokens: tuple[int, ...]


class StateStore:
    """Prefix states in a folder, one file per (identity, token prefix), shared by processes.

    ``find`` returns the longest saved prefix of a prompt; ``save`` writes one atomically and
    keeps the ``keep`` most recently used files. Readers never see a partial file (writers
    rename a complete temporary file into place); two workers saving the same prefix write the
    same bytes, and the last rename wins.
    """

    def __init__(self, folder: Path, identity: str, keep: int = 4) -> None:
        self.folder = folder
        self.identity = identity
        self.keep = keep
        self._ident = bytes.fromhex(identity)
        self._headers: dict[Path, tuple[int, int, tuple[int, ...] | None]] = {}
        self._lock = threading.Lock()

    def path_for(self, tokens: Sequence[int]) -> Path:
        """The file name of a state: a hash of the identity and the exact token ids."""
        digest = hashlib.sha256(self._ident + struct.pack(f"<{len(tokens)}i", *tokens))
        return self.folder / f"kv-{digest.hexdigest()[:24]}.bin"

    def _entries(self) -> list[_Entry]:
        """The saved states of this identity (headers are read once per file version). Files
        of another identity (another model or build, maybe another worker's) are left alone;
        broken ones are deleted."""
        entries = []
        for path in sorted(self.folder.glob("kv-*.bin")):
            try:
                st = path.stat()
                cached = self._headers.get(path)
                if cached is None or cached[:2] != (st.st_mtime_ns, st.st_size):
                    cached = (st.st_mtime_ns, st.st_size, self._read_tokens(path))
                    self._headers[path] = cached
            except OSError:  # deleted meanwhile by another worker
                continue
            if cached[2] is not None:
                entries.append(_Entry(path, cached[2]))
        return entries

    def _read_tokens(self, path: Path) -> tuple[int, ...] | None:
        """The token ids of a state file of this identity; None for another identity's file,
        and for a broken one, which is deleted."""
        with path.open("rb") as f:
            head = f.read(_HEADER.size)
            magic, version, n_tokens, _, ident = _HEADER.unpack(head.ljust(_HEADER.size, b"\0"))
            if (magic, version) == (MAGIC, VERSION) and ident != self._ident:
                return None
            size = path.stat().st_size
            if (magic, version) == (MAGIC, VERSION) and 4 * n_tokens <= size:
                raw = f.read(4 * n_tokens)
                if len(raw) == 4 * n_tokens:
                    return struct.unpack(f"<{n_tokens}i", raw)
        log.warning("Discarding the unreadable prompt state %s (it will be rebuilt)", path)
        with contextlib.suppress(OSError):
            path.unlink()
        return None

    def find(self, tokens: Sequence[int], longer_than: int = 0) -> KVState | None:
        """The longest saved state whose tokens start ``tokens`` exactly and number more than
        ``longer_than`` (what the caller holds already), checksum verified; a broken file is
        deleted on the way."""
        with self._lock:
            fitting = [
                e
                for e in self._entries()
                if len(e.tokens) > longer_than and tuple(tokens[: len(e.tokens)]) == e.tokens
            ]
            for entry in sorted(fitting, key=lambda e: -len(e.tokens)):
                state = self._load(entry.path)
                if state is not None and state.tokens == entry.tokens:
                    with contextlib.suppress(OSError):
                        os.utime(entry.path)  # most recently used: kept longest
                    return state
        return None

    def covers(self, tokens: Sequence[int]) -> bool:
        """Whether a saved state is a prefix of ``tokens`` within ``WORTH_SAVING`` tokens of
        its length (saving ``tokens`` too would gain little)."""
        with self._lock:
            return any(
                tuple(tokens[: len(e.tokens)]) == e.tokens
                and len(tokens) - len(e.tokens) < WORTH_SAVING
                for e in self._entries()
            )

    def shared_with_others(self, tokens: Sequence[int]) -> int:
        """The longest prefix ``tokens`` shares with a saved state of another prompt."""
        with self._lock:
            entries = self._entries()
        others = [common_prefix(e.tokens, tokens) for e in entries if e.tokens != tuple(tokens)]
        return max(others, default=0)

    def _load(self, path: Path) -> KVState | None:
        """Read and verify one file; delete it if it is truncated or corrupt."""
        try:
            blob = path.read_bytes()
        except OSError:
            return None
        state = _decode(blob, self._ident)
        if state is None:
            log.warning("Discarding the broken prompt state %s (it will be rebuilt)", path)
            self.discard(path)
        return state

    def discard(self, path: Path) -> None:
        """Delete a state file (broken, or refused by llama.cpp)."""
        with contextlib.suppress(OSError):
            path.unlink()
        self._headers.pop(path, None)

    def save(self, state: KVState) -> bool:
        """Write ``state`` atomically; False (and the previous files untouched) if the disk
        refused it, e.g. when it is full."""
        target = self.path_for(state.tokens)
        tmp = target.with_name(f".{target.name}.{os.getpid()}-{threading.get_ident()}.tmp")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                _write_all(f, _encode(state, self._ident))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
            _fsync_dir(self.folder)
        except OSError as err:
            with contextlib.suppress(OSError):
                tmp.unlink()
            log.warning("Could not save the prompt state to %s: %s", target, err)
            return False
        self._evict()
        return True

    def _evict(self) -> None:
        """Keep the ``keep`` most recently used files of this identity."""
        with self._lock:
            entries = self._entries()
        by_age = sorted(entries, key=lambda e: _mtime(e.path), reverse=True)
        for entry in by_age[self.keep :]:
            self.discard(entry.path)


def _encode(state: KVState, ident: bytes) -> bytes:
    n = len(state.tokens)
    body = (
        _HEADER.pack(MAGIC, VERSION, n, len(state.data), ident)
        + struct.pack(f"<{n}i", *state.tokens)
        + state.data
    )
    return body + hashlib.sha256(body).digest()


def _decode(blob: bytes, ident: bytes) -> KVState | None:
    """The state in ``blob``; None unless magic, version, identity, length and checksum hold."""
    if len(blob) < _HEADER.size + _DIGEST:
        return None
    magic, version, n_tokens, n_data, file_ident = _HEADER.unpack_from(blob)
    if magic != MAGIC or version != VERSION or file_ident != ident:
        return None
    end = _HEADER.size + 4 * n_tokens + n_data
    if len(blob) != end + _DIGEST or hashlib.sha256(blob[:end]).digest() != blob[end:]:
        return None
    tokens = struct.unpack_from(f"<{n_tokens}i", blob, _HEADER.size)
    return KVState(tokens, blob[_HEADER.size + 4 * n_tokens : end])


def _write_all(f: Any, data: bytes) -> None:
    """Write ``data`` in 16 MiB blocks (a full disk fails part-way; the caller cleans up)."""
    view = memoryview(data)
    for start in range(0, len(view), 1 << 24):
        f.write(view[start : start + (1 << 24)])


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0
