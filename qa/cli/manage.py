"""Commands that look after what qa keeps: ``qa docs list|remove`` and
``qa feedback list|export``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from qa.cli.common import (
    IndexOpt,
    SeedsOpt,
    app,
    assistant_for,
    console,
    err_console,
    fail,
    settings_for,
)
from qa.errors import QAError
from qa.evaluation.feedback import FeedbackStore

docs_app = typer.Typer(help="List or remove indexed documents.", no_args_is_help=True)
app.add_typer(docs_app, name="docs")


@docs_app.command("list")
def docs_list(docs: SeedsOpt = None, index: IndexOpt = None) -> None:
    """Every indexed document: name, type, chunks, when indexed, spans flagged as instructions
    to an AI assistant (their text never reaches the model), title."""
    from rich.table import Table

    try:
        found = assistant_for(docs, index).documents()
    except QAError as err:
        raise fail(err) from err
    table = Table(title=f"{len(found)} indexed document(s)")
    for column in ("name", "type", "chunks", "indexed", "flagged", "title"):
        table.add_column(column, justify="right" if column in ("chunks", "flagged") else "left")
    for d in found:
        when = d.indexed_at.replace("T", " ").removesuffix("+00:00") or "-"
        flagged = str(d.flagged) if d.flagged else "-"
        table.add_row(escape(d.source), d.type, str(d.chunks), when, flagged, escape(d.title[:60]))
    console.print(table)


@docs_app.command("remove")
def docs_remove(
    names: Annotated[list[str], typer.Argument(help="Document names as `qa docs list` shows.")],
    delete_file: Annotated[
        bool, typer.Option("--delete-file", help="Also delete the file from the documents folder.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    docs: SeedsOpt = None,
    index: IndexOpt = None,
) -> None:
    """Take documents out of the index (their chunks leave Chroma); the files stay unless
    --delete-file, and `qa index` skips kept files until they are indexed by name again."""
    what = "remove from the index and delete" if delete_file else "remove from the index"
    if not yes and not typer.confirm(f"{what.capitalize()}: {', '.join(names)}?"):
        raise typer.Exit(code=1)
    try:
        assistant = assistant_for(docs, index)
        for name in names:
            report = assistant.remove(name, delete_file=delete_file, on_wait=err_console.print)
            gone = " and deleted its file" if delete_file else ""
            console.print(f"Removed {escape(name)}: {report.removed} chunks{gone}")
    except QAError as err:
        raise fail(err) from err


feedback_app = typer.Typer(
    help="Ratings from the UI and API, stored as gold items (run them with `qa eval --gold`).",
    no_args_is_help=True,
)
app.add_typer(feedback_app, name="feedback")
FeedbackOpt = Annotated[
    Path | None,
    typer.Option("--file", help="Feedback file (default: the workspace's evals/feedback.jsonl)."),
]


def _feedback_store(path: Path | None) -> FeedbackStore:
    return FeedbackStore(path or settings_for().feedback_path)


@feedback_app.command("list")
def feedback_list(file: FeedbackOpt = None) -> None:
    """Every rating: id, verdict, question, what the item checks, user, time."""
    from rich.table import Table

    store = _feedback_store(file)
    items = store.items()
    table = Table(title=f"{len(items)} rating(s) in {store.path}")
    table.add_column("id", no_wrap=True)
    for column in ("verdict", "question", "answer", "checks", "user", "time"):
        table.add_column(column)
    for it in items:
        table.add_row(
            it.id,
            "👍" if it.verdict == "up" else "👎",
            escape(it.question[:60]),
            escape(str(it.meta.get("answer", ""))[:40]),
            escape(it.expectation),
            escape(str(it.meta.get("user") or "")),
            str(it.meta.get("time", "")),
        )
    console.print(table)


@feedback_app.command("export")
def feedback_export(
    ids: Annotated[
        list[str] | None, typer.Argument(help="Ids to promote (see `qa feedback list`).")
    ] = None,
    to: Annotated[
        Path | None,
        typer.Option("--to", help="Gold file to append them to (default: evals/gold.jsonl)."),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Promote every rating.")] = False,
    file: FeedbackOpt = None,
) -> None:
    """Promote reviewed ratings into a gold file (without their feedback metadata); ids the
    gold file already has are skipped."""
    if not ids and not all_:
        err_console.print("[red]Error:[/red] name the ids to export, or pass --all")
        raise typer.Exit(code=1)
    try:
        to = to or settings_for().evals_dir / "gold.jsonl"
        added = _feedback_store(file).export(None if all_ else ids, to)
    except QAError as err:
        raise fail(err) from err
    console.print(f"Added {len(added)} item(s) to {to}: {', '.join(added) or 'none new'}")
