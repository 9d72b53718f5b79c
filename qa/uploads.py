"""Uploaded documents into the documents folder and the index, with the indexer's own checks.

Shared by the browser's upload box (:mod:`qa.ui.panels`) and ``POST /v1/documents``
(:mod:`qa.api`), so a file refused in one is refused in the other. What it guards against: a
file the indexer would skip (type, size, empty, binary) is refused before anything is copied;
an upload cannot land outside the folder (only its base name is kept) nor overwrite another
file of the same name (it gets a ``-1`` suffix); and when indexing fails the copied files are
removed again, so the folder never holds documents the index does not.
"""

from __future__ import annotations

import filecmp
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from qa.documents.ingest import read_text
from qa.errors import UnsupportedFileError

if TYPE_CHECKING:
    from qa.answer import IndexReport
    from qa.assistant import Assistant


@dataclass
class Upload:
    """What :func:`add_uploads` did: names added (``"x-1.md (renamed from x.md)"``, ``"x.md
    (already there)"``), reasons files were refused, and the index run (None if nothing was
    left to index)."""

    added: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    report: IndexReport | None = None


def _free_name(folder: Path, name: str) -> Path:
    dest = folder / name
    stem, suffix = dest.stem, dest.suffix
    n = 1
    while dest.exists():
        dest = folder / f"{stem}-{n}{suffix}"
        n += 1
    return dest


def add_uploads(
    assistant: Assistant,
    files: Sequence[str | Path],
    progress: Callable[[int, int], None] | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> Upload:
    """Copy ``files`` into the documents folder and index them (see the module docstring).

    Raises:
        QAError (or any error of indexing): indexing failed; the copies are gone again.
    """
    folder = assistant.settings.seeds_dir
    max_bytes = int(assistant.settings.max_file_mb * 1e6)
    result = Upload()
    copied: list[Path] = []
    present: list[Path] = []  # identical files already in the folder
    for item in files:
        # A path, or a file object of Gradio's whose .name is its path.
        src = Path(item) if isinstance(item, str | Path) else Path(item.name)
        name = src.name  # the base name only: an upload cannot land outside the folder
        if name.startswith("."):
            result.refused.append(
                f"{name}: hidden files are not indexed; rename it without the dot"
            )
            continue
        try:  # the indexer's own check: type, size, empty, binary
            read_text(src, max_bytes=max_bytes)
        except UnsupportedFileError as err:
            result.refused.append(str(err))
            continue
        folder.mkdir(parents=True, exist_ok=True)
        existing = folder / name
        if existing.exists() and filecmp.cmp(src, existing, shallow=False):
            result.added.append(f"{name} (already there)")
            present.append(existing)
            continue
        dest = _free_name(folder, name)
        shutil.copyfile(src, dest)
        copied.append(dest)
        result.added.append(
            dest.name if dest.name == name else f"{dest.name} (renamed from {name})"
        )
    if not result.added:
        return result
    try:
        # By name: a document removed from the index earlier comes back when uploaded again.
        result.report = assistant.index(
            paths=[*copied, *present], progress=progress, on_wait=on_wait
        )
    except BaseException:
        for path in copied:
            path.unlink(missing_ok=True)
        raise
    return result
