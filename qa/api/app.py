"""The HTTP API's routes: chat, models, documents, feedback; who may call each.

:func:`build_api` returns a FastAPI app over an :class:`~qa.Assistant`; :mod:`qa.api.serve`
runs it alone (``qa api``) or with the browser UI mounted beside it (``qa chat``, ``qa
serve``). Only formatting and Assistant calls live here: answering is in :mod:`qa.api.chat`,
keys in :mod:`qa.api.keys`, the line in front of the model in :mod:`qa.llm.queue`.
"""

from __future__ import annotations

import ipaddress
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, File, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from qa.api import errors
from qa.api.chat import ChatService, Replies, pick
from qa.api.errors import ApiError
from qa.api.keys import Caller, KeyFile
from qa.api.schemas import (
    MODEL_ID,
    ChatCompletion,
    ChatRequest,
    DocumentList,
    DocumentOut,
    ErrorBody,
    FeedbackOut,
    FeedbackRequest,
    ModelCard,
    ModelList,
    Removed,
    UploadResult,
)
from qa.llm.queue import ModelQueue
from qa.uploads import add_uploads
from qa.workspaces import Workspaces

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from qa.assistant import Assistant
    from qa.trust.refit import BackgroundRefit
    from qa.ui.startup import Startup

log = logging.getLogger(__name__)

NO_KEYS = (
    "No API keys are set, so the API answers only on this machine (127.0.0.1); create keys "
    "with `qa api keys add NAME` and point QA_API_KEYS_FILE at their file"
)
Workspace = Annotated[
    str, Query(description="The workspace (a model of GET /v1/models); `qa` by default.")
]
ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorBody} for s in (400, 401, 403, 404, 409, 413, 415, 429)
}


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (a client address) is this machine."""
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return host == "localhost"


class BodyLimit:
    """Refuse API request bodies over ``limit`` bytes with 413, by their Content-Length or,
    without one, as soon as more arrived (ASGI middleware; only for ``/v1/`` paths, the UI has
    its own upload rules). A body without a length is read whole before the app sees it: FastAPI
    would turn an error raised while it reads into a vague 400."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        too_big = ApiError(
            413,
            f"The request body is over {self.limit / 1e6:g} MB (QA_API_MAX_BODY_MB)",
            code="body_too_large",
        ).response()
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await too_big(scope, receive, send)
            return
        if length is not None:
            await self.app(scope, receive, send)
            return
        # No length given (chunked): read it all, counting, before the app sees any of it.
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                await too_big(scope, receive, send)
                return
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


_bearer = HTTPBearer(auto_error=False, description="An API key from `qa api keys add`.")


def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """Who calls: the key's user; without keys, anyone on this machine (as an admin)."""
    keys: KeyFile = request.app.state.keys
    if not keys.enabled:
        if not is_loopback(request.client.host if request.client else None):
            raise ApiError(403, NO_KEYS, code="keys_required")
        return Caller("", admin=True)
    if credentials is None:
        raise ApiError(
            401, "No API key: send the header Authorization: Bearer <key>", code="missing_key"
        )
    found = keys.check(credentials.credentials)
    if found is None:
        raise ApiError(401, "Wrong API key", code="invalid_api_key")
    return found


Anyone = Annotated[Caller, Depends(caller)]
"""Any caller with a key (or on this machine without keys); which workspaces they may use and
change is checked per request (:func:`qa.api.chat.pick`)."""


