"""The UI's side panels without a server: rating, documents, past chats."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.language_models import FakeListChatModel

from qa import Assistant, Settings
from qa.documents.ingest import SUPPORTED_SUFFIXES
from qa.evaluation.gold import load_gold
from qa.ui import UPLOAD_LABEL, add_documents, panels, respond
from qa.ui.render import EMPTY_SOURCES, sources_panel

BAKERY_REPLY = "Answer: in 1998\nQuote: The bakery opened in 1998."


@pytest.fixture
def assistant(settings: Settings, fake_embeddings) -> Assistant:
    settings = settings.model_copy(
        update={"feedback_path": settings.index_dir.parent / "fb.jsonl", "top_k": 10}
    )
    a = Assistant(settings, embeddings=fake_embeddings, llm=FakeListChatModel(responses=[]))
    a.index()
    return a


def _chat(assistant: Assistant, *questions: str, replies: list[str] | None = None):
    assistant.llm.responses, assistant.llm.i = replies or [BAKERY_REPLY] * len(questions), 0
    turns: list = []
    for q in questions:
        *_, (_, _, turns, _) = respond(assistant, q, turns)
    return turns


def test_message_index_maps_to_its_turn() -> None:
    turns = [{"question": "a"}, {"question": ""}, {"question": "b"}]  # an error has no question
    assert [panels.turn_of_message(turns, i) for i in range(6)] == [0, 0, 1, 2, 2, None]
    assert panels.turn_of_message(turns, (4, 0)) == 2


def test_thumbs_up_is_saved_as_a_gold_item(assistant: Assistant) -> None:
    turns = _chat(assistant, "When did the bakery open?")
    note, pending = panels.rate(assistant, turns, 1, True, "ann")
    assert pending is None and "Saved as regression item" in note and "1998" in note
    assert f"qa eval --gold {assistant.settings.feedback_path}" in note
    [item] = assistant.feedback_store.items()
    assert item.meta["user"] == "ann" and item.gold["facts"] == [["1998"]]


def test_thumbs_down_asks_for_the_correction_then_saves_it(assistant: Assistant) -> None:
    turns = _chat(assistant, "When did the bakery open?")
    note, pending = panels.rate(assistant, turns, 1, False, "")
    assert pending == 0 and note == panels.ASK_CORRECTION
    assert assistant.feedback_store.items() == []  # nothing checkable yet
    note, still_open = panels.save_correction(assistant, turns, pending, "", False, "")
    assert still_open and "needs what the answer should have been" in note
    note, still_open = panels.save_correction(assistant, turns, pending, "In 1997", False, "")
    assert not still_open and "1997" in note
    note, _ = panels.save_correction(assistant, turns, 0, "", True, "")
    assert "unanswerable" in note
    kinds = [g.kind for g in load_gold(assistant.settings.feedback_path)]
    assert kinds == ["facts", "unanswerable"]


def test_errors_and_cleared_ratings_store_nothing(assistant: Assistant) -> None:
    turns = _chat(assistant, "   ")  # an empty question: an error bubble
    assert panels.rate(assistant, turns, 0, True, "")[0] == "Only answers can be rated."
    turns = _chat(assistant, "When did the bakery open?")
    assert "cleared" in panels.rate(assistant, turns, 1, "", "")[0]
    assert assistant.feedback_store.items() == []


def test_a_rating_that_cannot_be_written_is_one_line(assistant: Assistant, tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assistant.settings = assistant.settings.model_copy(
        update={"feedback_path": blocker / "fb.jsonl"}  # its parent is a file
    )
    turns = _chat(assistant, "When did the bakery open?")
    note, _ = panels.rate(assistant, turns, 1, True, "")
    assert note.startswith("⚠️") and "server log" in note and "Traceback" not in note


def test_documents_panel_confirm_and_remove(assistant: Assistant, settings: Settings) -> None:
    panel = panels.documents_panel(assistant)
    assert panel.names == ["bakery.txt", "ferry.md"]
    assert "| bakery\\.txt | txt |" in panel.table and "Documents | 2" in panel.status
    assert panels.confirm_removal(assistant, None, False) == ""
    ask = panels.confirm_removal(assistant, "ferry.md", True)
    assert "ferry\\.md" in ask and "delete the file" in ask
    assert panels.remove_document(assistant, None, False) == "Pick a document to remove."
    done = panels.remove_document(assistant, "ferry.md", False)
    assert "Removed **ferry\\.md**" in done and "kept" in done
    assert panels.documents_panel(assistant).names == ["bakery.txt"]
    assert panels.remove_document(assistant, "ferry.md", False).startswith("⚠️")


def test_uploading_a_removed_document_again_brings_it_back(
    assistant: Assistant, settings: Settings
) -> None:
    assistant.remove("ferry.md")
    report, _ = add_documents(assistant, [str(settings.seeds_dir / "ferry.md")])
    assert "already there" in report
    assert "ferry.md" in panels.documents_panel(assistant).names


def test_reindex_reports_progress(assistant: Assistant, settings: Settings) -> None:
    (settings.seeds_dir / "new.txt").write_text("The harbour master is Ines Berg.\n")
    steps: list[tuple[int, int]] = []
    report = panels.reindex(assistant, lambda d, t: steps.append((d, t)))
    assert "1 chunks added" in report and steps[-1] == (1, 1)


def test_upload_label_lists_every_format() -> None:
    for suffix in SUPPORTED_SUFFIXES - {".htm"}:
        assert suffix in UPLOAD_LABEL
    assert UPLOAD_LABEL.startswith("Add documents (.txt .md .pdf .html .docx")


def test_chats_are_saved_reopened_and_deleted_per_user(assistant: Assistant) -> None:
    turns = _chat(assistant, "When did the bakery open?")
    chat_id = panels.save_chat(assistant, "ann", "", turns)
    assert panels.save_chat(assistant, "ann", chat_id, turns) == chat_id
    [(label, listed)] = panels.chat_choices(assistant, "ann")
    assert listed == chat_id and label.startswith("When did the bakery open?")
    assert panels.chat_choices(assistant, "bob") == []
    messages, reopened, sources, same, note = panels.open_chat(assistant, "ann", chat_id)
    assert same == chat_id and reopened == turns and sources == sources_panel(turns)
    assert messages[0]["content"] == "When did the bakery open?" and note == ""
    _, bobs, _, _, note = panels.open_chat(assistant, "bob", chat_id)
    assert bobs == [] and "gone" in note
    # A reopened chat can still be rated: the answer travels with the stored turn.
    assert "Saved" in panels.rate(assistant, reopened, 1, True, "ann")[0]
    assert "gone" in panels.delete_chat(assistant, "bob", chat_id)
    assert panels.chat_choices(assistant, "ann")  # Bob's attempt left it alone
    assert panels.delete_chat(assistant, "ann", chat_id) == ""
    assert panels.chat_choices(assistant, "ann") == []
    assert "not saved" in panels.delete_chat(assistant, "ann", "")
    assert panels.save_chat(assistant, "ann", "", []) == ""  # nothing to keep


def test_a_broken_history_file_does_not_break_the_chat(assistant: Assistant, tmp_path: Path):
    assistant.history.path = tmp_path  # a folder: SQLite cannot open it
    assert panels.save_chat(assistant, "ann", "", [{"question": "q"}]) == ""
    assert panels.chat_choices(assistant, "ann") == []
    sources, _, note = panels.open_chat(assistant, "ann", "some-id")[2:]
    assert sources == EMPTY_SOURCES
    assert note.startswith("⚠️") and "server log" in note
    assert panels.delete_chat(assistant, "ann", "some-id").startswith("⚠️")
