"""Command line: ``qa index | ask | chat | serve | eval | calibrate | bench | docs | feedback``
over the same :class:`~qa.Assistant`."""

from __future__ import annotations

import json
from contextlib import nullcontext
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
from qa.evaluation.feedback import FeedbackStore

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


def _assistant(
    docs: Path | None = None, index: Path | None = None, top_k: int | None = None
) -> Assistant:
    overrides = {"seeds_dir": docs, "index_dir": index, "top_k": top_k}
    return Assistant(Settings(**{k: v for k, v in overrides.items() if v is not None}))


def _fail(err: QAError) -> typer.Exit:
    # soft_wrap: one line however narrow the terminal, so it can be grepped from logs
    err_console.print(f"[red]Error:[/red] {escape(str(err))}", soft_wrap=True)
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


def _index(
    assistant: Assistant, paths: list[Path] | None = None, bar: Progress | None = None
) -> None:
    """Index with a progress bar: its own, or a task on ``bar`` (rich allows one at a time)."""
    with nullcontext(bar) if bar else _progress() as live:
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


def _print_answer(answer: Answer, *, streamed: bool) -> None:
    if not streamed or answer.abstained:
        console.print(escape(answer.text))
    else:
        console.print()
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


@app.command()
def index(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Files or folders to add or update; without them the index mirrors the "
            "documents folder.",
            show_default=False,
        ),
    ] = None,
    docs: SeedsOpt = None,
    index: IndexOpt = None,
) -> None:
    """Index documents (.txt .md .pdf .html .docx): embed new or changed files, drop deleted
    ones."""
    try:
        _index(_assistant(docs, index), paths or None)
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
            answer = asdict(assistant.ask(question))
            answer.pop("signals")  # thousands of hidden-state floats
            console.print_json(json.dumps(answer))
            return
        stream = assistant.stream(question)
        for token in stream:
            console.print(escape(token), end="")
        assert stream.answer is not None
        _print_answer(stream.answer, streamed=True)
    except QAError as err:
        raise _fail(err) from err


@app.command()
def chat(
    docs: SeedsOpt = None,
    index: IndexOpt = None,
    host: Annotated[str, typer.Option(help="Address the web UI listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port the web UI listens on.")] = 7860,
    terminal: Annotated[
        bool, typer.Option("--terminal", help="Chat in this terminal instead of the browser.")
    ] = False,
) -> None:
    """Chat in the browser: cited answers, 👍/👎 ratings, documents, past chats; QA_AUTH=user:pass
    adds a login (ann:pw1,bob:pw2 for several users)."""
    try:
        assistant = _assistant(docs, index)
        _index(assistant)
    except QAError as err:
        raise _fail(err) from err
    if terminal:
        _terminal_chat(assistant)
        return
    from qa.ui import launch  # gradio is slow to import; load it only for the UI

    launch(assistant, host=host, port=port)


@app.command()
def serve(
    docs: SeedsOpt = None,
    index: IndexOpt = None,
    host: Annotated[str, typer.Option(help="Address the web UI listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port the web UI listens on.")] = 7860,
    llm_port: Annotated[int, typer.Option(help="Port of the model server (loopback only).")] = 8090,
    parallel: Annotated[
        int | None, typer.Option(help="Questions answered at once (default: QA_PARALLEL).")
    ] = None,
) -> None:
    """Serve many users: a model server that answers their questions together, and the web UI
    as its client. Python programs use the same server: Settings(llm_backend="qa",
    llm_server_url="http://127.0.0.1:8090")."""
    from qa.llm.server import ModelServer

    try:
        overrides = {"seeds_dir": docs, "index_dir": index, "parallel": parallel}
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
        server = ModelServer(settings, llm_port)
        indexer = Assistant(settings)
        _index(indexer)
        err_console.print(f"Starting the model server on {server.url} …")
        server.start()
    except QAError as err:
        raise _fail(err) from err
    client = settings.model_copy(update={"llm_backend": "qa", "llm_server_url": server.url})
    err_console.print(
        f"Model server ready; Python clients: Settings(llm_backend='qa', "
        f"llm_server_url='{server.url}')"
    )
    from qa.ui import launch

    try:
        launch(Assistant(client, embeddings=indexer.embeddings), host=host, port=port)
    finally:
        server.stop()