def build_api(
    assistant: Assistant,
    *,
    line: ModelQueue | None = None,
    keys: KeyFile | None = None,
    startup: Startup | None = None,
    refit: BackgroundRefit | None = None,
    workspaces: Workspaces | None = None,
) -> FastAPI:
    """The API over ``assistant``: questions wait in ``line`` (default: a line of its own),
    callers are checked against ``keys`` (default: ``settings.api_keys_file``), and answers
    wait for ``startup`` when given; ``/health`` says what ``refit`` is doing. The ``model`` of
    a request picks its Assistant from ``workspaces`` (default: one over ``assistant``; give the
    browser UI's, so both share them)."""
    s = assistant.settings
    line = line or ModelQueue(s.parallel, s.api_max_queue)
    keys = keys or KeyFile(s.api_keys_file, s.admins)
    replies = Replies()
    workspaces = workspaces or Workspaces(assistant)
    chat = ChatService(assistant, line, replies, startup.wait if startup else None, workspaces)
    app = FastAPI(
        title="qa",
        summary="Cited answers from your documents, or an honest 'the documents don't say'.",
        description="OpenAI-compatible chat (`/v1/chat/completions`, `/v1/models`) with the "
        "citations and qa's judgement of each answer in the reply's `qa` field; documents and "
        "ratings. Send `Authorization: Bearer <key>` when keys are set.",
        version="1",
        docs_url="/docs",
        redoc_url=None,
    )
    errors.install(app)
    app.add_middleware(BodyLimit, limit=int(s.api_max_body_mb * 1e6))
    app.state.keys = keys
    app.state.line = line  # shared with a UI mounted beside (qa.api.serve)

    @app.get("/health", include_in_schema=False)
    def health() -> dict[str, Any]:
        state: dict[str, Any] = {"status": "ok", "ready": startup.ready if startup else True}
        if refit is not None:
            state["refit"] = {"running": refit.busy, "note": refit.status, "error": refit.error}
        return state

    @app.get("/v1/models", response_model=ModelList, responses=ERRORS, tags=["chat"])
    def models(who: Anyone) -> ModelList:
        """The workspaces the key may use, each a model: `qa` (the one the server was started
        with) first."""
        names = [name for name in workspaces.names() if who.may_use(name)]
        return ModelList(data=[ModelCard(id=name) for name in names])

    @app.get("/v1/models/{model}", response_model=ModelCard, responses=ERRORS, tags=["chat"])
    def model(model: str, who: Anyone) -> ModelCard:
        pick(workspaces, model, who)
        return ModelCard(id=model)

    @app.post(
        "/v1/chat/completions",
        response_model=ChatCompletion,
        responses={
            **ERRORS,
            200: {"description": "The reply; with `stream: true`, server-sent events."},
        },
        tags=["chat"],
    )
    async def chat_completions(request: Request, body: ChatRequest, who: Anyone) -> Any:
        """Answer the last message, a follow-up of the ones before it. The content is the
        answer with its `[n]` marks; or, when the documents do not confirm one, the candidate
        marked unconfirmed with the sentence it came from; or "I don't know: the documents
        don't say." when nothing holds one. `qa` holds the `status` (answered, unconfirmed,
        not_found), the citations, `answerability`, `decided_by`, `shape` and timings.
        """
        if body.stream:
            events = await chat.stream(body, who)
            return StreamingResponse(
                events,
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        reply = await chat.complete(request, body, who)
        return reply if reply is not None else JSONResponse({}, status_code=499)

    @app.get("/v1/documents", response_model=DocumentList, responses=ERRORS, tags=["documents"])
    def documents(who: Anyone, workspace: Workspace = MODEL_ID) -> DocumentList:
        """Every indexed document (of the workspace named, default `qa`)."""
        return DocumentList(
            data=[
                DocumentOut(
                    name=d.source,
                    type=d.type,
                    chunks=d.chunks,
                    title=d.title,
                    indexed_at=d.indexed_at,
                    flagged=d.flagged,
                )
                for d in pick(workspaces, workspace, who, param="workspace").documents()
            ]
        )

    @app.post(
        "/v1/documents",
        response_model=UploadResult,
        status_code=201,
        responses=ERRORS,
        tags=["documents"],
    )
    async def upload(
        file: Annotated[list[UploadFile], File(description="One or more documents.")],
        who: Anyone,
        workspace: Workspace = MODEL_ID,
    ) -> UploadResult:
        """Add documents (multipart field `file`, repeatable) to the workspace named (default
        `qa`) with the browser's checks: type, size, empty or binary files are refused; a
        different file of the same name is kept and the upload renamed. Takes a key that is
        admin in that workspace."""
        target = pick(workspaces, workspace, who, change=True, param="workspace")
        with tempfile.TemporaryDirectory(prefix="qa-upload-") as tmp:
            paths = []
            for i, part in enumerate(file):
                folder = Path(tmp) / str(i)  # one folder each: two parts may share a name
                folder.mkdir()
                path = folder / (Path(part.filename or "upload").name or "upload")
                with path.open("wb") as out:
                    while block := await part.read(1 << 20):
                        out.write(block)
                paths.append(path)
            done = await run_in_threadpool(add_uploads, target, paths, None, log.warning)
        if done.report is None:
            reasons = "; ".join(done.refused) or "no file given"
            raise ApiError(415, f"Nothing was added: {reasons}", code="unsupported_file")
        return UploadResult(
            added=done.added,
            refused=done.refused,
            chunks_added=done.report.added,
            chunks_unchanged=done.report.unchanged,
            skipped=done.report.skipped,
        )

    @app.delete(
        "/v1/documents/{name:path}", response_model=Removed, responses=ERRORS, tags=["documents"]
    )
    def remove(
        name: str, who: Anyone, delete_file: bool = False, workspace: Workspace = MODEL_ID
    ) -> Removed:
        """Take a document out of the workspace's index (its file stays unless
        `delete_file=true`); takes a key that is admin in that workspace."""
        target = pick(workspaces, workspace, who, change=True, param="workspace")
        report = target.remove(name, delete_file=delete_file, on_wait=log.warning)
        return Removed(name=name, chunks_removed=report.removed)

    @app.post(
        "/v1/feedback",
        response_model=FeedbackOut,
        status_code=201,
        responses=ERRORS,
        tags=["feedback"],
    )
    def feedback(body: FeedbackRequest, who: Anyone) -> FeedbackOut:
        """Rate a reply by its id, as 👍/👎 in the browser: it becomes a regression item in
        the feedback file (`qa eval --gold evals/feedback.jsonl`)."""
        reply = replies.get(body.id)
        if reply is None or (keys.enabled and reply.user != who.name):
            raise ApiError(
                404,
                f"No reply {body.id!r} to rate: ids are kept for the last {replies.size} "
                "replies of this server, for the caller who asked",
                code="reply_not_found",
                param="id",
            )
        item = pick(workspaces, reply.workspace, who).feedback(
            reply.answer,
            body.verdict,
            body.correction or None,
            unanswerable=body.unanswerable,
            user=who.name or None,
        )
        return FeedbackOut(id=item.id, verdict=item.verdict, expectation=item.expectation)

    return app
