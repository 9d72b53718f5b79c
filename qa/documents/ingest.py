"""Load documents from disk and split them into chunks with stable ids and offsets.

Each file type has a reader that turns it into sections: a PDF page, the text under a Markdown
or Word heading, a whole text or HTML file. Chunks never cross a section, so every chunk carries
its section's heading (``title``) and PDF page.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from html.parser import HTMLParser
from pathlib import Path

from langchain_text_splitters import RecursiveCharacterTextSplitter

from qa.errors import UnsupportedFileError
from qa.passages import Chunk

# Paragraphs, then lines, then sentence ends, then words: a chunk breaks mid-sentence only when
# one sentence is longer than chunk_size.
_SEPARATORS = ["\n\n", "\n", r"(?<=[.!?…][\"”’)\]]) ", r"(?<=[.!?…]) ", "; ", ", ", " ", ""]


@dataclass(frozen=True)
class Section:
    """A part of a document that chunks do not cross; ``start`` is its offset in the document's
    text (its sections joined by blank lines, as :func:`read_text` returns it)."""

    text: str
    title: str
    page: int = 0
    start: int = 0


def chunk_id(source: str, text: str) -> str:
    """Content hash of a chunk: the same text in the same file always gets the same id."""
    return hashlib.sha256(f"{source}\0{text}".encode()).hexdigest()[:32]


def _title(text: str, path: Path) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip().lstrip("#").strip()[:200]
    return path.stem


def _refuse_binary(data: bytes, path: Path) -> None:
    if b"\0" in data[:8192]:
        raise UnsupportedFileError(f"{path.name}: looks like a binary file, not text")


def _decode(data: bytes, path: Path) -> str:
    _refuse_binary(data, path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        # Not UTF-8: most likely a Windows or Latin-1 file, which cp1252 decodes legibly.
        text = data.decode("cp1252", errors="replace")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _by_headings(blocks: Iterable[tuple[str, str | None]], title: str, sep: str) -> list[Section]:
    """Group ``(text, heading or None)`` blocks into one section per heading. A heading with no
    text of its own (e.g. a chapter heading right before its first subheading) joins the next
    section, which takes the inner heading as its title."""
    sections: list[Section] = []
    parts: list[str] = []
    has_body = False
    for text, heading in blocks:
        if heading is not None and has_body:
            sections.append(Section(sep.join(parts).strip(), title))
            parts, has_body = [], False
        if heading is not None:
            title = heading[:200]
        elif text.strip():
            has_body = True
        parts.append(text)
    sections.append(Section(sep.join(parts).strip(), title))
    return sections


def _read_plain(data: bytes, path: Path) -> list[Section]:
    text = _decode(data, path)
    return [Section(text, _title(text, path))]


_MD_HEADING = re.compile(r"#{1,6}\s+(.*?)[\s#]*$")
_MD_FENCE = re.compile(r"\s*(```|~~~)")


def _read_markdown(data: bytes, path: Path) -> list[Section]:
    text = _decode(data, path)
    blocks: list[tuple[str, str | None]] = []
    in_fence = False  # a "# comment" inside a code block is not a heading
    for line in text.splitlines(keepends=True):
        if _MD_FENCE.match(line):
            in_fence = not in_fence
        heading = None if in_fence else _MD_HEADING.match(line)
        blocks.append((line, heading.group(1) if heading else None))
    return _by_headings(blocks, _title(text, path), sep="")


_HTML_DROP = frozenset({"script", "style", "noscript", "template", "head", "title"})
_HTML_BLOCKS = frozenset(
    (
        "p div section article header footer nav aside main blockquote pre table tr li dl dt dd "
        "ul ol h1 h2 h3 h4 h5 h6 figcaption"
    ).split()
)


class _HTMLText(HTMLParser):
    """Visible text of an HTML page, with blank lines around blocks, and its ``<title>``.

    A streaming parser rather than a tree: its cost is linear in the page size however deeply
    the tags nest (a tree walk is quadratic, or recursive, on 100,000 nested ``<div>``s).
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: list[str] = []
        self._hidden = 0  # depth inside script, style, head, ...
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HTML_DROP:
            self._hidden += 1
            self._in_title = self._in_title or tag == "title"
        elif tag in _HTML_BLOCKS:
            self.parts.append("\n\n")
        elif tag == "br":
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HTML_DROP:
            self._hidden = max(0, self._hidden - 1)
            self._in_title = self._in_title and tag != "title"
        elif tag in _HTML_BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        elif not self._hidden:
            self.parts.append(data)


def _read_html(data: bytes, path: Path) -> list[Section]:
    from bs4.dammit import UnicodeDammit

    _refuse_binary(data, path)
    # Detects the encoding from a BOM, <meta charset> or the bytes themselves.
    markup = UnicodeDammit(data, is_html=True).unicode_markup or _decode(data, path)
    parser = _HTMLText()
    parser.feed(markup)
    parser.close()
    title = " ".join("".join(parser.title).split())
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return [Section(text, title[:200] or _title(text, path))]