@app.command("llm-server", hidden=True)
def llm_server(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8090,
) -> None:
    """The model server alone (``qa serve`` starts and watches it)."""
    from qa.llm.server import run_model_server

    try:
        run_model_server(Settings(), host, port)
    except QAError as err:
        raise _fail(err) from err


def _terminal_chat(assistant: Assistant) -> None:
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


@app.command("eval")
def eval_(
    gold: Annotated[Path, typer.Option(help="Gold set (JSONL).")] = Path("evals/gold.jsonl"),
    docs: Annotated[
        Path | None,
        typer.Option(help="Evaluate on this folder of documents, indexed into a temporary index."),
    ] = None,
    sample: Annotated[
        int | None, typer.Option(help="Seeded sample: n - n//3 answerable + n//3 unanswerable.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Report folder (default: evals/reports/<timestamp>/).")
    ] = None,
    gate: Annotated[
        bool, typer.Option("--gate", help="Exit 1 if a metric regressed past its tolerance.")
    ] = False,
    update_baseline: Annotated[
        bool, typer.Option("--update-baseline", help="Accept this run as the new baseline.")
    ] = False,
    baseline: Annotated[Path, typer.Option(help="Baseline file.")] = Path("evals/baseline.json"),
    per_document: Annotated[
        bool,
        typer.Option(
            "--per-document",
            help="Ask each item of an index of only its `sources` in --docs (as if each "
            "document were the user's whole corpus), not of all of --docs together.",
        ),
    ] = False,
) -> None:
    """Score answers against a gold set; write report.json/.md/.html; optionally gate."""
    from rich.table import Table

    from qa.evaluation import reports, runs

    name = runs.run_name(gold, sample)
    out = out or runs.report_dir(runs.EvalPaths().reports, name)
    try:
        with _progress() as bar:
            task = bar.add_task(f"Evaluating {name}", total=None)
            saved = runs.run_gold_set(
                _assistant(),
                runs.GoldSet(gold, docs),
                sample=sample,
                per_document=per_document,
                out=out,
                index=lambda assistant: _index(assistant, bar=bar),
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    except (QAError, ValueError, OSError) as err:
        raise _fail(QAError(str(err))) from err
    report = saved.report
    table = Table(title=f"{name}: {len(report.items)} items")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in reports.summary_table(report):
        table.add_row(key, value)
    console.print(table)
    console.print(f"Reports in {out}/")
    if update_baseline:
        reports.update_baseline(baseline, name, report)
        console.print(f"Baseline {name!r} updated in {baseline}")
    if gate:
        accepted = reports.load_baseline(baseline, name)
        if accepted is None:
            err_console.print(
                f"[red]No baseline {name!r} in {baseline}; run with --update-baseline"
            )
            raise typer.Exit(code=1)
        result = reports.check_gate(report, accepted)
        for item_id in result.newly_failing:
            console.print(f"[yellow]newly failing:[/yellow] {escape(item_id)}")
        for line in result.regressions:
            err_console.print(f"[red]regression:[/red] {escape(line)}")
        if not result.ok:
            raise typer.Exit(code=1)
        console.print("[green]Gate passed[/green]")


@app.command()
def bench(
    gold: Annotated[
        Path, typer.Option(help="Questions to time (gold JSONL; first turns are used).")
    ] = Path("evals/gold.jsonl"),
    questions: Annotated[int, typer.Option(help="How many of its questions to ask.")] = 30,
    sizes: Annotated[
        str, typer.Option(help="Synthetic corpus sizes in chunks, comma-separated; '' skips.")
    ] = "1000,10000",
    out: Annotated[Path | None, typer.Option(help="Write the JSON result here.")] = None,
) -> None:
    """Measure answer latency, throughput, index build, scaling and peak memory (the current
    configuration: set QA_* variables or qa.toml to compare others)."""
    from qa import bench as benchmarks
    from qa.evaluation import evaluate as evaluation

    try:
        settings = Settings()
        items = evaluation.load_gold(gold)
        asked = [it.turns[0].question for it in items][:questions]
        result = benchmarks.run(
            settings,
            asked,
            settings.seeds_dir,
            [int(s) for s in sizes.split(",") if s.strip()],
            progress=lambda msg: err_console.print(f"[dim]{escape(msg)}…[/dim]"),
        )
    except (QAError, ValueError, OSError) as err:
        raise _fail(QAError(str(err))) from err
    console.print(benchmarks.markdown(result))
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
        console.print(f"Wrote {out}")


@app.command()
def calibrate(
    gold: Annotated[
        list[Path] | None,
        typer.Option("--gold", help="Gold sets to add to the ratings (repeatable)."),
    ] = None,
    ratings: Annotated[bool, typer.Option(help="Use the rated answers (QA_FEEDBACK_PATH).")] = True,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the curve and the choice; change nothing.")
    ] = False,
) -> None:
    """Fit the answer threshold to your documents: ask your rated answers (and gold sets) again,
    print the risk/coverage curve, and write the threshold that withholds the most wrong
    answers for at most 0.05 of the right ones to qa.toml."""
    from qa.trust.calibration import curve_table

    assistant = _assistant()
    try:
        with _progress() as bar:
            task = bar.add_task("Asking the rated questions again", total=None)
            result = assistant.calibrate(
                gold or [],
                ratings=ratings,
                write=not dry_run,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    except (QAError, ValueError, OSError) as err:
        raise _fail(QAError(str(err))) from err
    marks = {result.current: "current"}
    if result.chosen is not None:
        marks[result.chosen] = "chosen" if result.chosen != result.current else "current, chosen"
    console.print(curve_table(result.curve, marks))
    if result.missing:
        console.print(
            f"{result.questions} questions asked; a calibration needs {result.missing} more "
            "decided answers (right and wrong ones): rate more answers. Nothing changed."
        )
    elif result.written:
        console.print(
            f"answer_threshold {result.current:g} -> {result.chosen:g}, written to {result.written}"
        )
    else:
        console.print(f"answer_threshold would be {result.chosen:g} (now {result.current:g})")


docs_app = typer.Typer(help="List or remove indexed documents.", no_args_is_help=True)
app.add_typer(docs_app, name="docs")


@docs_app.command("list")
def docs_list(docs: SeedsOpt = None, index: IndexOpt = None) -> None:
    """Every indexed document: name, type, chunks, when indexed, spans flagged as instructions
    to an AI assistant (their text never reaches the model), title."""
    from rich.table import Table

    try:
        found = _assistant(docs, index).documents()
    except QAError as err:
        raise _fail(err) from err
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
        assistant = _assistant(docs, index)
        for name in names:
            report = assistant.remove(name, delete_file=delete_file, on_wait=err_console.print)
            gone = " and deleted its file" if delete_file else ""
            console.print(f"Removed {escape(name)}: {report.removed} chunks{gone}")
    except QAError as err:
        raise _fail(err) from err


feedback_app = typer.Typer(
    help="Ratings from the UI and API, stored as gold items (run them with `qa eval --gold`).",
    no_args_is_help=True,
)
app.add_typer(feedback_app, name="feedback")
FeedbackOpt = Annotated[
    Path | None, typer.Option("--file", help="Feedback file (default: evals/feedback.jsonl).")
]


def _feedback_store(path: Path | None) -> FeedbackStore:
    return FeedbackStore(path or Settings().feedback_path)


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
    to: Annotated[Path, typer.Option("--to", help="Gold file to append them to.")] = Path(
        "evals/gold.jsonl"
    ),
    all_: Annotated[bool, typer.Option("--all", help="Promote every rating.")] = False,
    file: FeedbackOpt = None,
) -> None:
    """Promote reviewed ratings into a gold file (without their feedback metadata); ids the
    gold file already has are skipped."""
    if not ids and not all_:
        err_console.print("[red]Error:[/red] name the ids to export, or pass --all")
        raise typer.Exit(code=1)
    try:
        added = _feedback_store(file).export(None if all_ else ids, to)
    except QAError as err:
        raise _fail(err) from err
    console.print(f"Added {len(added)} item(s) to {to}: {', '.join(added) or 'none new'}")
