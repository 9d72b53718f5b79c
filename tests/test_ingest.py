from __future__ import annotations

from pathlib import Path

import pytest

from qa.documents.ingest import (
    chunk_id,
    find_documents,
    load_chunks,
    read_sections,
    read_text,
    source_name,
    split_text,
)
from qa.errors import UnsupportedFileError

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
    (tmp_path / "song.mp3").write_bytes(b"ID3")
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog")
    items = list(load_chunks(tmp_path, chunk_size=100, chunk_overlap=0, max_bytes=10_000))
    errors = [str(i) for i in items if isinstance(i, UnsupportedFileError)]
    chunks = [i for i in items if not isinstance(i, UnsupportedFileError)]
    assert [c.source for c in chunks] == ["good.txt"]
    assert any("bad.txt" in e for e in errors) and any("broken.pdf" in e for e in errors)
    (unsupported,) = [e for e in errors if "unsupported" in e]  # one message lists them all
    assert "pic.jpg" in unsupported and "song.mp3" in unsupported


def test_find_documents_expands_folders_and_skips_hidden(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.md").write_text("a")
    (tmp_path / ".hidden.txt").write_text("h")
    found, skipped, escaping = find_documents([tmp_path])
    assert [p.name for p in found] == ["a.md"] and skipped == escaping == []


def make_pdf(pages: list[str], title: str = "") -> bytes:
    """A minimal valid PDF with one line of Helvetica text per page."""
    n = len(pages)
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(n))
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {n} >>",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, text in enumerate(pages):
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET"
        objects.append(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>"
        )
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
    objects.append(f"<< /Title ({title}) >>")
    out, offsets = b"%PDF-1.4\n", []
    for i, obj in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{obj}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    trailer = f"<< /Size {len(objects) + 1} /Root 1 0 R /Info {len(objects)} 0 R >>"
    return out + f"trailer\n{trailer}\nstartxref\n{xref}\n%%EOF\n".encode()


def _chunks(folder: Path) -> list:
    items = list(load_chunks(folder, chunk_size=200, chunk_overlap=0, max_bytes=100_000))
    assert not [i for i in items if isinstance(i, UnsupportedFileError)], items
    return items


def test_pdf_chunks_carry_their_page_and_the_document_title(tmp_path: Path) -> None:
    pages = ["The ferry crosses every 20 minutes.", "Tickets cost 3 euros."]
    (tmp_path / "ferry.pdf").write_bytes(make_pdf(pages, title="Ferry guide"))
    chunks = _chunks(tmp_path)
    assert [(c.text, c.page, c.title) for c in chunks] == [
        (pages[0], 1, "Ferry guide"),
        (pages[1], 2, "Ferry guide"),
    ]
    assert chunks[1].metadata["page"] == 2


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"just text, not a PDF", "not a PDF"),
        (b"%PDF-1.4\n%%EOF", "damaged"),
        (make_pdf([""]), "no text layer"),
    ],
)
def test_bad_pdfs_are_refused_with_a_reason(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "doc.pdf"
    path.write_bytes(content)
    with pytest.raises(UnsupportedFileError, match=reason):
        read_sections(path, max_bytes=100_000)


def test_html_text_drops_scripts_styles_and_keeps_the_title(tmp_path: Path) -> None:
    (tmp_path / "page.html").write_text(
        "<html><head><title>Ferry times</title><style>p { color: red }</style>"
        "<script>var secret = 1;</script></head><body><h1>Timetable</h1>"
        "<p>The ferry <b>crosses</b> every 20 minutes.<br>Night boats run hourly.</p>"
        "<noscript>Enable JavaScript</noscript><!-- hidden note --></body></html>"
    )
    (chunk,) = _chunks(tmp_path)
    assert chunk.title == "Ferry times"
    assert chunk.text == (
        "Timetable\n\nThe ferry crosses every 20 minutes.\nNight boats run hourly."
    )


def test_markdown_is_split_on_headings_that_become_titles(tmp_path: Path) -> None:
    (tmp_path / "guide.md").write_text(
        "# Guide\n\nIntro.\n\n## Install\n\n```sh\n# a comment, not a heading\n"
        "pip install qa\n```\n\n## Usage\n### Asking\n\nRun qa ask.\n"
    )
    chunks = _chunks(tmp_path)
    assert [c.title for c in chunks] == ["Guide", "Install", "Asking"]
    assert chunks[1].text.startswith("## Install") and "pip install qa" in chunks[1].text
    assert chunks[2].text == "## Usage\n### Asking\n\nRun qa ask."  # empty heading joins


def test_docx_paragraphs_tables_and_headings_are_read(tmp_path: Path) -> None:
    import docx

    doc = docx.Document()
    doc.add_heading("Bakery report", 0)
    doc.add_paragraph("The bakery opened in 1998.")
    doc.add_heading("Sales", 1)
    doc.add_paragraph("It sells 400 loaves a day.")
    table = doc.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "bread", "3 euros"
    doc.save(tmp_path / "report.docx")
    chunks = _chunks(tmp_path)
    assert [c.title for c in chunks] == ["Bakery report", "Sales"]
    assert chunks[1].text == "Sales\n\nIt sells 400 loaves a day.\n\nbread | 3 euros"


def test_a_corrupt_docx_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "report.docx"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(UnsupportedFileError, match="damaged"):
        read_text(path, max_bytes=100_000)


def test_sources_are_relative_to_the_documents_folder_or_absolute(tmp_path: Path) -> None:
    root = tmp_path / "seeds"
    assert source_name(root / "sub" / "a.md", root) == "sub/a.md"
    assert source_name(tmp_path / "b.pdf", root) == (tmp_path / "b.pdf").as_posix()
