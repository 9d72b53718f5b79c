"""``qa workspace create | list | remove``: the document collections of this install
(:mod:`qa.workspaces`); every other command works in one of them with ``qa -w NAME …``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from qa.cli.common import app, console, fail
from qa.errors import QAError
from qa.workspaces import Workspace, workspaces

workspace_app = typer.Typer(
    help="Document collections, each with its own index, decision, gold sets, chats and "
    "settings; use one with `qa -w NAME <command>`.",
    no_args_is_help=True,
)
app.add_typer(workspace_app, name="workspace")


@workspace_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Its name: letters, digits, '.', '-', '_'.")],
    docs: Annotated[
        Path | None,
        typer.Option(
            "--docs",
            help="Answer over this folder where it is (default: workspaces/NAME/docs/).",
        ),
    ] = None,
) -> None:
    """Make a workspace: workspaces/NAME/ with docs/, index/, evals/ and its own qa.toml."""
    try:
        made = Workspace.create(name, docs=docs)
    except QAError as err:
        raise fail(err) from err
    where = made.docs_dir
    console.print(
        f"Created workspace {escape(name)} in {made.root}/. Put documents in {where}/, then "
        f'`qa -w {escape(name)} index` and `qa -w {escape(name)} ask "..."`.'
    )


@workspace_app.command("list")
def list_() -> None:
    """Every workspace: documents and chunks indexed, when last indexed, and whether its
    answer decision is fitted to its documents or the shipped one."""
    from rich.table import Table

    table = Table(title="Workspaces")
    for column in ("name", "documents", "chunks", "last indexed", "decision", "folder"):
        table.add_column(column, justify="right" if column in ("documents", "chunks") else "left")
    for found in workspaces():
        try:
            info = found.info()
        except QAError as err:  # one unreadable index must not hide the others
            table.add_row(escape(found.name), "-", "-", "-", "-", escape(str(err))[:60])
            continue
        when = info.indexed_at.replace("T", " ").removesuffix("+00:00")[:19] or "-"
        folder = "." if found.is_default else str(found.root)
        table.add_row(
            escape(info.name),
            str(info.documents),
            str(info.chunks),
            when,
            info.decision,
            escape(folder),
        )
    console.print(table)


@workspace_app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="The workspace to delete.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a workspace: its index (its collections on a Chroma server too), decision, gold
    sets, reports, chats, ratings and settings. A --docs folder outside it is kept."""
    try:
        found = Workspace.open(name)
        if found.is_default:
            found.remove()  # refuses, with the reason
    except QAError as err:
        raise fail(err) from err
    if not yes and not typer.confirm(f"Delete workspace {name} and everything in {found.root}/?"):
        raise typer.Exit(code=1)
    try:
        found.remove()
    except QAError as err:
        raise fail(err) from err
    console.print(f"Removed workspace {escape(name)}")
