"""``qa api``: the HTTP API alone (no browser UI), and ``qa api keys add|list|remove``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from qa.cli.common import IndexOpt, SeedsOpt, app, assistant_for, console, err_console, fail
from qa.config import Settings
from qa.errors import QAError

api_app = typer.Typer(
    help="The HTTP API alone: OpenAI-compatible chat with citations, documents, ratings "
    "(OpenAPI page at /docs). Without API keys it listens on 127.0.0.1 only.",
    invoke_without_command=True,
    no_args_is_help=False,
)
keys_app = typer.Typer(help="API keys (the file QA_API_KEYS_FILE names), stored bcrypt-hashed.")
api_app.add_typer(keys_app, name="keys")
app.add_typer(api_app, name="api")


@api_app.callback()
def api(
    ctx: typer.Context,
    docs: SeedsOpt = None,
    index: IndexOpt = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on (127.0.0.1 unless keys are set).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Serve the HTTP API without the browser UI."""
    if ctx.invoked_subcommand is not None:
        return
    from qa.api.serve import serve

    try:
        assistant = assistant_for(docs, index)
    except QAError as err:
        raise fail(err) from err
    serve(assistant, host=host, port=port, ui=False, say=lambda m: err_console.print(escape(m)))


def _keys():
    from qa.api.keys import KeyFile

    settings = Settings()
    return KeyFile(settings.api_keys_file, settings.admins), settings


@keys_app.command("add")
def keys_add(
    name: Annotated[str, typer.Argument(help="Who the key is for (their user name).")],
    role: Annotated[
        str, typer.Option(help="admin (may change documents) or user (reads, asks, rates).")
    ] = "user",
    workspace: Annotated[
        list[str] | None,
        typer.Option(
            "--workspace",
            help="Limit the key to this workspace (`qa` is the project root's), as NAME or "
            "NAME=ROLE (default role: --role); repeat for more. Without it the key may use "
            "every workspace.",
        ),
    ] = None,
) -> None:
    """Make a key for NAME and print it once (only its hash is stored)."""
    keys, settings = _keys()
    limited = dict(w.partition("=")[::2] for w in workspace) if workspace else None
    try:
        key = keys.add(name, role, limited)  # type: ignore[arg-type]
    except QAError as err:
        raise fail(err) from err
    where = ", ".join(f"{w} ({r or role})" for w, r in limited.items()) if limited else ""
    err_console.print(
        f"Key for {escape(name)} ({escape(where or role)}) stored in {settings.api_keys_file}; "
        "it is shown this once:"
    )
    console.print(key, soft_wrap=True)


@keys_app.command("list")
def keys_list() -> None:
    """The stored keys: id, user, role (or the workspaces it may use, with a role in each), when
    made (never the keys themselves)."""
    keys, _ = _keys()
    try:
        entries = keys.entries()
    except QAError as err:
        raise fail(err) from err
    if not entries:
        err_console.print("No API keys; `qa api keys add NAME` makes one.")
    for e in entries:
        caller = keys.caller(e)
        roles = caller.workspaces
        role = "admin" if caller.admin else "user"
        if roles is not None:
            role = " ".join(f"{w}={r}" for w, r in roles.items())
        console.print(f"qa-{e.id}  {escape(e.name)}  {escape(role)}  {e.created}")


@keys_app.command("remove")
def keys_remove(
    name: Annotated[str, typer.Argument(help="A user name (all their keys) or a key id.")],
) -> None:
    """Revoke keys; a running server refuses them at once."""
    keys, _ = _keys()
    try:
        n = keys.remove(name)
    except QAError as err:
        raise fail(err) from err
    if not n:
        raise fail(QAError(f"No key of {name!r}; `qa api keys list` shows them"))
    err_console.print(f"Removed {n} key(s).")
