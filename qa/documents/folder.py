"""What one indexing run reads and what it may replace: the documents folder, or the files and
folders a user named, against the sources already indexed."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from qa.config import Settings
from qa.documents.ingest import load_chunks, source_path
from qa.errors import QAError
from qa.passages import Chunk


def read_documents(
    settings: Settings, paths: Sequence[Path] | None
) -> tuple[list[Chunk], list[str]]:
    """The chunks of the documents to index (``paths``, or the whole documents folder), and
    the reasons files were skipped."""
    chunks: list[Chunk] = []
    skipped: list[str] = []
    for item in load_chunks(
        settings.seeds_dir,
        paths=paths,
        chunk_size=settings.chunk_size,
        chunk_overlap=settings.chunk_overlap,
        max_bytes=int(settings.max_file_mb * 1e6),
    ):
        if isinstance(item, QAError):
            skipped.append(str(item))
        else:
            chunks.append(item)
    return chunks, skipped


def in_scope(source: str, root: Path, paths: Sequence[Path] | None) -> bool:
    """Whether indexing ``paths`` (None: the documents folder ``root``) may replace
    ``source``."""
    path = source_path(source, root)
    if not path.exists():
        return True
    if paths is None:
        return not Path(source).is_absolute()
    full = Path(os.path.abspath(path))
    return any(full.is_relative_to(os.path.abspath(p)) for p in paths)


def named(source: str, root: Path, paths: Sequence[Path]) -> bool:
    """Whether ``paths`` name ``source`` (the file itself or a folder holding it)."""
    full = Path(os.path.abspath(source_path(source, root)))
    return any(full.is_relative_to(os.path.abspath(p)) for p in paths)
