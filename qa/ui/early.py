"""The page at once: ``qa chat`` answers its URL a second or so after it starts, with a page
that says what is still loading, and turns into the app by itself once the app is there.

Importing gradio, FastAPI and the models' libraries takes 5 s and more on 2 cores; until #35 the
URL answered nothing all that time (the browser said it could not connect, and the user
reloaded by hand). Now uvicorn binds the port first and serves :class:`EarlyApp`, which needs
nothing beyond the standard library: it shows a progress page to browsers while the real app
(the HTTP API with the Gradio UI mounted beside it, :func:`qa.api.serve.build_server`) is built
in a thread, which hands it over with :meth:`EarlyApp.mount`: same server, same port, no gap.
The progress page polls :data:`STATUS_PATH` and reloads itself when the app is there.

Only a browser asking for the page (``Accept: text/html``) gets the progress page. Every other
request (the API, ``/health``, Gradio's client asking for ``/config``, a script polling the URL
to learn when qa is up) waits for the app and is then answered by it, exactly as before, only
without "connection refused" first.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

log = logging.getLogger(__name__)

STATUS_PATH = "/qa/startup"
"""Where the progress page (and anyone) reads whether the app is ready and what is loading."""

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class EarlyApp:
    """An ASGI app that serves the progress page until :meth:`mount` hands it the real app,
    then passes everything to that app. ``status`` says what is loading, and ``follow``, when
    set, what the warm-up behind it is doing (:attr:`qa.ui.startup.Startup.status`); both are
    set from the thread that builds the app."""

    def __init__(self, status: str = "Loading the chat page…") -> None:
        self.status = status
        self.follow: Callable[[], str] | None = None
        self.failure: BaseException | None = None
        self._refusal = ""  # why requests held for the app get 503 instead
        self._app: ASGIApp | None = None
        self._lifespan: _Lifespan | None = None
        self._state: dict[str, Any] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = threading.Event()
        self._stop: Callable[[], None] = lambda: None
        self._settled: asyncio.Event | None = None  # the app is mounted, or will never be

    @property
    def ready(self) -> bool:
        """Whether the real app answers now."""
        return self._app is not None

    def lines(self) -> list[str]:
        """What is still loading, for the progress page (empty once ready)."""
        if self.ready:
            return []
        if self.failure is not None:
            return [f"Starting failed: {self.failure}"]
        behind = self.follow() if self.follow is not None else ""
        return [line for line in (self.status, behind) if line]

    def mount(self, app: ASGIApp, timeout: float = 120) -> None:
        """Serve ``app`` from now on: run its lifespan startup on the server's loop, then pass
        it every request, those held meanwhile first. Called from another thread once the
        server runs; raises what the app's startup raised."""
        if not self._running.wait(timeout) or self._loop is None:
            raise RuntimeError("the server did not start")
        asyncio.run_coroutine_threadsafe(self._mount(app), self._loop).result()

    def stop(self) -> None:
        """Stop the server, as Ctrl-C does. Thread-safe."""
        self._stop()

    def fail(self, failure: BaseException) -> None:
        """Building the app failed: the page says why, held requests get 503. Thread-safe."""
        self.failure = failure
        self.close(f"qa did not start: {failure}")

    def close(self, reason: str) -> None:
        """No app will come (any more): requests held for it get 503 with ``reason``."""
        self._refusal = self._refusal or reason
        if self._loop is not None and self._settled is not None:
            self._loop.call_soon_threadsafe(self._settled.set)

    async def _mount(self, app: ASGIApp) -> None:
        lifespan = _Lifespan(app, self._state)
        await lifespan.startup()
        self._lifespan, self._app = lifespan, app
        assert self._settled is not None
        self._settled.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._serve_lifespan(scope, receive, send)
            return
        if scope["type"] == "http" and scope["path"] == STATUS_PATH:
            body = {"ready": self.ready, "status": self.lines()}
            await _respond(send, 200, "application/json", json.dumps(body).encode())
            return
        if self._app is None:
            if _wants_page(scope):
                await _respond(send, 200, "text/html; charset=utf-8", self.page().encode())
                return
            if self._settled is not None:
                await self._settled.wait()
            if self._app is None:
                await _refuse(scope, send, self._refusal)
                return
            # Lifespan state the app set up after this request came in.
            scope = {**scope, "state": {**self._state, **scope.get("state", {})}}
        await self._app(scope, receive, send)

    async def _serve_lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._state = scope.get("state", self._state)  # the app's lifespan fills the server's
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._loop = asyncio.get_running_loop()
                self._settled = asyncio.Event()
                if self._refusal:
                    self._settled.set()
                self._running.set()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.close("qa is shutting down")  # requests held for the app must not hang
                if self._lifespan is not None:
                    await self._lifespan.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def page(self) -> str:
        """The progress page: what is loading, kept current, and a reload once the app is
        there."""
        items = "".join(f"<li>{html.escape(line)}</li>" for line in self.lines())
        return PAGE.replace("{items}", items).replace("{status_path}", STATUS_PATH.lstrip("/"))


