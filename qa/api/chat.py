"""``POST /v1/chat/completions``: an OpenAI-style request in, qa's verified answer out.

What it guards against:

* **Unverified words on the wire.** qa checks an answer after the model wrote it and may
  withdraw it (unsupported, unlikely right, planted). The browser replaces the draft it showed;
  an OpenAI client cannot un-show a delta. So with ``stream: true`` the events start at once
  (the role, then ``: waiting`` comments while the question waits and is answered) and the
  content arrives once it is checked: content deltas never carry text qa later withdraws, and
  the streamed content is exactly the non-streamed one.
* **A slow model holding sockets.** A request takes a place in the :class:`ModelQueue` before
  any work (429 when full); one whose client disconnects gives its place up, and the answer
  being written stops at its next token.
* **Requests qa cannot honour** (a ``model`` that names no workspace, ``n > 1``, tools, a JSON
  response format) are refused with 4xx before they queue; habitual sampling fields are
  accepted and ignored. The ``model`` picks the workspace (:mod:`qa.workspaces`): ``qa`` is
  the one the server was started with.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from qa.answer import Answer
from qa.api.errors import ApiError, from_qa_error
from qa.api.keys import Caller
from qa.api.schemas import (
    MODEL_ID,
    ChatCompletion,
    ChatMessage,
    ChatRequest,
    Choice,
    QAExtra,
    ReplyMessage,
    Usage,
)
from qa.errors import QAError
from qa.llm.queue import ModelQueue, Place
from qa.workspaces import WorkspaceError, Workspaces

if TYPE_CHECKING:
    from fastapi import Request

    from qa.assistant import Assistant

log = logging.getLogger(__name__)

REPLIES_KEPT = 1000
"""Replies remembered for ``POST /v1/feedback`` (the oldest is forgotten first)."""
KEEPALIVE_S = 5.0
"""Seconds between ``: waiting`` comments of a stream (and disconnect checks of a request)."""


@dataclass(frozen=True)
class Reply:
    """A reply kept for rating: the answer (without raw model signals), who asked, and the
    workspace that answered (its ratings file takes the rating)."""

    answer: Answer
    user: str
    workspace: str = MODEL_ID


class Replies:
    """The last :data:`REPLIES_KEPT` replies by id."""

    def __init__(self, size: int = REPLIES_KEPT) -> None:
        self.size = size
        self._items: OrderedDict[str, Reply] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, reply_id: str, answer: Answer, user: str, workspace: str = MODEL_ID) -> None:
        # Without the passages searched and the hidden states: a rating needs neither, and
        # they would make each kept reply hundreds of kilobytes.
        light = replace(answer, retrieved=[], signals=None)
        with self._lock:
            self._items[reply_id] = Reply(light, user, workspace)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def get(self, reply_id: str) -> Reply | None:
        with self._lock:
            return self._items.get(reply_id)


def _text(message: ChatMessage) -> str:
    content = message.content
    if content is None or isinstance(content, str):
        return content or ""
    parts = []
    for part in content:
        if part.type != "text":
            msg = f"qa reads text only; a {part.type!r} part cannot be answered"
            raise ApiError(400, msg, param="messages")
        parts.append(part.text or "")
    return "\n".join(parts)


def conversation(messages: list[ChatMessage]) -> tuple[str, list[dict[str, str]]]:
    """The question (the last message, a user's) and the turns before it, as
    :meth:`qa.Assistant.ask` takes them; system and developer messages are left out."""
    last = messages[-1]
    if last.role != "user":
        msg = f"The last message must be the user's question, not {last.role!r}"
        raise ApiError(400, msg, param="messages")
    history = []
    for m in messages[:-1]:
        if m.role in ("tool", "function"):
            raise ApiError(400, "qa does not call tools; send no tool messages", param="messages")
        if m.role in ("user", "assistant"):
            history.append({"role": m.role, "content": _text(m)})
    return _text(last), history


def check(body: ChatRequest) -> None:
    """Refuse what qa cannot honour (see the module docstring); the model is checked by
    :func:`pick`."""
    if body.n not in (None, 1):
        raise ApiError(400, "qa gives one answer per question: n must be 1", param="n")
    if body.tools or body.functions:
        raise ApiError(400, "qa does not call tools or functions", param="tools")
    for name in ("tool_choice", "function_call"):
        if getattr(body, name) not in (None, "none"):
            raise ApiError(400, "qa does not call tools or functions", param=name)
    if body.response_format and body.response_format.get("type", "text") != "text":
        raise ApiError(
            400,
            "qa's replies are text with [n] citation marks; the structured data is in the "
            "reply's 'qa' field",
            param="response_format",
        )


class Answering:
    """One question answered in a worker thread: waits for its place, then reports
    ``("started"|"answer"|"error", value)`` events to the event loop."""

    def __init__(
        self,
        assistant: Assistant,
        place: Place,
        line: ModelQueue,
        question: str,
        history: list[dict[str, str]],
        ready: Callable[[], object] | None = None,
        model: str = MODEL_ID,
    ) -> None:
        self.assistant = assistant
        self.model = model
        """The workspace answering (the request's ``model``)."""
        self.place = place
        self.line = line
        self.question = question
        self.history = history
        self.ready = ready
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._stop = threading.Event()
        self.done = False

    def start(self) -> Answering:
        threading.Thread(target=self._run, name="qa-api-answer", daemon=True).start()
        return self

    def cancel(self) -> None:
        """The client went away: leave the line, or stop at the next token."""
        self._stop.set()
        self.place.cancel()

    def _put(self, kind: str, value: Any = None) -> None:
        with contextlib.suppress(RuntimeError):  # the event loop is gone (shutting down)
            self._loop.call_soon_threadsafe(self.events.put_nowait, (kind, value))

    def _run(self) -> None:
        try:
            if not self.place.wait():
                return
            with self.place, self.line.chat_first.chat():
                self._put("started")
                if self.ready is not None:
                    self.ready()  # the warm-up of a server that just started
                stream = self.assistant.stream(self.question, self.history)
                for _ in stream:
                    if self._stop.is_set():
                        stream.close()
                        return
                self._put("answer", stream.answer)
        except Exception as err:
            if not isinstance(err, QAError):
                log.exception("answering %r failed", self.question[:200])
            self._put("error", err)


def pick(
    workspaces: Workspaces,
    model: str,
    who: Caller | None = None,
    *,
    change: bool = False,
    param: str = "model",
) -> Assistant:
    """The Assistant of the workspace ``model`` names, for caller ``who`` (None: anyone).

    Raises:
        ApiError: 404 if no workspace has that name (the message lists the ones ``who`` may
            use); 403 if ``who``'s key may not use it, or, with ``change``, may not change
            its documents.
    """
    try:
        found = workspaces.get(model)
    except WorkspaceError as err:
        names = ", ".join(repr(n) for n in workspaces.names() if who is None or who.may_use(n))
        raise ApiError(
            404,
            f"The model {model!r} does not exist here: the models are the workspaces "
            f"({names}; GET /v1/models, `qa workspace create` makes one)",
            code="model_not_found",
            param=param,
        ) from err
    if who is not None and not who.may_use(model):
        raise ApiError(
            403,
            f"The key of {who.name} may not use the workspace {model!r} (GET /v1/models lists "
            "the ones it may); an admin can make a key for it with `qa api keys add "
            f"{who.name} --workspace {model}`",
            code="workspace_forbidden",
            param=param,
        )
    if change and who is not None and not who.may_change(model):
        raise ApiError(
            403,
            f"{who.name} may read and ask in {model!r} but not change its documents: that "
            "takes an admin key for it (role admin, or a user named in QA_ADMINS)",
            code="admin_required",
        )
    return found


def _error(err: BaseException) -> ApiError:
    if isinstance(err, ApiError):
        return err
    if isinstance(err, QAError):
        return from_qa_error(err)
    return ApiError(500, "Answering failed; details are in the server log")


class ChatService:
    """Answers chat completions over the workspace each request's ``model`` names (``qa``:
    ``assistant``), one place in ``line`` each."""

    def __init__(
        self,
        assistant: Assistant,
        line: ModelQueue,
        replies: Replies,
        ready: Callable[[], object] | None = None,
        workspaces: Workspaces | None = None,
    ) -> None:
        self.assistant = assistant
        self.workspaces = workspaces or Workspaces(assistant)
        self.line = line
        self.replies = replies
        self.ready = ready

    def begin(self, body: ChatRequest, caller: Caller) -> Answering:
        """Check the request (and that ``caller`` may use its workspace), take a place in line
        and start answering.

        Raises:
            ApiError, InvalidQuestionError: refused before queuing.
            QueueFull: the line is full.
        """
        from qa.text import clean_question

        check(body)
        assistant = pick(self.workspaces, body.model, caller)
        question, history = conversation(body.messages)
        question = clean_question(question, assistant.settings.max_question_chars)
        place = self.line.enter()
        work = Answering(assistant, place, self.line, question, history, self.ready, body.model)
        return work.start()

    def reply(
        self, work: Answering, answer: Answer, caller: Caller, reply_id: str | None = None
    ) -> ChatCompletion:
        """The completion for ``answer``, remembered for rating."""
        reply_id = reply_id or new_id()
        self.replies.add(reply_id, answer, caller.name, work.model)
        return ChatCompletion(
            id=reply_id,
            created=int(time.time()),
            model=work.model,
            choices=[Choice(message=ReplyMessage(content=answer.text))],
            usage=Usage.of(answer),
            qa=QAExtra.of(answer, work.place.waited_s),
        )

    async def complete(self, request: Request, body: ChatRequest, caller: Caller) -> Any:
        """A whole reply (``stream: false``)."""
        work = self.begin(body, caller)
        try:
            while True:
                try:
                    kind, value = await asyncio.wait_for(work.events.get(), KEEPALIVE_S)
                except TimeoutError:
                    if await request.is_disconnected():
                        log.info("a client gave up waiting; its place is freed")
                        return None
                    continue
                if kind == "answer":
                    work.done = True
                    return self.reply(work, value, caller)
                if kind == "error":
                    work.done = True
                    raise _error(value)
        finally:
            if not work.done:
                work.cancel()

    async def stream(self, body: ChatRequest, caller: Caller) -> AsyncIterator[str]:
        """Server-sent events in OpenAI's chunk format (``stream: true``); see the module
        docstring for when the content comes. ``begin`` errors are raised before the first
        event, so they still get their HTTP status."""
        work = self.begin(body, caller)
        return self._events(work, body, caller)

    async def _events(self, work: Answering, body: ChatRequest, caller: Caller):
        created = int(time.time())
        head = {"object": "chat.completion.chunk", "created": created, "model": body.model}

        def chunk(reply_id: str, delta: dict, finish: str | None = None, **extra: Any) -> str:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return _sse({"id": reply_id, **head, "choices": [choice], **extra})

        reply_id = new_id()
        try:
            yield chunk(reply_id, {"role": "assistant", "content": ""})
            while True:
                try:
                    kind, value = await asyncio.wait_for(work.events.get(), KEEPALIVE_S)
                except TimeoutError:
                    ahead = work.place.position()
                    yield f": waiting ({ahead} ahead)\n\n" if ahead else ": answering\n\n"
                    continue
                if kind == "error":
                    work.done = True
                    yield _sse(_error(value).body())
                    yield "data: [DONE]\n\n"
                    return
                if kind != "answer":
                    continue
                work.done = True
                done = self.reply(work, value, caller, reply_id)
                yield chunk(done.id, {"content": done.choices[0].message.content})
                yield chunk(done.id, {}, "stop", qa=done.qa.model_dump())
                if body.stream_options and body.stream_options.include_usage:
                    usage = {"usage": done.usage.model_dump()}
                    yield _sse({"id": done.id, **head, "choices": [], **usage})
                yield "data: [DONE]\n\n"
                return
        finally:
            if not work.done:  # the client disconnected: free the place, stop the model
                work.cancel()


def new_id() -> str:
    """A reply id nobody can guess (it is all a rating needs)."""
    return f"chatcmpl-{uuid.uuid4().hex}"


def _sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"
