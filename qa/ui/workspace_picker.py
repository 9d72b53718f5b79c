"""The page's workspace picker: which document collection the chat, the Documents panel and
the Evaluate tab work on, the past chats of every workspace, and a new workspace made from the
page.

What it guards against:

* **A slow switch.** Every workspace's Assistant comes from the process's
  :class:`qa.workspaces.Workspaces` (the HTTP API's too when both are served), so all of them
  share the loaded models: switching opens another index, it never loads a model.
* **A chat answered by the wrong documents.** A past chat is listed with its workspace and
  reopening it picks that workspace again; a chat is saved in the history of the workspace
  that answered it (:mod:`qa.workspaces`: chats are the workspace's).
* **A workspace removed under an open page.** The lookup fails with a one-line
  :class:`~qa.workspaces.WorkspaceNotFoundError` that the page shows, never a stack trace.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime

from qa.assistant import Assistant
from qa.errors import QAError
from qa.evaluation.runs import EvalPaths
from qa.llm.queue import ChatFirst
from qa.ui.eval_jobs import EvalJobs
from qa.ui.render import md_escape
from qa.workspaces import DEFAULT, Workspace, Workspaces

log = logging.getLogger(__name__)

LABEL = "Workspace"
CHAT_SEP = "/"
"""Between a workspace's name and a chat id in a past chat's value ('/' is in no name)."""


@dataclass(frozen=True)
class Scope:
    """What the page works on in one workspace: its Assistant, its gold sets and reports, and
    the evaluation runs started there."""

    name: str
    assistant: Assistant
    paths: EvalPaths
    jobs: EvalJobs


class PageWorkspaces:
    """The workspaces a page can pick, each a :class:`Scope` made on first use.

    Args:
        shelf: the process's Assistants per workspace (shared models).
        chat_first: the line between chat answers and evaluation items.
        evals: the default workspace's gold sets and reports (default: its ``evals_dir``).
    """

    def __init__(
        self, shelf: Workspaces, chat_first: ChatFirst, evals: EvalPaths | None = None
    ) -> None:
        self.shelf = shelf
        self.chat_first = chat_first
        self._evals = evals
        self._scopes: dict[str, Scope] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        """Every workspace's name, ``qa`` first."""
        return self.shelf.names()

    def get(self, name: str | None) -> Scope:
        """The scope of workspace ``name`` (None: the default one).

        Raises:
            WorkspaceError, WorkspaceNotFoundError: a bad name, or it was removed.
        """
        name = name or DEFAULT
        assistant = self.shelf.get(name)
        with self._lock:
            kept = self._scopes.get(name)
            if kept is None or kept.assistant is not assistant:  # new, or made again
                paths = EvalPaths(assistant.settings.evals_dir)
                if name == DEFAULT and self._evals is not None:
                    paths = self._evals
                jobs = EvalJobs(assistant, paths, self.chat_first)
                kept = self._scopes[name] = Scope(name, assistant, paths, jobs)
            return kept

    def create(self, name: str) -> Scope:
        """Make the workspace ``name`` (its documents go into its own ``docs/``).

        Raises:
            WorkspaceError: a bad or reserved name, or one in use.
        """
        Workspace.create(name.strip(), base=self.shelf.base.settings)
        return self.get(name.strip())


def chat_value(workspace: str, chat_id: str) -> str:
    """A past chat's value in the list: its workspace and its id."""
    return f"{workspace}{CHAT_SEP}{chat_id}"


def split_chat(value: str | None) -> tuple[str, str]:
    """(workspace, chat id) of a past chat's value; ("", "") for none."""
    workspace, _, chat_id = (value or "").partition(CHAT_SEP)
    return (workspace, chat_id) if chat_id else ("", "")


def chat_choices(pages: PageWorkspaces, user: str) -> list[tuple[str, str]]:
    """(label, value) of the user's past chats in every workspace, newest first; a chat of a
    named workspace is labelled with it."""
    found = []
    for name in pages.names():
        try:
            history = pages.get(name).assistant.history
            # Never make a file for a workspace without chats (or one being removed).
            if name != DEFAULT and not history.path.exists():
                continue
            chats = history.list(user)
        except Exception:
            log.exception("listing the chats of workspace %s failed", name)
            continue
        found += [(c.updated, name, c) for c in chats]
    found.sort(key=lambda f: f[0], reverse=True)
    choices = []
    for updated, name, c in found:
        where = "" if name == DEFAULT else f"[{name}] "
        when = datetime.fromtimestamp(updated).strftime("%b %d %H:%M")
        choices.append((f"{where}{c.title} · {when}", chat_value(name, c.id)))
    return choices


def create_note(pages: PageWorkspaces, name: str, allowed: bool, refusal: str) -> tuple[str, str]:
    """Make workspace ``name`` for the page; returns (note, the workspace to pick: the new one,
    or "" when it was not made)."""
    if not allowed:
        return refusal, ""
    try:
        made = pages.create(name)
    except QAError as err:
        return f"⚠️ {md_escape(str(err))}", ""
    return (
        f"Workspace **{made.name}** made and picked: add its documents under **Documents**.",
        made.name,
    )