class _Lifespan:
    """Drive an ASGI app's lifespan protocol as a server does on start: the app is mounted into
    a server that is already running, so nobody else will tell it to start up and shut down."""

    def __init__(self, app: ASGIApp, state: dict[str, Any]) -> None:
        self.app = app
        self.state = state
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._from_app: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        """Start the app up; raises if it says it failed."""
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        self._task = asyncio.create_task(self._run(scope))
        await self._to_app.put({"type": "lifespan.startup"})
        reply = await self._from_app.get()
        if reply["type"] == "lifespan.startup.failed":
            raise RuntimeError(f"the app did not start: {reply.get('message', '')}")

    async def shutdown(self, timeout: float = 30) -> None:
        """Shut the app down (its queue, its background jobs), waiting at most ``timeout``."""
        if self._task is None or self._task.done():
            return
        await self._to_app.put({"type": "lifespan.shutdown"})
        try:
            await asyncio.wait_for(self._from_app.get(), timeout)
        except TimeoutError:
            log.warning("the app did not shut down within %.0f s", timeout)

    async def _run(self, scope: Scope) -> None:
        try:
            await self.app(scope, self._to_app.get, self._from_app.put)
        except Exception as err:  # an app without lifespan support raises at once: that's fine
            log.debug("lifespan: %r", err)
        # Whoever waits for a reply learns the app is done with its lifespan.
        await self._from_app.put({"type": "lifespan.ended"})


def _wants_page(scope: Scope) -> bool:
    """A browser opening the URL: the progress page. Anything else waits for the app."""
    if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD") or scope["path"] != "/":
        return False
    accept = dict(scope.get("headers", [])).get(b"accept", b"")
    return b"text/html" in accept


async def _respond(send: Send, status: int, content_type: str, body: bytes) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),  # the reload must fetch the app, not this again
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _refuse(scope: Scope, send: Send, reason: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1011, "reason": reason[:120]})
    elif scope["type"] == "http":
        body = json.dumps({"error": {"message": reason}}).encode()
        await _respond(send, 503, "application/json", body)


def serve_at_once(
    build: Callable[[EarlyApp], None],
    *,
    host: str,
    port: int,
    say: Callable[[str], None] = print,
) -> EarlyApp:
    """Serve the progress page on ``host:port`` at once and run ``build(early)`` in a thread
    once the port is bound; ``build`` ends with ``early.mount(app)``. Serves until interrupted
    (or until ``build`` fails: then the server stops, and the returned app's ``failure`` says
    why)."""
    import uvicorn

    early = EarlyApp()
    config = uvicorn.Config(early, host=host, port=port, log_level="warning", lifespan="on")
    server = _server(config, early)
    early._stop = lambda: setattr(server, "should_exit", True)

    def run() -> None:
        while not server.started:  # the port is bound: the build may take the CPU now
            if server.should_exit:
                return
            time.sleep(0.02)
        shown = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host
        say(f"qa: starting; http://{shown}:{port}/ shows what is loading")
        try:
            build(early)
        except BaseException as err:
            early.fail(err)
            early.stop()

    threading.Thread(target=run, name="qa-build", daemon=True).start()
    server.run()
    return early


def _server(config: Any, early: EarlyApp) -> Any:
    """uvicorn's server, telling ``early`` when a signal stops it: requests held for the app
    then get 503 at once instead of keeping the shutdown waiting for an app that won't come."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            early.close("qa was stopped")
            super().handle_exit(sig, frame)

    return Server(config)


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>qa: ask your documents</title>
<noscript><meta http-equiv="refresh" content="2"></noscript>
<style>
  body { font-family: system-ui, sans-serif; color: #1f2937; background: #f9fafb; margin: 0; }
  main { max-width: 40rem; margin: 12vh auto; padding: 0 1.5rem; }
  h1 { font-size: 1.5rem; margin: 0 0 .5rem; }
  .bar { height: .3rem; background: #e5e7eb; border-radius: .2rem; overflow: hidden; }
  .bar::after { content: ""; display: block; width: 30%; height: 100%; background: #6366f1;
    animation: slide 1.2s ease-in-out infinite; }
  @keyframes slide { from { margin-left: -30%; } to { margin-left: 100%; } }
  ul { padding-left: 1.2rem; line-height: 1.6; }
  p { color: #6b7280; font-size: .9rem; }
</style>
</head>
<body>
<main id="qa-loading">
  <h1>qa is getting ready</h1>
  <div class="bar"></div>
  <ul id="qa-loading-status">{items}</ul>
  <p>This page turns into the chat by itself; no need to reload.</p>
</main>
<script>
(() => {
  const list = document.getElementById("qa-loading-status");
  let misses = 0;
  const show = (lines) => {
    list.replaceChildren(...lines.map((line) => {
      const item = document.createElement("li");
      item.textContent = line;
      return item;
    }));
  };
  const poll = async () => {
    try {
      const reply = await fetch("{status_path}", { cache: "no-store" });
      const state = await reply.json();
      misses = 0;
      if (state.ready) {
        location.reload();
        return;
      }
      show(state.status);
    } catch (err) {
      misses += 1;
      if (misses > 10) show(["qa does not answer: is it still running?"]);
    }
    setTimeout(poll, 400);
  };
  setTimeout(poll, 400);
})();
</script>
</body>
</html>
"""