def _read_pdf(data: bytes, path: Path) -> list[Section]:
    from pypdf import PdfReader

    # pypdf logs every repair it attempts; a damaged file is reported once, by our error.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    if b"%PDF-" not in data[:1024]:
        raise UnsupportedFileError(f"{path.name}: not a PDF file (no %PDF header)")
    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted and not reader.decrypt(""):
        raise UnsupportedFileError(
            f"{path.name}: the PDF is password-protected; index an unprotected copy"
        )
    pages = [(page.extract_text() or "").replace("\r\n", "\n") for page in reader.pages]
    if not any(p.strip() for p in pages):
        raise UnsupportedFileError(
            f"{path.name}: the PDF has no text layer (a scanned image?); run OCR on it first"
        )
    meta_title = reader.metadata.title if reader.metadata else None
    title = (meta_title or "").strip()[:200] or _title("\n".join(pages), path)
    return [Section(text.strip(), title, page=n) for n, text in enumerate(pages, 1)]


def _read_docx(data: bytes, path: Path) -> list[Section]:
    from docx import Document
    from docx.table import Table

    if not data.startswith(b"PK"):
        raise UnsupportedFileError(
            f"{path.name}: not a .docx file (old binary .doc files are not supported; "
            "save it as .docx)"
        )
    document = Document(io.BytesIO(data))
    blocks: list[tuple[str, str | None]] = []
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            rows = (" | ".join(cell.text.strip() for cell in row.cells) for row in block.rows)
            blocks.append(("\n".join(rows), None))
            continue
        style = block.style.name if block.style is not None else ""
        is_heading = style.startswith("Heading") or style == "Title"
        blocks.append((block.text, block.text.strip() if is_heading else None))
    title = document.core_properties.title or _title("\n".join(t for t, _ in blocks), path)
    return _by_headings(blocks, title, sep="\n\n")


_READERS: dict[str, Callable[[bytes, Path], list[Section]]] = {
    ".txt": _read_plain,
    ".md": _read_markdown,
    ".html": _read_html,
    ".htm": _read_html,
    ".pdf": _read_pdf,
    ".docx": _read_docx,
}
SUPPORTED_SUFFIXES = frozenset(_READERS)


def read_sections(path: Path, *, max_bytes: int) -> list[Section]:
    """Read a document as sections, refusing unsupported, oversized, empty, binary and damaged
    files with an :class:`UnsupportedFileError` that gives the reason."""
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        kinds = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise UnsupportedFileError(f"{path.name}: unsupported file type (supported: {kinds})")
    size = path.stat().st_size
    if size > max_bytes:
        raise UnsupportedFileError(
            f"{path.name}: {size / 1e6:.1f} MB is over the {max_bytes / 1e6:.1f} MB limit "
            "(raise QA_MAX_FILE_MB to index it)"
        )
    data = path.read_bytes()
    if path.suffix.lower() == ".docx":
        _refuse_zip_bomb(data, path, max_bytes)
    try:
        sections = reader(data, path)
    except UnsupportedFileError:
        raise
    except Exception as err:  # parsers fail in many ways on damaged files; report, don't crash
        kind = path.suffix.lower().lstrip(".").upper()
        raise UnsupportedFileError(
            f"{path.name}: cannot read this {kind} file, it may be damaged ({err}); "
            "open and re-save it, or convert it to text"
        ) from err
    sections = [s for s in sections if s.text.strip()]
    if not sections:
        raise UnsupportedFileError(f"{path.name}: the file is empty")
    offsets = [0]
    for s in sections:
        offsets.append(offsets[-1] + len(s.text) + 2)
    return [replace(s, start=start) for s, start in zip(sections, offsets, strict=False)]


_UNPACK_RATIO = 10  # Word XML compresses about 10:1, so a real .docx unpacks to ~10x its size


def _refuse_zip_bomb(data: bytes, path: Path, max_bytes: int) -> None:
    """Refuse a zip-based document (.docx) that unpacks to more than ``_UNPACK_RATIO`` times
    the file size limit.

    The sizes come from the zip's directory; Python's zipfile never inflates a member past its
    declared size, so checking the declared sum bounds the work before anything is unpacked.
    """
    try:
        unpacked = sum(m.file_size for m in zipfile.ZipFile(io.BytesIO(data)).infolist())
    except zipfile.BadZipFile:
        return  # the reader reports the damaged file
    limit = max_bytes * _UNPACK_RATIO
    if unpacked > limit:
        raise UnsupportedFileError(
            f"{path.name}: unpacks to {unpacked / 1e6:.1f} MB, over the {limit / 1e6:.1f} MB "
            f"allowed ({_UNPACK_RATIO} x QA_MAX_FILE_MB); it may be a zip bomb, or raise "
            "QA_MAX_FILE_MB to index it"
        )


