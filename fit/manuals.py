"""Real instructional text from this machine, split by package, for the injection detector.

Technical documentation tells its reader what to do on every page ("Run make install", "You
MUST NOT ...", "Set the variable before you start the daemon"), and a detector fitted on
hand-written sentences took that for text written to the assistant (issue #29). This module
collects the documentation Debian packages install, so that the detector can be fitted on
some packages and measured on others:

  readme   README* files in /usr/share/doc/<package>/ (plain, Markdown, gzipped)
  man      man pages in /usr/share/man/man[1-8]/, rendered to text by man(1)
  manual   HTML, Markdown, reStructuredText and text manuals in /usr/share/doc/<package>/
           (not changelogs, NEWS, copyright or credits files)
  pdf      PDF manuals and specifications in /usr/share/doc/<package>/

Every file belongs to the package dpkg says installed it. A package is in the ``fit`` or the
``held-out`` part by a seeded hash of its name alone, so it stays in its part on any machine,
whatever else is installed; ``fit/data/manuals/split.json`` records the packages of each part
found here (``python fit/manuals.py --write``). Documents are chunked exactly as ``qa index``
chunks them (``qa.documents.ingest`` readers, ``split_sections``, the default 500/100), from
text files cached in ``fit/.cache/manuals/`` (decompressed or rendered once). Nothing of it is
committed: the text is the packages' own, under their licences.

To get more of it: ``apt-get install python3-doc debian-reference-en`` (measured with both).

    python fit/manuals.py            # counts per part and genre
    python fit/manuals.py --write    # and record the split in fit/data/manuals/split.json
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from qa.config import Settings  # noqa: E402
from qa.documents.ingest import read_sections, split_sections  # noqa: E402
from qa.errors import UnsupportedFileError  # noqa: E402
from qa.passages import Chunk  # noqa: E402

SEED = 29
HELD_OUT_SHARE = 0.5
GENRES = ("readme", "man", "manual", "pdf")
# Per package and genre at most this many documents (a seeded choice): one package with 16,000
# man pages or 400 HTML pages would otherwise be the corpus.
CAPS = {"readme": 6, "man": 8, "manual": 12, "pdf": 2}
MAX_BYTES = 2_000_000

DOC = Path("/usr/share/doc")
MAN = Path("/usr/share/man")
DPKG_INFO = Path("/var/lib/dpkg/info")
CACHE = ROOT / "fit" / ".cache" / "manuals"
SPLIT = ROOT / "fit" / "data" / "manuals" / "split.json"

_NOT_MANUALS = re.compile(
    r"^(?:changelog|changes|news|history|copyright|copying|license|licence|authors|thanks|"
    r"credits|contributors|todo|buildinfo|genindex|search|py-modindex|modindex|objects)",
    re.IGNORECASE,
)
_TEXT_SUFFIXES = {".html", ".htm", ".md", ".txt", ".rst", ".text"}


@dataclass(frozen=True)
class Document:
    """One documentation file: the package that installed it, its genre, where it is."""

    package: str
    genre: str
    path: Path

    @property
    def source(self) -> str:
        """The name its chunks carry: ``package/file``."""
        return f"{self.package}/{self.path.name}"


def part(package: str, seed: int = SEED) -> str:
    """``"fit"`` or ``"held-out"``: a seeded hash of the package name, so a package keeps its
    part on every machine."""
    digest = hashlib.sha256(f"{seed}:{package}".encode()).digest()
    return "held-out" if digest[0] / 256 < HELD_OUT_SHARE else "fit"


def _owners() -> dict[str, str]:
    """Every documentation path dpkg knows, with the package (architecture dropped) that
    installed it."""
    owners: dict[str, str] = {}
    for listing in sorted(DPKG_INFO.glob("*.list")):
        package = listing.stem.split(":")[0]
        for line in listing.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith(("/usr/share/doc/", "/usr/share/man/man")):
                owners[line] = package
    return owners


def _inner_suffix(path: Path) -> str:
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    return Path(name).suffix.lower()


def _genre(path: Path) -> str | None:
    parts = path.parts
    if parts[:4] == ("/", "usr", "share", "man"):
        return "man" if re.fullmatch(r"man[1-8]", parts[4]) else None
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    if name.upper().startswith("README"):
        return "readme"
    if _NOT_MANUALS.match(name):
        return None
    suffix = _inner_suffix(path)
    if suffix == ".pdf":
        return "pdf"
    return "manual" if suffix in _TEXT_SUFFIXES else None


def _pick(docs: list[Document], n: int, seed: int) -> list[Document]:
    key = lambda d: hashlib.sha256(f"{seed}:{d.path}".encode()).hexdigest()  # noqa: E731
    return sorted(sorted(docs, key=key)[:n], key=lambda d: str(d.path))


def documents(seed: int = SEED) -> list[Document]:
    """Every documentation file installed here that a genre takes, at most ``CAPS[genre]``
    per package (a seeded choice), sorted by package and path."""
    grouped: dict[tuple[str, str], list[Document]] = defaultdict(list)
    for name, package in _owners().items():
        path = Path(name)
        genre = _genre(path)
        if genre is None or not path.is_file() or path.is_symlink():
            continue
        if path.stat().st_size > MAX_BYTES:
            continue
        grouped[package, genre].append(Document(package, genre, path))
    out = [d for (_, genre), ds in grouped.items() for d in _pick(ds, CAPS[genre], seed)]
    return sorted(out, key=lambda d: (d.package, str(d.path)))


def _render_man(path: Path) -> str:
    env = {**os.environ, "MANWIDTH": "80", "MAN_KEEP_FORMATTING": "", "GROFF_NO_SGR": "1"}
    run = subprocess.run(
        ["man", "--no-hyphenation", "--no-justification", "-E", "UTF-8", "-P", "cat", "-l", path],
        capture_output=True,
        env=env,
        timeout=30,
        check=False,
    )
    text = run.stdout.decode("utf-8", errors="replace")
    return re.sub(r".\x08", "", text)  # overstrike bold and underline


def readable(doc: Document) -> Path | None:
    """A file ``qa index`` reads for ``doc``: the file itself, or (gzipped, rendered, or of a
    type qa reads as text) a copy in the cache, written once. None if it cannot be read."""
    suffix = _inner_suffix(doc.path)
    if doc.genre != "man" and not doc.path.name.endswith(".gz") and suffix in {".html", ".htm"}:
        return doc.path
    if doc.genre != "man" and not doc.path.name.endswith(".gz") and suffix in {".md", ".pdf"}:
        return doc.path
    target_suffix = suffix if suffix in {".html", ".htm", ".md", ".pdf"} else ".txt"
    stem = doc.path.name.removesuffix(".gz")
    target = CACHE / doc.genre / doc.package / f"{stem}{target_suffix}"
    if not target.exists():
        try:
            if doc.genre == "man":
                data = _render_man(doc.path).encode()
            elif doc.path.name.endswith(".gz"):
                data = gzip.decompress(doc.path.read_bytes())
            else:
                data = doc.path.read_bytes()
        except (OSError, EOFError, subprocess.SubprocessError):
            return None
        if not data.strip():
            return None
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return target


def chunks(docs: list[Document]) -> list[Chunk]:
    """The chunks ``qa index`` would store for ``docs`` (default chunk size and overlap);
    documents qa refuses (binary, empty, damaged) are left out, as ``qa index`` skips them."""
    settings = Settings()
    out: list[Chunk] = []
    for doc in docs:
        path = readable(doc)
        if path is None:
            continue
        try:
            sections = read_sections(path, max_bytes=10_000_000)
        except UnsupportedFileError:
            continue
        out += split_sections(
            sections,
            source=doc.source,
            chunk_size=settings.chunk_size,
            chunk_overlap=settings.chunk_overlap,
        )
    return out


def select(
    which: str, genre: str | None = None, docs: list[Document] | None = None
) -> list[Document]:
    """The documents of one part (``"fit"`` or ``"held-out"``), of one genre or all."""
    docs = documents() if docs is None else docs
    return [d for d in docs if part(d.package) == which and genre in (None, d.genre)]


def sample(docs: list[Document], per_genre: int, seed: int = SEED) -> list[Document]:
    """At most ``per_genre`` of ``docs`` of each genre, a seeded choice (for a quick check)."""
    return [d for g in GENRES for d in _pick([d for d in docs if d.genre == g], per_genre, seed)]


def recorded_split() -> dict:
    """The split as recorded in ``fit/data/manuals/split.json``."""
    return json.loads(SPLIT.read_text(encoding="utf-8"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help=f"Record the split in {SPLIT}.")
    args = parser.parse_args()
    docs = documents()
    counts = Counter((part(d.package), d.genre) for d in docs)
    for which in ("fit", "held-out"):
        print(which, {g: counts[which, g] for g in GENRES})
    if args.write:
        split = {
            "seed": SEED,
            "rule": f"held-out when sha256('{SEED}:' + package)[0] / 256 < {HELD_OUT_SHARE}",
            "caps_per_package": CAPS,
            "documents": {f"{w} {g}": counts[w, g] for w in ("fit", "held-out") for g in GENRES},
        }
        for which in ("fit", "held-out"):
            split[which] = sorted({d.package for d in docs if part(d.package) == which})
        SPLIT.parent.mkdir(parents=True, exist_ok=True)
        SPLIT.write_text(json.dumps(split, indent=1) + "\n", encoding="utf-8")
        print(f"-> {SPLIT}")


if __name__ == "__main__":
    main()
