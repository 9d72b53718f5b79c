from __future__ import annotations

import html
from pathlib import Path

import pytest
from langchain_core.language_models import FakeListChatModel

from qa import ABSTAIN_TEXT, Assistant
from qa.errors import BackendError
from qa.ui import (
    GENERIC_ERROR,
    add_documents,
    auth_from_env,
    build_app,
    new_chat,
    respond,
)
from qa.ui.render import highlight, md_escape, render_answer, render_sources

BAKERY_REPLY = "Answer: in 1998\nQuote: The bakery opened in 1998."


def _assistant(settings, embeddings, replies: list[str], *, top_k: int = 10) -> Assistant:
    settings = settings.model_copy(update={"top_k": top_k})
    assistant = Assistant(settings, embeddings=embeddings, llm=FakeListChatModel(responses=replies))
    assistant.index()
    return assistant


def _plain(markdown: str) -> str:
    """Markdown-escaped text as it reads on the page."""
    return markdown.replace("\\", "")


def _last(assistant: Assistant, question: str, turns=None):
    *_, last = respond(assistant, question, turns)
    return last


def test_answer_streams_then_shows_the_cited_answer_and_its_source(settings, fake_embeddings):
    assistant = _assistant(settings, fake_embeddings, [BAKERY_REPLY])
    steps = list(respond(assistant, "When did the bakery open?", []))
    box, chat, turns, sources = steps[-1]
    assert steps[0][0] == "" and len(steps) > 2  # the question appears first, then tokens
    # After the first step the box is left alone: a next question typed meanwhile stays.
    assert all(s[0] == {"__type__": "update"} for s in steps[1:])
    assert any("in 1998" in s[1][-1]["content"] for s in steps[1:-1])
    assert chat[0] == {"role": "user", "content": "When did the bakery open?"}
    reply = chat[-1]["content"]
    n = turns[-1]["text"].removeprefix("in 1998 [").removesuffix("]")
    assert turns[-1]["text"] == f"in 1998 [{n}]" and turns[-1]["ok"]
    marker = f'<a class="qa-cite" href="#qa-0-0-{n}">{md_escape(f"[{n}]")}</a>'
    assert f"in 1998 {marker}" in reply and md_escape(f"[{n}] bakery.txt") in reply
    assert "first token" in reply
    assert html.escape(f"[{n}] bakery.txt") in sources and 'data-turn="0"' in sources
    assert '<mark data-s="0">The bakery opened in 1998.</mark>' in sources


def test_follow_up_gets_the_first_turn_as_plain_history(settings, fake_embeddings, monkeypatch):
    assistant = _assistant(
        settings, fake_embeddings, [BAKERY_REPLY, "When did the bakery open?", BAKERY_REPLY]
    )
    seen: list[list[dict]] = []
    real_stream = assistant.stream

    def spy(question, history=None):
        seen.append(list(history or []))
        return real_stream(question, history)

    monkeypatch.setattr(assistant, "stream", spy)
    _, _, turns, _ = _last(assistant, "When did the bakery open?", [])
    assert turns[0]["text"].startswith("in 1998 [")
    _, chat, turns, _ = _last(assistant, "And when was that?", turns)
    assert seen[0] == []
    assert seen[1] == [
        {"role": "user", "content": "When did the bakery open?"},
        {"role": "assistant", "content": turns[0]["text"]},  # no markup, no timings
    ]
    assert len(chat) == 4


