"""The page's workspace picker (qa.ui.workspace_picker): one Assistant per workspace sharing the
models, past chats of every workspace reopened in theirs, workspaces made from the page."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa import Assistant
from qa.llm.queue import ChatFirst
from qa.ui.workspace_picker import (
    PageWorkspaces,
    chat_choices,
    chat_value,
    create_note,
    split_chat,
)
from qa.workspaces import Workspace, WorkspaceNotFoundError, Workspaces

from .test_workspaces import base, ferry_workspace, project  # noqa: F401 - their fixtures


@pytest.fixture
def pages(base: Assistant) -> PageWorkspaces:  # noqa: F811 - the fixture imported above
    """The page's workspaces over the project root's fake-model Assistant (the working dir)."""
    return PageWorkspaces(Workspaces(base), ChatFirst())


def test_a_switch_loads_no_model_and_a_removed_workspace_says_so(pages: PageWorkspaces) -> None:
    root = pages.shelf.base
    ferry_workspace()
    ferries = pages.get("ferries")
    assert pages.get(None).assistant is root and pages.get("qa").assistant is root
    assert ferries is pages.get("ferries")  # kept: its eval runs are found again
    assert ferries.assistant.embeddings is root.embeddings and ferries.assistant.llm is root.llm
    assert ferries.paths.root == Path("workspaces/ferries/evals")
    assert ferries.jobs.assistant is ferries.assistant
    Workspace.open("ferries").remove()
    with pytest.raises(WorkspaceNotFoundError, match="No workspace 'ferries'"):
        pages.get("ferries")
    ferry_workspace()
    assert pages.get("ferries") is not ferries  # made again: nothing of the old one


def test_past_chats_of_every_workspace_are_listed_with_their_workspace(
    pages: PageWorkspaces,
) -> None:
    here = Path.cwd()
    ferry_workspace()
    ferry_workspace("piers")
    turn = {"question": "How often does the ferry cross?", "text": "every 20 minutes"}
    root_chat = pages.get("qa").assistant.history.save("ann", None, [turn | {"question": "Hi"}])
    ferry_chat = pages.get("ferries").assistant.history.save("ann", None, [turn])
    pages.get("ferries").assistant.history.save("bob", None, [turn])
    choices = chat_choices(pages, "ann")
    assert [value for _, value in choices] == [
        chat_value("ferries", ferry_chat),
        chat_value("qa", root_chat),
    ]
    assert choices[0][0].startswith("[ferries] How often does the ferry cross?")
    assert choices[1][0].startswith("Hi · ")
    assert split_chat(choices[0][1]) == ("ferries", ferry_chat)
    assert split_chat("") == split_chat(None) == ("", "")
    # Listing made no history for the workspace without chats.
    assert not (here / "workspaces/piers/history.sqlite3").exists()
    Workspace.open("ferries").remove()
    assert [v for _, v in chat_choices(pages, "ann")] == [chat_value("qa", root_chat)]


def test_only_an_admin_makes_a_workspace_from_the_page(
    pages: PageWorkspaces,
) -> None:
    here = Path.cwd()
    note, made = create_note(pages, "manuals", False, "⛔ ann may only look")
    assert (note, made) == ("⛔ ann may only look", "")
    assert not (here / "workspaces/manuals").exists()
    note, made = create_note(pages, " manuals ", True, "")
    assert made == "manuals" and "made and picked" in note
    assert pages.names() == ["qa", "manuals"]
    assert pages.get("manuals").assistant.settings.seeds_dir == Path("workspaces/manuals/docs")
    for bad in ("manuals", "../x", "qa"):
        note, made = create_note(pages, bad, True, "")
        assert made == "" and note.startswith("⚠️") and "\n" not in note