def read_text(path: Path, *, max_bytes: int) -> str:
    """The text of a document (its sections joined by blank lines), with the checks of
    :func:`read_sections`."""
    return "\n\n".join(s.text for s in read_sections(path, max_bytes=max_bytes))


def _splitter(chunk_size: int, chunk_overlap: int) -> RecursiveCharacterTextSplitter:
    return RecursiveCharacterTextSplitter(
        chunk_size=chunk_size,
        chunk_overlap=min(chunk_overlap, chunk_size // 2),
        separators=_SEPARATORS,
        is_separator_regex=True,
        keep_separator="end",
        strip_whitespace=True,
    )


def split_sections(
    sections: Iterable[Section], *, source: str, chunk_size: int, chunk_overlap: int
) -> list[Chunk]:
    """Split one document's sections into chunks that keep sentences whole where possible."""
    splitter = _splitter(chunk_size, chunk_overlap)
    chunks: list[Chunk] = []
    for section in sections:
        cursor = 0
        for piece in splitter.split_text(section.text):
            # Chunks appear in order; search from just past the previous chunk's start so that
            # repeated passages map to their own occurrence.
            start = section.text.find(piece, cursor)
            if start < 0:
                start = section.text.find(piece)
            cursor = start + 1
            chunks.append(
                Chunk(
                    id=chunk_id(source, piece),
                    text=piece,
                    source=source,
                    n=len(chunks),
                    start=section.start + start,
                    end=section.start + start + len(piece),
                    title=section.title,
                    page=section.page,
                )
            )
    return _dedupe(chunks)


def split_text(text: str, *, source: str, chunk_size: int, chunk_overlap: int) -> list[Chunk]:
    """Split one plain-text document; its title is its first line."""
    section = Section(text, _title(text, Path(source)))
    return split_sections(
        [section], source=source, chunk_size=chunk_size, chunk_overlap=chunk_overlap
    )


def _dedupe(chunks: list[Chunk]) -> list[Chunk]:
    seen: set[str] = set()
    return [c for c in chunks if not (c.id in seen or seen.add(c.id))]


def find_documents(paths: Iterable[Path]) -> tuple[list[Path], list[Path], list[Path]]:
    """Expand files and folders into (supported files, files of other types, symbolic links that
    lead out of the folder they were found in), each sorted. Those links are not followed: a
    link must not pull files from elsewhere on the machine into the index."""
    found: list[Path] = []
    skipped: list[Path] = []
    escaping: list[Path] = []
    for path in paths:
        if path.is_dir():
            base = path.resolve()
            candidates = sorted(p for p in path.rglob("*") if p.is_file())
            escaping += [p for p in candidates if not p.resolve().is_relative_to(base)]
            candidates = [p for p in candidates if p.resolve().is_relative_to(base)]
        else:
            candidates = [path]
        for p in candidates:
            if p.name.startswith("."):
                continue
            (found if p.suffix.lower() in SUPPORTED_SUFFIXES else skipped).append(p)
    return found, skipped, escaping


def source_name(path: Path, root: Path) -> str:
    """How the index and citations name a document: relative to the documents folder ``root``
    when inside it, else by its absolute path."""
    full, base = Path(os.path.abspath(path)), Path(os.path.abspath(root))
    if full == base:  # root is a single file
        return path.name
    return (full.relative_to(base) if full.is_relative_to(base) else full).as_posix()


def source_path(source: str, root: Path) -> Path:
    """The file a source name stands for (the inverse of :func:`source_name`)."""
    return Path(source) if Path(source).is_absolute() else root / source


def load_chunks(
    root: Path,
    *,
    chunk_size: int,
    chunk_overlap: int,
    max_bytes: int,
    paths: Iterable[Path] | None = None,
) -> Iterator[Chunk | UnsupportedFileError]:
    """Yield the chunks of every supported file under ``root``, or in ``paths`` (files or
    folders) when given. Unreadable files yield an error each; files of unsupported types, and
    symbolic links leading out of their folder, yield one error listing them all."""
    files, skipped, escaping = find_documents([root] if paths is None else paths)
    if escaping:
        names = ", ".join(source_name(p, root) for p in escaping)
        yield UnsupportedFileError(
            f"symbolic links to files outside their folder are not followed: {names} "
            "(copy the files into the folder to index them)"
        )
    if skipped:
        names = ", ".join(source_name(p, root) for p in skipped)
        kinds = ", ".join(sorted(SUPPORTED_SUFFIXES))
        yield UnsupportedFileError(f"unsupported file type (supported: {kinds}): {names}")
    for path in files:
        try:
            sections = read_sections(path, max_bytes=max_bytes)
        except UnsupportedFileError as err:
            yield err
            continue
        yield from split_sections(
            sections,
            source=source_name(path, root),
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
        )
