"""The UI's side panels as plain functions: rating answers, managing documents, past chats.

They are kept out of :mod:`qa.ui.app` (the wiring) so that each can be tested without a server,
and they only call :class:`~qa.Assistant` and format. Every failure becomes one line that says
what to do; details go to the server log, never a stack trace to the page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from qa.assistant import Assistant
from qa.errors import QAError
from qa.evaluation.feedback import FeedbackItem, answer_from_dict
from qa.ui.render import (
    EMPTY_SOURCES,
    Message,
    Turn,
    chat_messages,
    md_escape,
    render_documents,
    render_report,
    render_status,
    sources_panel,
)
from qa.uploads import add_uploads

log = logging.getLogger(__name__)

ASK_CORRECTION = (
    "Thumbs down noted. What should it have said? Type the short answer (a name, a number), "
    "or tick *The documents don't say*, then **Save feedback**."
)


def _failed(what: str, err: Exception) -> str:
    if isinstance(err, QAError):
        return f"⚠️ {md_escape(str(err))}"
    log.exception("%s failed", what)
    return f"⚠️ {what.capitalize()} failed; details are in the server log."


# --- rating -----------------------------------------------------------------------------------


def turn_of_message(turns: Sequence[Turn], index: int | Sequence[int]) -> int | None:
    """Which turn the chatbot message at ``index`` (as :func:`chat_messages` lays them out)
    belongs to; None if none."""
    if not isinstance(index, int):
        index = index[0]
    n = 0
    for i, turn in enumerate(turns):
        n += 2 if turn["question"] else 1
        if index < n:
            return i
    return None


def saved_note(item: FeedbackItem, path: str) -> str:
    """What a stored rating became, and how to run it."""
    return (
        f"Thumbs {item.verdict}. Saved as regression item `{item.id}` "
        f"({md_escape(item.expectation)}). "
        f"Run it with `qa eval --gold {path}`."
    )


def rate(
    assistant: Assistant, turns: Sequence[Turn], index: Any, liked: bool | str, user: str
) -> tuple[str, int | None]:
    """Handle a 👍 / 👎 click on message ``index``; returns (note, turn awaiting a correction).

    A 👍 is stored at once. A 👎 opens the correction form (the turn is returned); it is
    stored by :func:`save_correction`. Clearing a rating (``liked == ""``) stores nothing.
    """
    i = turn_of_message(turns, index)
    if i is None or not turns[i].get("ok") or "answer" not in turns[i]:
        return "Only answers can be rated.", None
    if liked is True:
        try:
            answer = answer_from_dict(turns[i]["answer"])
            item = assistant.feedback(answer, "up", user=user or None)
        except Exception as err:
            return _failed("saving the rating", err), None
        return saved_note(item, str(assistant.settings.feedback_path)), None
    if liked is False:
        return ASK_CORRECTION, i
    return "Rating cleared; ratings already saved stay in the feedback file.", None


def save_correction(
    assistant: Assistant,
    turns: Sequence[Turn],
    pending: int | None,
    correction: str,
    dont_say: bool,
    user: str,
) -> tuple[str, bool]:
    """Store the 👎 on turn ``pending`` with its correction; returns (note, form still open)."""
    if pending is None or pending >= len(turns) or "answer" not in turns[pending]:
        return "Click the thumbs down under an answer first.", False
    try:
        answer = answer_from_dict(turns[pending]["answer"])
        item = assistant.feedback(
            answer, "down", correction or None, unanswerable=dont_say, user=user or None
        )
    except Exception as err:
        return _failed("saving the rating", err), True
    return saved_note(item, str(assistant.settings.feedback_path)), False


# --- documents --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DocumentsPanel:
    """What the Documents panel shows: index status, the document table, names to pick."""

    status: str
    table: str
    names: list[str]


def documents_panel(assistant: Assistant) -> DocumentsPanel:
    """The Documents panel's current content."""
    status = render_status(assistant)
    try:
        docs = assistant.documents()
    except Exception as err:
        return DocumentsPanel(status, _failed("listing the documents", err), [])
    return DocumentsPanel(status, render_documents(docs), [d.source for d in docs])


