"""Load documents from disk and split them into chunks with stable ids and offsets."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from langchain_text_splitters import RecursiveCharacterTextSplitter

from qa.errors import UnsupportedFileError

SUPPORTED_SUFFIXES = frozenset({".txt", ".md"})

# Paragraphs, then lines, then sentence ends, then words: a chunk breaks mid-sentence only when
# one sentence is longer than chunk_size.
_SEPARATORS = ["\n\n", "\n", r"(?<=[.!?…][\"”’)\]]) ", r"(?<=[.!?…]) ", "; ", ", ", " ", ""]


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

    @property
    def metadata(self) -> dict[str, str | int]:
        return {
            "source": self.source,
            "chunk": self.n,
            "start": self.start,
            "end": self.end,
            "title": self.title,
        }


def chunk_id(source: str, text: str) -> str:
    """Content hash of a chunk: the same text in the same file always gets the same id."""
    return hashlib.sha256(f"{source}\0{text}".encode()).hexdigest()[:32]


def find_documents(paths: Iterable[Path]) -> tuple[list[Path], list[Path]]:
    """Expand files and folders into (supported files, skipped files), sorted."""
    found: list[Path] = []
    skipped: list[Path] = []
    for path in paths:
        candidates = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for p in candidates:
            if p.name.startswith("."):
                continue
            (found if p.suffix.lower() in SUPPORTED_SUFFIXES else skipped).append(p)
    return found, skipped


def read_text(path: Path, *, max_bytes: int) -> str:
    """Read a text document, refusing empty, oversized and binary files with a clear reason."""
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        kinds = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise UnsupportedFileError(f"{path.name}: unsupported file type (supported: {kinds})")
    size = path.stat().st_size
    if size > max_bytes:
        raise UnsupportedFileError(
            f"{path.name}: {size / 1e6:.1f} MB is over the {max_bytes / 1e6:.1f} MB limit "
            "(raise QA_MAX_FILE_MB to index it)"
        )
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        raise UnsupportedFileError(f"{path.name}: looks like a binary file, not text")
    text = data.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise UnsupportedFileError(f"{path.name}: the file is empty")
    return text


def _title(text: str, path: Path) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip().lstrip("#").strip()[:200]
    return path.stem


def split_text(text: str, *, source: str, chunk_size: int, chunk_overlap: int) -> list[Chunk]:
    """Split one document into chunks that keep sentences whole where possible."""
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=chunk_size,
        chunk_overlap=min(chunk_overlap, chunk_size // 2),
        separators=_SEPARATORS,
        is_separator_regex=True,
        keep_separator="end",
        strip_whitespace=True,
    )
    title = _title(text, Path(source))
    chunks: list[Chunk] = []
    cursor = 0
    for piece in splitter.split_text(text):
        # Chunks appear in order; search from just past the previous chunk's start so that
        # repeated passages map to their own occurrence.
        start = text.find(piece, cursor)
        if start < 0:
            start = text.find(piece)
        cursor = start + 1
        chunks.append(
            Chunk(
                id=chunk_id(source, piece),
                text=piece,
                source=source,
                n=len(chunks),
                start=start,
                end=start + len(piece),
                title=title,
            )
        )
    return _dedupe(chunks)


def _dedupe(chunks: list[Chunk]) -> list[Chunk]:
    seen: set[str] = set()
    return [c for c in chunks if not (c.id in seen or seen.add(c.id))]


def load_chunks(
    root: Path, *, chunk_size: int, chunk_overlap: int, max_bytes: int
) -> Iterator[Chunk | UnsupportedFileError]:
    """Yield the chunks of every supported file under ``root``; unreadable files yield errors."""
    files, skipped = find_documents([root])
    for path in skipped:
        yield UnsupportedFileError(f"{path.name}: unsupported file type, skipped")
    for path in files:
        source = path.relative_to(root).as_posix() if root.is_dir() else path.name
        try:
            text = read_text(path, max_bytes=max_bytes)
        except UnsupportedFileError as err:
            yield err
            continue
        yield from split_text(
            text, source=source, chunk_size=chunk_size, chunk_overlap=chunk_overlap
        )
