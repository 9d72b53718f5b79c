"""A gold-set run as both front ends start it: which sets exist, asking one over its own
documents, and saving the run as today's report.

``qa eval`` and the browser's Evaluate tab call :func:`run_gold_set`, so a run started in
either is the same run: same documents, same sample, same baseline key, same report folder.
A set in a sub-folder of ``evals/`` with a ``docs/`` folder next to it (``evals/squad2``) is
asked over those documents in a temporary index, never over the user's own index.
"""

from __future__ import annotations

import tempfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Self

from qa.errors import QAError
from qa.evaluation.evaluate import Asker, EvalReport, load_gold, run_eval
from qa.evaluation.evaluate import per_document as per_document_asker
from qa.evaluation.reports import write_reports


class RunTarget(Asker, Protocol):
    """What a run needs of an assistant (:class:`qa.Assistant` is one): to answer, to index its
    documents, and a copy over other documents that shares its models."""

    def index(self) -> object: ...

    def for_documents(self, docs_dir: Path, index_dir: Path) -> Self: ...


@dataclass(frozen=True)
class EvalPaths:
    """Where the gold sets, the baseline and the reports are (``evals/`` by default)."""

    root: Path = Path("evals")

    @property
    def baseline(self) -> Path:
        """The accepted metrics per gold set."""
        return self.root / "baseline.json"

    @property
    def reports(self) -> Path:
        """One folder per run."""
        return self.root / "reports"


@dataclass(frozen=True)
class GoldSet:
    """A gold file and the documents it is asked over (None: the assistant's own)."""

    path: Path
    docs: Path | None = None

    @property
    def label(self) -> str:
        """The file as a user would name it, e.g. ``squad2/Normans.jsonl``."""
        return f"{self.path.parent.name}/{self.path.name}" if self.docs else self.path.name


@dataclass(frozen=True)
class GateSet:
    """One set of the regression gate's manifest (``evals/gate.toml``) and how it is asked."""

    gold: Path
    docs: Path | None = None
    sample: int | None = None
    per_document: bool = False
    requires: Path | None = None  # skipped, with a warning, where this path is missing

    @property
    def name(self) -> str:
        """Its baseline key."""
        return run_name(self.gold, self.sample)


def load_gate(path: Path) -> list[GateSet]:
    """The sets a gate manifest lists, paths relative to the working directory.

    Raises:
        QAError: the file is missing or a set is malformed.
    """
    try:
        entries = tomllib.loads(path.read_text(encoding="utf-8")).get("sets", [])
        return [
            GateSet(
                Path(e["gold"]),
                Path(e["docs"]) if e.get("docs") else None,
                e.get("sample"),
                bool(e.get("per_document", False)),
                Path(e["requires"]) if e.get("requires") else None,
            )
            for e in entries
        ]
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as err:
        raise QAError(
            f"Cannot read the gate manifest {path} ({err}); each [[sets]] needs a gold path"
        ) from err


def run_name(gold: Path, sample: int | None) -> str:
    """The baseline key of a run: the file stem, ``@n`` for a sample (``Normans@30``)."""
    return gold.stem + (f"@{sample}" if sample else "")


def find_gold_sets(paths: EvalPaths, feedback: Path | None = None) -> list[GoldSet]:
    """``evals/*.jsonl`` and the sets generated from the documents (``evals/generated/``,
    ``qa gold generate``), both over the assistant's documents; each ``evals/<dir>/*.jsonl``
    with a ``<dir>/docs/`` folder (over those documents); the ratings file if it exists."""
    if not paths.root.is_dir():
        return []
    sets = [GoldSet(p) for p in sorted(paths.root.glob("*.jsonl"))]
    sets += [GoldSet(p) for p in sorted((paths.root / "generated").glob("*.jsonl"))]
    for folder in sorted(p for p in paths.root.iterdir() if (p / "docs").is_dir()):
        sets += [GoldSet(p, folder / "docs") for p in sorted(folder.glob("*.jsonl"))]
    known = {s.path.resolve() for s in sets}
    if feedback is not None and feedback.exists() and feedback.resolve() not in known:
        sets.append(GoldSet(feedback))
    return sets


def default_sample(gold_set: GoldSet, baseline_names: set[str]) -> int | None:
    """The sample size the set's baseline was recorded with (``Normans@30`` -> 30), if any."""
    stem = gold_set.path.stem
    sizes = [n.removeprefix(f"{stem}@") for n in baseline_names if n.startswith(f"{stem}@")]
    return int(sizes[0]) if stem not in baseline_names and sizes and sizes[0].isdigit() else None


def report_dir(reports: Path, name: str) -> Path:
    """Today's report folder for a run of ``name``: ``<reports>/<YYYYmmdd-HHMMSS>-<name>``."""
    return reports / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"


@dataclass(frozen=True)
class SavedRun:
    """A finished (or stopped) run and the folder its reports were written to."""

    report: EvalReport
    out: Path


def run_gold_set(
    assistant: RunTarget,
    gold_set: GoldSet,
    *,
    sample: int | None = None,
    per_document: bool = False,
    out: Path,
    index: Callable[[RunTarget], object] | None = None,
    progress: Callable[[int, int], None] | None = None,
    proceed: Callable[[], bool] | None = None,
) -> SavedRun:
    """Ask ``gold_set`` (a seeded sample of ``sample`` items, if given) and write its reports.

    Args:
        assistant: Answers the questions; for a set with ``docs`` a copy sharing its models
            answers over a temporary index of those documents.
        gold_set: The gold file and its documents.
        sample: ``n - n//3`` answerable and ``n//3`` unanswerable items, seeded.
        per_document: Ask each item of an index of only its ``sources`` in ``docs`` (as
            BoolQ-style sets define their task), not of all the documents together.
        out: The report folder (see :func:`report_dir`).
        index: Brings the answering assistant's index up to date (default: ``index()``).
        progress: ``progress(done, total)`` after each item.
        proceed: Called before each item; False stops the run, which is saved as partial.

    Raises:
        ValueError: the gold file is invalid. QAError: the documents cannot be indexed, or
            ``per_document`` without documents.
    """
    items = load_gold(gold_set.path, sample=sample)
    name = run_name(gold_set.path, sample)
    with tempfile.TemporaryDirectory(prefix="qa-eval-") as tmp:
        ask_with = None
        if per_document:
            if gold_set.docs is None:
                raise QAError("--per-document needs --docs: the folder the items' sources are in")
            ask_with = per_document_asker(assistant.for_documents, gold_set.docs, Path(tmp))
            items = sorted(items, key=lambda it: sorted(it.sources))  # one index per source set
        else:
            if gold_set.docs is not None:
                assistant = assistant.for_documents(gold_set.docs, Path(tmp) / "index")
            assistant.index() if index is None else index(assistant)
        report = run_eval(
            assistant, items, name=name, progress=progress, ask_with=ask_with, proceed=proceed
        )
    report.config |= {
        "gold": str(gold_set.path),
        "docs": str(gold_set.docs) if gold_set.docs else None,
        "sample": sample,
        "per_document": per_document,
    }
    write_reports(report, out)
    return SavedRun(report, out)