def confirm_removal(assistant: Assistant, name: str | None, delete_file: bool) -> str:
    """The question the confirmation asks, or '' when no document is picked."""
    if not name:
        return ""
    try:
        chunks = next((d.chunks for d in assistant.documents() if d.source == name), 0)
    except Exception:
        log.exception("listing the documents failed")
        chunks = "?"
    also = f" and **delete the file** from {assistant.settings.seeds_dir}/" if delete_file else ""
    return f"Remove **{md_escape(name)}** ({chunks} chunks) from the index{md_escape(also)}?"


def remove_document(assistant: Assistant, name: str | None, delete_file: bool) -> str:
    """Remove ``name`` from the index (and its file if asked); returns the report line."""
    if not name:
        return "Pick a document to remove."
    try:
        report = assistant.remove(name, delete_file=delete_file, on_wait=log.warning)
    except Exception as err:
        return _failed("removing the document", err)
    kept = "its file was deleted" if delete_file else "its file was kept and is no longer indexed"
    return f"Removed **{md_escape(name)}**: {report.removed} chunks left the index; {kept}."


def reindex(assistant: Assistant, progress: Callable[[int, int], None] | None = None) -> str:
    """Bring the index in step with the documents folder; returns the report."""
    try:
        report = assistant.index(progress=progress, on_wait=log.warning)
    except Exception as err:
        return _failed("re-indexing", err)
    return render_report(report, [], [])


def add_documents(
    assistant: Assistant,
    files: Sequence[str | Path] | str | Path | None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[str, str]:
    """Copy uploaded documents into the documents folder and index them
    (:func:`qa.uploads.add_uploads`: the checks and renames are shared with the HTTP API).

    Returns (report markdown, status markdown). If indexing fails, the copied files are
    removed again and the report says why.
    """
    if files is None:
        files = []
    elif isinstance(files, str | Path):
        files = [files]
    try:
        upload = add_uploads(assistant, files, progress=progress, on_wait=log.warning)
    except Exception as err:
        if isinstance(err, QAError):
            reason = str(err)
        else:
            log.exception("indexing uploaded files failed")
            reason = "unexpected error (see the server log)"
        msg = f"**Indexing failed, the upload was not added:** {md_escape(reason)}"
        return msg, render_status(assistant)
    if upload.report is None:
        msg = "\n\n".join(f"**Refused:** {md_escape(r)}" for r in upload.refused)
        return msg or "No file given.", render_status(assistant)
    return render_report(upload.report, upload.added, upload.refused), render_status(assistant)


# --- past chats -------------------------------------------------------------------------------


def chat_choices(assistant: Assistant, user: str) -> list[tuple[str, str]]:
    """(label, chat id) of the user's past chats, newest first."""
    try:
        chats = assistant.history.list(user)
    except Exception:
        log.exception("listing chats failed")
        return []
    return [
        (f"{c.title} · {datetime.fromtimestamp(c.updated).strftime('%b %d %H:%M')}", c.id)
        for c in chats
    ]


def save_chat(assistant: Assistant, user: str, chat_id: str | None, turns: list[Turn]) -> str:
    """Store the conversation; returns its chat id (a new one on the first save)."""
    if not turns:
        return chat_id or ""
    try:
        return assistant.history.save(user, chat_id, turns)
    except Exception:
        log.exception("saving the chat failed")  # the chat goes on; only its history is lost
        return chat_id or ""


def open_chat(
    assistant: Assistant, user: str, chat_id: str | None
) -> tuple[list[Message], list[Turn], str, str, str]:
    """A past chat as (chatbot, turns, sources, chat id, note); an empty chat and a note saying
    why if it cannot be opened."""
    try:
        turns = (assistant.history.load(user, chat_id) if chat_id else None) or []
    except Exception as err:
        return [], [], EMPTY_SOURCES, "", _failed("opening the chat", err)
    note = "" if turns or not chat_id else "That chat is gone (deleted, or dropped as the oldest)."
    return chat_messages(turns), turns, sources_panel(turns), chat_id if turns else "", note


def delete_chat(assistant: Assistant, user: str, chat_id: str | None) -> str:
    """Delete the user's chat ``chat_id``; returns a note ('' when it was deleted)."""
    if not chat_id:
        return "This chat was not saved yet; nothing to delete."
    try:
        deleted = assistant.history.delete(user, chat_id)
    except Exception as err:
        return _failed("deleting the chat", err)
    return "" if deleted else "That chat is gone already."