def test_document_and_model_markup_is_escaped(settings, fake_embeddings, docs: Path):
    (docs / "evil.md").write_text(
        "The chef wrote <script>alert(1)</script> on the board.\n\n"
        "See [click](javascript:alert(2)) and <img src=x onerror=alert(3)>.\n"
    )
    reply = (
        "Answer: <script>alert(1)</script>\n"
        "Quote: The chef wrote <script>alert(1)</script> on the board."
    )
    # The guard would keep the markup out of the answer and sources altogether (it reads as
    # planted); off, the renderer alone must make it harmless.
    settings = settings.model_copy(update={"guard": ""})
    assistant = _assistant(settings, fake_embeddings, [reply])
    steps = list(respond(assistant, "What did the chef write? <b>now</b>", []))
    for _, chat, _, sources in steps:
        for msg in chat:
            assert "<script" not in msg["content"] and "<b>" not in msg["content"]
        assert "<script" not in sources and "<img" not in sources
    _, chat, _, sources = steps[-1]
    assert "&lt;script&gt;" in chat[-1]["content"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in sources
    assert "<mark data-s=" in sources


def test_markdown_tricks_are_neutralised() -> None:
    out = md_escape("[click](javascript:alert(1)) ![x](http://e/x.png) **b** <i>")
    assert "\\[click\\]\\(javascript:alert\\(1\\)\\)" in out
    assert "\\!\\[x\\]" in out and "\\*\\*b\\*\\*" in out and "&lt;i&gt;" in out


def test_highlight_escapes_around_the_mark() -> None:
    text = "<b>Intro</b> The ferry crosses the river."
    out = highlight(text, [(0, "the ferry crosses the river.")])
    assert out == '&lt;b&gt;Intro&lt;/b&gt; <mark data-s="0">The ferry crosses the river.</mark>'
    assert highlight("<x>", [(0, "nothing like it")]) == "&lt;x&gt;"


def test_not_found_is_shown_in_a_bubble_of_its_own(settings, fake_embeddings):
    reply = "Answer: a famous chef\nQuote: The bakery is owned by a famous chef."
    assistant = _assistant(settings, fake_embeddings, [reply])
    _, chat, turns, sources = _last(assistant, "Who owns the bakery?", [])
    bubble = chat[-1]["content"]
    assert "qa-not-found" in bubble and "Not found" in bubble
    # Plain HTML: no Markdown escape shows as a backslash, and no emoji (an empty box without
    # an emoji font).
    assert html.escape(ABSTAIN_TEXT) in bubble and "\\" not in bubble
    assert not any(ord(ch) > 0x2FFF for ch in bubble)
    assert "No passage supports an answer" in sources
    assert turns[-1]["text"] == ABSTAIN_TEXT


def test_an_unconfirmed_candidate_is_shown_marked_with_its_clickable_source(
    settings, fake_embeddings
):
    from qa.answer import UNCONFIRMED_TEXT, Answer, Citation

    quote = "The bakery opened in 1998."
    cited = Citation(2, "bakery.txt", "c2", f"Intro. {quote} More.", 0.5, quote=quote)
    answer = Answer(
        question="When did it open?",
        text=f'{UNCONFIRMED_TEXT} Unconfirmed: 1998, from "{quote}" [2]',
        abstained=True,
        citations=[cited],
        withheld="1998",
        status="unconfirmed",
    )
    bubble = render_answer(answer, turn=3)
    assert "qa-unconfirmed" in bubble and "Unconfirmed</span>" in bubble
    assert "Unconfirmed: 1998, from &quot;The bakery opened in 1998.&quot;" in bubble
    assert '<a class="qa-cite" href="#qa-3-0-2">[2]</a>' in bubble and "\\" not in bubble
    assert "qa-not-found" not in bubble
    assert '<mark data-s="0">The bakery opened in 1998.</mark>' in render_sources(answer)


@pytest.mark.parametrize("question", ["", "   "])
def test_empty_question_gets_a_friendly_message(settings, fake_embeddings, question):
    assistant = _assistant(settings, fake_embeddings, [BAKERY_REPLY])
    _, chat, turns, _ = _last(assistant, question, [])
    assert chat == [{"role": "assistant", "content": chat[-1]["content"]}]
    assert "empty" in chat[-1]["content"] and "⚠️" in chat[-1]["content"]
    assert not turns[-1]["ok"]


def test_missing_index_is_explained(settings, fake_embeddings):
    assistant = Assistant(
        settings, embeddings=fake_embeddings, llm=FakeListChatModel(responses=[BAKERY_REPLY])
    )
    _, chat, _, _ = _last(assistant, "When did the bakery open?", [])
    assert "qa index" in chat[-1]["content"]


def test_errors_become_friendly_messages_and_are_left_out_of_history(
    settings, fake_embeddings, monkeypatch, caplog
):
    assistant = _assistant(settings, fake_embeddings, [BAKERY_REPLY])

    def boom(question, history=None):
        raise ZeroDivisionError("secret internals")

    monkeypatch.setattr(assistant, "stream", boom)
    _, chat, turns, _ = _last(assistant, "When did the bakery open?", [])
    assert md_escape(GENERIC_ERROR) in chat[-1]["content"]
    assert "secret" not in chat[-1]["content"] and "Traceback" not in chat[-1]["content"]
    assert "ZeroDivisionError" in caplog.text  # logged server-side

    def down(question, history=None):
        raise BackendError("The LLM server is unreachable")

    monkeypatch.setattr(assistant, "stream", down)
    _, chat, turns, _ = _last(assistant, "Again?", turns)
    assert "unreachable" in chat[-1]["content"]
    assert [t["ok"] for t in turns] == [False, False]


def test_new_chat_clears_the_session() -> None:
    box, chat, turns, sources = new_chat()
    assert (box, chat, turns) == ("", [], []) and "Sources" in sources


def test_unsupported_upload_is_refused(settings, fake_embeddings, tmp_path: Path):
    assistant = _assistant(settings, fake_embeddings, [])
    image = tmp_path / "photo.png"
    image.write_bytes(b"\x89PNG")
    report, _ = add_documents(assistant, [str(image)])
    report = _plain(report)
    assert "photo.png" in report and "unsupported" in report
    assert not (settings.seeds_dir / "photo.png").exists()


def test_oversized_upload_is_refused(settings, fake_embeddings, tmp_path: Path):
    assistant = _assistant(settings, fake_embeddings, [])
    assistant.settings = assistant.settings.model_copy(update={"max_file_mb": 0.00001})
    big = tmp_path / "big.txt"
    big.write_text("word " * 100)
    report, _ = add_documents(assistant, [str(big)])
    assert "limit" in report and not (settings.seeds_dir / "big.txt").exists()


def test_empty_or_binary_upload_is_refused_before_copying(settings, fake_embeddings, tmp_path):
    assistant = _assistant(settings, fake_embeddings, [])
    (tmp_path / "blank.txt").write_text("  \n")
    (tmp_path / "blob.md").write_bytes(b"\x00\x01binary")
    report, _ = add_documents(assistant, [str(tmp_path / "blank.txt"), str(tmp_path / "blob.md")])
    assert "empty" in report and "binary" in report
    assert not (settings.seeds_dir / "blank.txt").exists()
    assert not (settings.seeds_dir / "blob.md").exists()


def test_uploaded_txt_is_indexed_and_answerable(settings, fake_embeddings, tmp_path: Path):
    reply = "Answer: Ada Quint\nQuote: The lighthouse keeper is Ada Quint."
    assistant = _assistant(settings, fake_embeddings, [reply])
    before = assistant.status()["documents"]
    upload = tmp_path / "upload" / "lighthouse.txt"
    upload.parent.mkdir()
    upload.write_text("The lighthouse keeper is Ada Quint.\n")
    steps: list[tuple[int, int]] = []
    report, status = add_documents(
        assistant, [str(upload)], progress=lambda d, t: steps.append((d, t))
    )
    assert "lighthouse.txt" in _plain(report) and "1 chunks added" in report
    assert steps and steps[-1][0] == steps[-1][1]
    assert assistant.status()["documents"] == before + 1
    assert f"| Documents | {before + 1} |" in status
    _, chat, _, sources = _last(assistant, "Who keeps the lighthouse?", [])
    assert "Ada Quint" in chat[-1]["content"] and "lighthouse.txt" in sources


def test_same_name_different_content_gets_a_suffix(settings, fake_embeddings, tmp_path: Path):
    assistant = _assistant(settings, fake_embeddings, [])
    original = (settings.seeds_dir / "bakery.txt").read_text()
    upload = tmp_path / "bakery.txt"
    upload.write_text("A different bakery text about croissants.\n")
    report, _ = add_documents(assistant, [str(upload)])
    assert (settings.seeds_dir / "bakery.txt").read_text() == original
    assert (settings.seeds_dir / "bakery-1.txt").exists() and "renamed" in report
    # The very same file again is recognised, not copied a second time.
    add_documents(assistant, [str(settings.seeds_dir / "bakery.txt")])
    assert not (settings.seeds_dir / "bakery-2.txt").exists()


def test_failed_indexing_removes_the_copied_file(
    settings, fake_embeddings, tmp_path: Path, monkeypatch
):
    assistant = _assistant(settings, fake_embeddings, [])

    def fail(**kwargs):
        raise BackendError("Chroma is unreachable")

    monkeypatch.setattr(assistant, "index", fail)
    upload = tmp_path / "new.md"
    upload.write_text("# New\n\nSomething new.\n")
    report, _ = add_documents(assistant, [str(upload)])
    assert "failed" in report and "unreachable" in report
    assert not (settings.seeds_dir / "new.md").exists()


def test_auth_from_env() -> None:
    assert auth_from_env("") is None
    assert auth_from_env("ann:pw:x") == ("ann", "pw:x")
    assert auth_from_env("ann:pw1,bob:pw2") == [("ann", "pw1"), ("bob", "pw2")]
    assert auth_from_env("ann:pw,x") == ("ann", "pw,x")
    with pytest.raises(ValueError, match="user:password"):
        auth_from_env("nopassword")


def test_build_app_exposes_the_chat_endpoint(settings, fake_embeddings):
    demo = build_app(_assistant(settings, fake_embeddings, []), examples=["Q1?"])
    names = [dep.api_name for dep in demo.fns.values()]
    assert "chat" in names


def test_startup_indexes_and_warms_up_behind_the_page(settings, fake_embeddings) -> None:
    from qa.ui.chat import wait_for
    from qa.ui.startup import Startup, startup_note

    assistant = Assistant(
        settings, embeddings=fake_embeddings, llm=FakeListChatModel(responses=["Answer: none"])
    )
    startup = Startup(assistant)
    startup.status = "Loading the language model…"
    waiting = wait_for(startup, "When?", [])
    _, shown, turns, _ = next(waiting)  # not started: the question waits, with the status
    assert "Your question is next\\. Loading the language model…" in shown[-1]["content"]
    assert turns == []
    startup.start()
    assert startup.wait(60) and startup.ready and not startup.error
    assert list(waiting) == [] and startup_note(startup) == ""
    assert assistant.store.count() > 0  # indexed in the background


def test_a_failed_startup_is_shown(settings, fake_embeddings, tmp_path) -> None:
    from qa.ui.startup import Startup, startup_note

    absent = settings.model_copy(update={"seeds_dir": tmp_path / "absent"})
    assistant = Assistant(absent, embeddings=fake_embeddings, llm=FakeListChatModel(responses=[]))
    startup = Startup(assistant).start()
    assert startup.wait(60)
    assert "No documents folder" in startup.error
    assert startup_note(startup).startswith("**Not ready:** No documents folder")
