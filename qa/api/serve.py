"""Run the HTTP API: alone (``qa api``) or with the browser UI mounted beside it (``qa chat``,
``qa serve``), one server, one port, one line in front of the model.

Gradio apps are FastAPI apps, so the UI is mounted on the API's app
(``gradio.mount_gradio_app``) and uvicorn serves both; browser and API users then wait in the
same :class:`~qa.llm.queue.ModelQueue`. Without API keys the API answers this machine only:
``qa api`` then listens on 127.0.0.1 whatever ``--host`` says, and beside a UI listening
further it refuses every other caller (403); both say so at start-up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from qa.api.app import build_api, is_loopback
from qa.api.keys import KeyFile
from qa.llm.queue import ModelQueue
from qa.workspaces import Workspaces

if TYPE_CHECKING:
    from fastapi import FastAPI

    from qa.assistant import Assistant
    from qa.ui.early import EarlyApp
    from qa.ui.startup import Startup


def build_server(
    assistant: Assistant,
    *,
    ui: bool = True,
    index: bool = True,
    auth: object = None,
    host: str = "127.0.0.1",
    port: int = 7860,
    startup: Startup | None = None,
) -> FastAPI:
    """The API app, with the browser UI mounted at ``/`` when ``ui``; the documents folder is
    indexed (unless ``index`` is off) and the models warmed up in the background (by
    ``startup`` when given, not started yet), and then the documents' regression set is made
    and asked whenever they change (:mod:`qa.trust.refit`)."""
    from qa.trust.refit import BackgroundRefit
    from qa.ui.startup import Startup

    s = assistant.settings
    line = ModelQueue(s.parallel, s.api_max_queue)
    startup = startup or Startup(assistant, index=index)
    refit = BackgroundRefit(assistant, line.chat_first, ready=startup.wait)
    assistant.on_change.append(refit.start)
    refit.start()
    startup.start()
    keys = KeyFile(s.api_keys_file, s.admins)
    # One Assistant per workspace for the API and the page alike (shared models and indexes).
    shelf = Workspaces(assistant)
    app = build_api(assistant, line=line, keys=keys, startup=startup, refit=refit, workspaces=shelf)
    if ui:
        import gradio as gr

        from qa.ui.app import auth_from_env, build_app
        from qa.ui.render import CSS

        demo = build_app(
            assistant, startup=startup, model_queue=line, refit=refit, workspaces=shelf
        )
        gr.mount_gradio_app(
            app,
            demo,
            path="/",
            auth=auth or auth_from_env(),
            show_error=False,
            ssr_mode=False,
            css=CSS,
            theme=gr.themes.Soft(),
            server_name=host,
            server_port=port,
        )
    return app


def serve(
    assistant: Assistant,
    host: str = "127.0.0.1",
    port: int = 7860,
    *,
    ui: bool = True,
    index: bool = True,
    auth: object = None,
    say: Callable[[str], None] = print,
    startup: Startup | None = None,
    early: EarlyApp | None = None,
) -> None:
    """Serve until interrupted (see the module docstring); with ``early``, hand the app to the
    server that has been showing the progress page (:mod:`qa.ui.early`) and return once it
    serves it."""
    import uvicorn

    s = assistant.settings
    keys = KeyFile(s.api_keys_file, s.admins)
    if keys.enabled:
        note = f"API keys: {len(keys.entries())} in {s.api_keys_file}; every call needs one"
    elif ui:
        note = "No API keys (QA_API_KEYS_FILE): the API answers callers on 127.0.0.1 only" + (
            "" if is_loopback(host) else f", though the UI listens on {host}"
        )
    else:
        if not is_loopback(host):
            say(f"No API keys (QA_API_KEYS_FILE): listening on 127.0.0.1 only, not {host}")
        host = "127.0.0.1"
        note = "No API keys (QA_API_KEYS_FILE): listening on 127.0.0.1 only"
    app = build_server(
        assistant, ui=ui, index=index, auth=auth, host=host, port=port, startup=startup
    )
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host
    base = f"http://{shown}:{port}"
    if ui:
        say(f"qa: the chat UI at {base}/, the API at {base}/v1 (OpenAPI page: {base}/docs)")
    else:
        say(f"qa API at {base}/v1 (OpenAPI page: {base}/docs)")
    say(note)
    if early is not None:
        early.mount(app)
        return
    uvicorn.run(app, host=host, port=port, log_level="warning")
