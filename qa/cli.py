"""Command line: ``qa index | ask | chat | eval`` over the same :class:`~qa.Assistant`."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from qa.answer import Answer
from qa.assistant import Assistant
from qa.config import Settings
from qa.errors import QAError

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


def _assistant(docs: Path | None = None, index: Path | None = None, top_k: int | None = None):
    overrides = {"seeds_dir": docs, "index_dir": index, "top_k": top_k}
    return Assistant(Settings(**{k: v for k, v in overrides.items() if v is not None}))


def _fail(err: QAError) -> typer.Exit:
    err_console.print(f"[red]Error:[/red] {escape(str(err))}")
    return typer.Exit(code=1)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )


def _index(assistant: Assistant) -> None:
    with _progress() as bar:
        task = bar.add_task("Embedding chunks", total=None)
        report = assistant.index(
            progress=lambda done, total: bar.update(task, completed=done, total=total)
        )
    for reason in report.skipped:
        err_console.print(f"[yellow]Skipped[/yellow] {escape(reason)}")
    err_console.print(
        f"Indexed {report.files} file(s): {report.added} chunks added, {report.removed} removed, "
        f"{report.unchanged} unchanged in {report.seconds:.1f}s"
    )


def _print_answer(answer: Answer, *, streamed: bool) -> None:
    if not streamed or answer.abstained:
        console.print(escape(answer.text))
    else:
        console.print()
    for c in answer.citations:
        console.print(f"[dim][{c.n}] {escape(c.source)}:[/dim] {escape(' '.join(c.text.split()))}")
    t = answer.timings
    err_console.print(
        f"[dim]retrieve {t.retrieve_ms:.0f} ms · first token {t.first_token_ms:.0f} ms · "
        f"total {t.total_ms:.0f} ms[/dim]"
    )


@app.command()
def index(docs: SeedsOpt = None, index: IndexOpt = None) -> None:
    """Index the documents folder: embed new or changed files, drop deleted ones."""
    try:
        _index(_assistant(docs, index))
    except QAError as err:
        raise _fail(err) from err


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question to answer.")],
    docs: SeedsOpt = None,
    index: IndexOpt = None,
    top_k: TopKOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the Answer as JSON.")] = False,
) -> None:
    """Answer one question from the indexed documents, then list its sources."""
    try:
        assistant = _assistant(docs, index, top_k)
        if as_json:
            console.print_json(json.dumps(asdict(assistant.ask(question))))
            return
        stream = assistant.stream(question)
        for token in stream:
            console.print(escape(token), end="")
        assert stream.answer is not None
        _print_answer(stream.answer, streamed=True)
    except QAError as err:
        raise _fail(err) from err


@app.command()
def chat(docs: SeedsOpt = None, index: IndexOpt = None) -> None:
    """Chat in the terminal; follow-up questions use the conversation so far."""
    try:
        assistant = _assistant(docs, index)
        _index(assistant)
    except QAError as err:
        raise _fail(err) from err
    history: list[dict[str, str]] = []
    console.print("[dim]Ask about your documents; Ctrl-D or 'exit' to quit.[/dim]")
    while True:
        try:
            question = console.input("[bold]> [/bold]")
        except (EOFError, KeyboardInterrupt):
            return
        if question.strip().lower() in {"exit", "quit"}:
            return
        try:
            answer = assistant.ask(question, history)
        except QAError as err:
            err_console.print(f"[red]{escape(str(err))}[/red]")
            continue
        _print_answer(answer, streamed=False)
        history += [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer.text},
        ]
