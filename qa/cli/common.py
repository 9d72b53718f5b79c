"""What every command shares: the consoles, the common options, one-line errors, progress bars
and how an answer is printed."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from qa.config import Settings
from qa.errors import QAError
from qa.workspaces import Workspace

if TYPE_CHECKING:
    from qa.answer import Answer, IndexReport
    from qa.assistant import Assistant

app = typer.Typer(
    help="Ask questions about your documents, offline, with cited answers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

SeedsOpt = Annotated[
    Path | None, typer.Option("--docs", help="Folder of documents (default: seeds/).")
]
IndexOpt = Annotated[Path | None, typer.Option(help="Index folder (default: index/).")]
TopKOpt = Annotated[int | None, typer.Option("--top-k", help="Chunks shown to the LLM.")]


@app.callback()
def main(
    ctx: typer.Context,
    workspace: Annotated[
        str | None,
        typer.Option(
            "--workspace",
            "-w",
            envvar="QA_WORKSPACE",
            help="Workspace every command works in (`qa workspace list`); default: the "
            "project root's (seeds/, index/, evals/, qa.toml).",
        ),
    ] = None,
) -> None:
    """Ask questions about your documents, offline, with cited answers."""
    _chosen.clear()  # set on every invocation: one in a test never leaks into the next
    _chosen.append(workspace or None)
    if ctx.invoked_subcommand != "workspace":  # which names its workspaces itself
        try:
            current_workspace()
        except QAError as err:
            raise fail(err) from err


_chosen: list[str | None] = []
"""The ``--workspace`` of this invocation (see :func:`main`)."""


def current_workspace() -> Workspace:
    """The workspace named by ``--workspace``/``QA_WORKSPACE``, else the project root's.

    Raises:
        WorkspaceError: a bad name, or no workspace has it.
    """
    return Workspace.open(_chosen[0] if _chosen else None)


def settings_for(docs: Path | None = None, index: Path | None = None, **options: Any) -> Settings:
    """The command's workspace's settings, with the options given on the command line."""
    overrides = {"seeds_dir": docs, "index_dir": index, **options}
    return current_workspace().settings(**{k: v for k, v in overrides.items() if v is not None})


def assistant_for(
    docs: Path | None = None, index: Path | None = None, top_k: int | None = None
) -> Assistant:
    from qa.assistant import Assistant  # langchain and Chroma load only for commands that ask

    return Assistant(settings_for(docs, index, top_k=top_k))


def fail(err: QAError) -> typer.Exit:
    # soft_wrap: one line however narrow the terminal, so it can be grepped from logs
    err_console.print(f"[red]Error:[/red] {escape(str(err))}", soft_wrap=True)
    return typer.Exit(code=1)


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )


def index_with_progress(
    assistant: Assistant, paths: list[Path] | None = None, bar: Progress | None = None
) -> IndexReport:
    """Index with a progress bar: its own, or a task on ``bar`` (rich allows one at a time)."""
    with nullcontext(bar) if bar else progress_bar() as live:
        task = live.add_task("Embedding chunks", total=None)
        report = assistant.index(
            paths,
            progress=lambda done, total: live.update(task, completed=done, total=total),
            on_wait=lambda msg: live.console.print(f"[yellow]{escape(msg)}[/yellow]"),
        )
        live.remove_task(task)
    for reason in report.skipped:
        err_console.print(f"[yellow]Skipped[/yellow] {escape(reason)}")
    err_console.print(
        f"Indexed {report.files} file(s): {report.added} chunks added, {report.removed} removed, "
        f"{report.unchanged} unchanged in {report.seconds:.1f}s"
    )
    return report


LABELS = {"unconfirmed": "[yellow]Unconfirmed[/yellow]", "not_found": "[dim]Not found[/dim]"}
"""How a reply qa does not assert is marked in the terminal."""


def print_answer(answer: Answer, *, streamed: bool) -> None:
    if answer.abstained:
        if streamed:
            console.print()  # the streamed candidate was not an answer: a line of its own
        label = "[yellow]Withheld[/yellow]" if answer.planted else LABELS.get(answer.status, "")
        console.print(f"{label} {escape(answer.text)}".strip())
    elif streamed:
        console.print()
    else:
        console.print(escape(answer.text))
    for c in answer.citations:
        console.print(
            f"[dim][{c.n}] {escape(c.location)}:[/dim] {escape(' '.join(c.text.split()))}"
        )
    t = answer.timings
    odds = "" if answer.answerability is None else f" · P(right) {answer.answerability:.2f}"
    if answer.decided_by == "unavailable":
        odds = " · not checked by the learned decision: the LLM server reports no probabilities"
    err_console.print(
        f"[dim]retrieve {t.retrieve_ms:.0f} ms · first token {t.first_token_ms:.0f} ms · "
        f"total {t.total_ms:.0f} ms{odds}[/dim]"
    )
