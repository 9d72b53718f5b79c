"""Past chats of the browser UI, kept server-side in SQLite so that a reload or a restart does
not lose them (Gradio's own history lives in the browser only).

Every chat belongs to one user (the login name with ``QA_AUTH``, else ``""``), and every read,
write and delete is filtered by that user, so one user never sees another's chats. The size is
bounded: each user keeps the ``Settings.history_max_chats`` most recently updated chats (saving
one more deletes the oldest), and a chat keeps its last :data:`MAX_TURNS` turns.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_TURNS = 100
"""Turns kept per chat (the oldest are dropped)."""
TITLE_CHARS = 60

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chats (
    id TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    title TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    turns TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chats_by_user ON chats (user, updated);
"""


@dataclass(frozen=True)
class ChatSummary:
    """One entry of a user's chat list: its id, title (the first question) and last update."""

    id: str
    title: str
    updated: float
    turns: int


class ChatHistory:
    """Chats in a SQLite file, per user and bounded (see the module docstring).

    Example:
        >>> h = ChatHistory(Path("index/history.sqlite3"))
        >>> chat_id = h.save("ann", None, [{"question": "Hi?", "text": "…"}])
        >>> [c.title for c in h.list("ann")], h.list("bob")
        (['Hi?'], [])
    """

    def __init__(self, path: Path, max_chats: int = 50) -> None:
        self.path = Path(path)
        self.max_chats = max_chats
        self._ready = False

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        # One connection per call: Gradio runs callbacks on several threads.
        if not self._ready:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.path, timeout=10)) as con:
            if not self._ready:
                con.execute("PRAGMA journal_mode=WAL")
                con.executescript(_SCHEMA)
                self._ready = True
            with con:  # one transaction, committed on success
                yield con

    def save(self, user: str, chat_id: str | None, turns: list[dict[str, Any]]) -> str:
        """Store ``turns`` as chat ``chat_id`` of ``user`` (None, or an id of another user:
        a new chat); returns the chat's id. Drops the user's oldest chats beyond the bound."""
        turns = turns[-MAX_TURNS:]
        first = next((t.get("question", "") for t in turns if t.get("question")), "")
        title = " ".join(str(first).split())[:TITLE_CHARS] or "(empty chat)"
        now = time.time()
        data = json.dumps(turns, ensure_ascii=False)
        with self._db() as con:
            owner = con.execute("SELECT user FROM chats WHERE id = ?", (chat_id,)).fetchone()
            if chat_id and owner and owner[0] == user:
                con.execute(
                    "UPDATE chats SET title = ?, updated = ?, turns = ? WHERE id = ?",
                    (title, now, data, chat_id),
                )
            else:
                chat_id = uuid.uuid4().hex
                con.execute(
                    "INSERT INTO chats VALUES (?, ?, ?, ?, ?, ?)",
                    (chat_id, user, title, now, now, data),
                )
            con.execute(
                "DELETE FROM chats WHERE user = ? AND id NOT IN (SELECT id FROM chats "
                "WHERE user = ? ORDER BY updated DESC LIMIT ?)",
                (user, user, self.max_chats),
            )
        return chat_id

    def list(self, user: str) -> list[ChatSummary]:
        """The chats of ``user``, most recently updated first."""
        with self._db() as con:
            rows = con.execute(
                "SELECT id, title, updated, json_array_length(turns) FROM chats WHERE user = ? "
                "ORDER BY updated DESC",
                (user,),
            ).fetchall()
        return [ChatSummary(*row) for row in rows]

    def load(self, user: str, chat_id: str) -> list[dict[str, Any]] | None:
        """The turns of chat ``chat_id`` if it belongs to ``user``, else None."""
        with self._db() as con:
            row = con.execute(
                "SELECT turns FROM chats WHERE id = ? AND user = ?", (chat_id, user)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def delete(self, user: str, chat_id: str) -> bool:
        """Delete chat ``chat_id`` of ``user``; False if ``user`` has no such chat."""
        with self._db() as con:
            cur = con.execute("DELETE FROM chats WHERE id = ? AND user = ?", (chat_id, user))
        return cur.rowcount > 0
