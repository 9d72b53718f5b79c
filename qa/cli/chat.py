"""Commands that answer: ``qa index | ask | chat | serve`` (and the hidden ``llm-server``)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from qa.cli.common import (
    IndexOpt,
    SeedsOpt,
    TopKOpt,
    app,
    assistant_for,
    console,
    err_console,
    fail,
    index_with_progress,
    print_answer,
    settings_for,
)
from qa.config import Settings
from qa.errors import QAError

if TYPE_CHECKING:
    from qa.assistant import Assistant
    from qa.ui.early import EarlyApp


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
        assistant = assistant_for(docs, index)
        report = index_with_progress(assistant, paths or None)
        if (report.added or report.removed) and assistant.settings.auto_calibrate:
            err_console.print(
                "[dim]qa chat and qa api make and ask questions from these documents in the "
                "background when they start (QA_AUTO_CALIBRATE=false: never); "
                "`qa calibrate --synthetic` does it now and fits the decision to them.[/dim]"
            )
    except QAError as err:
        raise fail(err) from err


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
        assistant = assistant_for(docs, index, top_k)
        if as_json:
            answer = asdict(assistant.ask(question))
            answer.pop("signals")  # thousands of hidden-state floats
            console.print_json(json.dumps(answer))
            return
        stream = assistant.stream(question)
        for token in stream:
            console.print(escape(token), end="")
        assert stream.answer is not None
        print_answer(stream.answer, streamed=True)
    except QAError as err:
        raise fail(err) from err


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
    adds a login (ann:pw1,bob:pw2 for several users). The HTTP API is served beside it (/v1)."""
    if terminal:
        try:
            assistant = assistant_for(docs, index)
            index_with_progress(assistant)
        except QAError as err:
            raise fail(err) from err
        _terminal_chat(assistant)
        return
    from qa.ui.early import serve_at_once

    def build(early: EarlyApp) -> None:
        # Behind the progress page: langchain, FastAPI and gradio load, then indexing and the
        # models' warm-up follow behind the app, with a status. The HTTP API is served beside
        # it (/v1, /docs), sharing the model's line.
        from qa.ui.startup import STARTING, Startup

        assistant = assistant_for(docs, index)
        startup = Startup(assistant)
        early.follow = lambda: "" if startup.status == STARTING else startup.status
        from qa.api.serve import serve  # gradio is slow to import; load it only for the UI

        serve(assistant, host=host, port=port, say=_say, startup=startup, early=early)

    # The page comes first, a second or so after the start (qa.ui.early).
    early = serve_at_once(build, host=host, port=port, say=_say)
    if isinstance(early.failure, QAError):
        raise fail(early.failure) from early.failure
    if early.failure is not None:
        raise early.failure


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
    from qa.assistant import Assistant
    from qa.llm.server import ModelServer

    try:
        settings = settings_for(docs, index, parallel=parallel)
        server = ModelServer(settings, llm_port)
        indexer = Assistant(settings)
        index_with_progress(indexer)
        err_console.print(f"Starting the model server on {server.url} …")
        server.start()
    except QAError as err:
        raise fail(err) from err
    client = settings.model_copy(update={"llm_backend": "qa", "llm_server_url": server.url})
    err_console.print(
        f"Model server ready; Python clients: Settings(llm_backend='qa', "
        f"llm_server_url='{server.url}')"
    )
    from qa.api.serve import serve

    try:
        served = Assistant(client, embeddings=indexer.embeddings)
        serve(served, host=host, port=port, index=False, say=_say)  # indexed above
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
        raise fail(err) from err


def _say(message: str) -> None:
    err_console.print(escape(message), soft_wrap=True)


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
        print_answer(answer, streamed=False)
        history += [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer.text},
        ]
