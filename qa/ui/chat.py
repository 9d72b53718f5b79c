"""The chat's callbacks as plain functions (testable without a server): a question answered
as a stream of page updates, the waits before it (the warm-up, the line in front of the model),
and a new chat.

Every failure becomes a message in the chat: a :class:`~qa.errors.QAError` with its own words,
anything else a generic line (details go to the server log, never a stack trace to the page).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import asdict, replace

import gradio as gr

from qa.assistant import Assistant
from qa.errors import QAError
from qa.llm.queue import Place
from qa.ui.render import (
    EMPTY_SOURCES,
    Message,
    Turn,
    chat_messages,
    md_escape,
    model_history,
    render_answer,
    render_error,
    render_sources,
    sources_panel,
)
from qa.ui.startup import Startup

log = logging.getLogger(__name__)

GENERIC_ERROR = "Something went wrong while answering. Please try again; details are in the log."
CURSOR = " ▍"


def respond(
    assistant: Assistant, question: str, turns: list[Turn] | None
) -> Iterator[tuple[str, list[Message], list[Turn], str]]:
    """Answer ``question`` as a follow-up of ``turns``, yielding
    (textbox, chatbot, turns, sources) as the answer streams in; the textbox is cleared
    once, then left as the user types."""
    turns = list(turns or [])
    history = model_history(turns)
    # Lone surrogates (invalid unicode) cannot be sent to the browser as UTF-8.
    question = str(question or "").encode("utf-8", "replace").decode("utf-8")
    turn: Turn = {
        "question": question.strip(),
        "text": "",
        "message": CURSOR,
        "sources": "",
        "ok": False,
    }
    turns.append(turn)
    yield "", chat_messages(turns), turns, sources_panel(turns)
    # The box is cleared once, above: what the user types next while this answer streams in
    # must not be wiped by every token (their next question would vanish).
    keep = gr.update()
    try:
        stream = assistant.stream(question, history)
        text = ""
        for token in stream:
            text += token
            turn["message"] = md_escape(text) + CURSOR
            yield keep, chat_messages(turns), turns, sources_panel(turns)
        answer = stream.answer
        if answer is None:
            raise RuntimeError("the answer stream ended without an answer")
        turn.update(
            text=answer.text,
            message=render_answer(answer, turn=len(turns) - 1),
            sources=render_sources(answer),
            ok=True,
            # For ratings; without the passages searched and the raw model signals, which a
            # rating does not need and which would make every stored chat turn as large as the
            # whole context (or thousands of floats).
            answer=asdict(replace(answer, retrieved=[], signals=None)),
        )
    except QAError as err:
        turn["message"] = render_error(str(err))
    except Exception:
        log.exception("answering %r failed", question[:200])
        turn["message"] = render_error(GENERIC_ERROR)
    yield keep, chat_messages(turns), turns, sources_panel(turns)


def wait_for(
    startup: Startup | None, question: str, turns: list[Turn]
) -> Iterator[tuple[str, list[Message], list[Turn], str]]:
    """While the assistant gets ready, show ``question`` with what it is waiting for; the
    answer follows once the warm-up is over (:func:`respond`)."""
    if startup is None or startup.ready:
        return
    shown: list[Turn] = [*turns, {"question": str(question or "").strip(), "message": ""}]
    while not startup.wait(1.0):
        shown[-1]["message"] = md_escape(f"Your question is next. {startup.status}")
        yield "", chat_messages(shown), turns, sources_panel(turns)


def wait_in_line(
    place: Place, question: str, turns: list[Turn]
) -> Iterator[tuple[str, list[Message], list[Turn], str]]:
    """While others' questions (from this page or the HTTP API) hold the model, show
    ``question`` with how many are ahead; returns once it is this one's turn (or the place
    was given up)."""
    shown: list[Turn] = [*turns, {"question": str(question or "").strip(), "message": ""}]
    while not place.wait(1.0) and not place.cancelled:
        ahead = place.position()
        note = f"{ahead} question{'s' if ahead > 1 else ''} ahead of yours." if ahead else ""
        shown[-1]["message"] = md_escape(f"Waiting for the model. {note}".strip())
        yield "", chat_messages(shown), turns, sources_panel(turns)


def refuse(
    question: str, turns: list[Turn], message: str
) -> Iterator[tuple[str, list[Message], list[Turn], str]]:
    """Show ``question`` with ``message`` instead of an answer (nothing was asked)."""
    turn: Turn = {
        "question": str(question or "").strip(),
        "text": "",
        "message": render_error(message),
        "sources": "",
        "ok": False,
    }
    turns = [*(turns or []), turn]
    yield "", chat_messages(turns), turns, sources_panel(turns)


def new_chat() -> tuple[str, list[Message], list[Turn], str]:
    """Forget the conversation of this browser session."""
    return "", [], [], EMPTY_SOURCES
