from __future__ import annotations

from pathlib import Path

import pytest

from qa.errors import UnsupportedFileError
from qa.ingest import chunk_id, find_documents, load_chunks, read_text, split_text

from .conftest import SEED


def test_chunk_offsets_point_at_the_chunk_text() -> None:
    text = SEED.read_text()
    chunks = split_text(text, source="seed.txt", chunk_size=300, chunk_overlap=60)
    assert len(chunks) > 10
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert len(c.text) <= 300


def test_chunks_end_on_sentence_boundaries_when_possible() -> None:
    text = "First sentence here. " * 5 + "Second part ends now. " * 5
    chunks = split_text(text, source="s.txt", chunk_size=70, chunk_overlap=0)
    assert all(c.text.endswith(".") for c in chunks)


def test_ids_are_stable_and_depend_on_source_and_text() -> None:
    a = split_text("One. Two.", source="a.txt", chunk_size=100, chunk_overlap=0)
    b = split_text("One. Two.", source="a.txt", chunk_size=100, chunk_overlap=0)
    assert [c.id for c in a] == [c.id for c in b]
    assert chunk_id("a.txt", "x") != chunk_id("b.txt", "x")


def test_metadata_has_source_title_and_offsets() -> None:
    (chunk,) = split_text("# Title\n\nBody.", source="d.md", chunk_size=100, chunk_overlap=0)
    assert chunk.metadata == {"source": "d.md", "chunk": 0, "start": 0, "end": 14, "title": "Title"}


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.txt", b"   \n", "empty"),
        ("blob.txt", b"\x00\x01\x02binary", "binary"),
        ("big.txt", b"x" * 2000, "limit"),
        ("image.png", b"\x89PNG", "unsupported"),
    ],
)
def test_bad_files_are_refused_with_a_reason(
    tmp_path: Path, name: str, content: bytes, reason: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UnsupportedFileError, match=reason):
        read_text(path, max_bytes=1000)


def test_non_utf8_text_is_read_not_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("café au lait".encode("latin-1"))
    assert read_text(path, max_bytes=1000).startswith("caf")


def test_load_chunks_reports_bad_files_and_keeps_going(tmp_path: Path) -> None:
    (tmp_path / "good.txt").write_text("Good text.")
    (tmp_path / "bad.txt").write_text("")
    (tmp_path / "pic.jpg").write_bytes(b"\xff\xd8")
    items = list(load_chunks(tmp_path, chunk_size=100, chunk_overlap=0, max_bytes=10_000))
    errors = [str(i) for i in items if isinstance(i, UnsupportedFileError)]
    chunks = [i for i in items if not isinstance(i, UnsupportedFileError)]
    assert [c.source for c in chunks] == ["good.txt"]
    assert any("pic.jpg" in e for e in errors) and any("bad.txt" in e for e in errors)


def test_find_documents_expands_folders_and_skips_hidden(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.md").write_text("a")
    (tmp_path / ".hidden.txt").write_text("h")
    found, skipped = find_documents([tmp_path])
    assert [p.name for p in found] == ["a.md"] and skipped == []
