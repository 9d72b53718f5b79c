"""``qa serve``: one model for many users. A model server process decodes every worker's
requests together (:mod:`qa.llm.engine`); the browser UI and any Python program are its clients
(``llm_backend="qa"``, :class:`qa.llm.client.QAServerChat`).

Why a process of its own: several UI workers or scripts share one model in RAM and one batch;
a crash or kill of the model server costs only the answers being generated (the UI reports
them as failed, chats already saved stay saved), and the supervisor starts it again.

The protocol is one endpoint: ``POST /v1/generate`` with ``{"messages": [...], "stop": [...],
"max_tokens", "grammar", "prefill", "hidden_state", "ban"}`` answers a stream of JSON lines
``{"text": ..., "meta": {...}}`` (the pieces :class:`~qa.llm.llamacpp.LlamaCppChat` yields, with
every signal the answer decision reads), blank lines while the request waits for a free
sequence, or ``{"error": ...}``. ``GET /health`` says when the model is loaded.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

from qa.config import Settings
from qa.errors import BackendError, QAError

log = logging.getLogger(__name__)

HEARTBEAT_S = 5.0
"""A waiting request gets a blank line this often, so its client knows the server lives."""


def build_app(settings: Settings) -> Any:
    """The model server's ASGI app over a local model loaded now."""
    import anyio
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    from qa.llm.llamacpp import LlamaCppChat
    from qa.llm.models import make_llm

    llm = make_llm(settings.model_copy(update={"llm_backend": "local"}))
    assert isinstance(llm, LlamaCppChat)
    llm.engine  # noqa: B018 - load the model before accepting requests

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "parallel": llm.parallel, "model": llm.model_path})

    async def generate(request: Request) -> Any:
        body = await request.json()
        options = {
            k: body[k]
            for k in ("grammar", "prefill", "hidden_state", "max_tokens", "ban")
            if k in body
        }
        try:
            ticket = llm.submit(body["messages"], body.get("stop"), **options)
        except (KeyError, TypeError) as err:
            return JSONResponse({"error": f"bad request: {err}"}, status_code=400)
        except QAError as err:
            return JSONResponse({"error": str(err)}, status_code=400)

        async def lines() -> AsyncIterator[str]:
            try:
                while True:
                    try:
                        piece = await anyio.to_thread.run_sync(ticket.get, HEARTBEAT_S)
                    except queue.Empty:
                        yield "\n"
                        continue
                    except BackendError as err:
                        yield json.dumps({"error": str(err)}) + "\n"
                        return
                    if piece is None:
                        return
                    yield json.dumps({"text": piece[0], "meta": piece[1]}) + "\n"
            finally:
                ticket.cancel()  # the client went away: free its sequence

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    routes = [Route("/health", health), Route("/v1/generate", generate, methods=["POST"])]
    return Starlette(routes=routes)


def run_model_server(settings: Settings, host: str, port: int) -> None:
    """Serve the local model until interrupted (``qa llm-server``)."""
    import uvicorn

    uvicorn.run(build_app(settings), host=host, port=port, log_level="warning")


def healthy(url: str, timeout: float = 2.0) -> bool:
    """Whether a model server answers at ``url``."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=timeout) as reply:
            return reply.status == 200
    except OSError:
        return False


class ModelServer:
    """A ``qa llm-server`` child process, started again whenever it dies."""

    def __init__(self, settings: Settings, port: int, *, start_timeout: float = 600.0) -> None:
        self.settings = settings
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.start_timeout = start_timeout
        self.process: subprocess.Popen | None = None
        self.restarts = 0
        self._stop = threading.Event()
        self._watch = threading.Thread(target=self._supervise, name="qa-llm-watch", daemon=True)

    def _command(self) -> list[str]:
        return [sys.executable, "-m", "qa", "llm-server", "--port", str(self.port)]

    def _environment(self) -> dict[str, str]:
        s = self.settings
        given = {
            "QA_SEEDS_DIR": str(s.seeds_dir),
            "QA_INDEX_DIR": str(s.index_dir),
            "QA_LLM_MODEL": s.llm_model,
            "QA_PARALLEL": str(s.parallel),
            "QA_N_CTX": str(s.n_ctx),
            "QA_CACHE_DIR": str(s.cache_dir),
        }
        return {**os.environ, **given}

    def start(self) -> None:
        """Start the server and wait until its model is loaded; then watch it."""
        self._spawn()
        self._watch.start()

    def _spawn(self) -> None:
        self.process = subprocess.Popen(self._command(), env=self._environment())
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BackendError(
                    f"The qa model server exited at start (code {self.process.returncode}); "
                    "see its messages above"
                )
            if healthy(self.url):
                return
            time.sleep(0.5)
        self.process.kill()
        raise BackendError(f"The qa model server did not start within {self.start_timeout:g}s")

    def _supervise(self) -> None:
        while not self._stop.wait(1.0):
            if self.process is not None and self.process.poll() is not None:
                log.warning(
                    "the model server died (code %s); starting it again", self.process.returncode
                )
                self.restarts += 1
                try:
                    self._spawn()
                except BackendError as err:
                    log.error("%s", err)

    def stop(self) -> None:
        """Stop watching and end the server."""
        self._stop.set()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
