"""Hostile and broken input, through the API, the CLI and the UI callbacks.

Each case gets a typed :mod:`qa.errors` exception (API), exit code 1 and one ``Error: ...`` line
(CLI), or a rendered message (UI), never a traceback; and the index is intact afterwards.
``docs/reliability.md`` tabulates these cases. A dead Chroma server is covered in
``tests/test_store.py`` (``test_chroma_server_that_is_down_gives_an_actionable_error``,
``test_chroma_server_that_hangs_fails_within_the_timeout``).
"""

from __future__ import annotations

import json
import os
import struct
import zipfile
from pathlib import Path

import pytest
from chromadb.api.shared_system_client import SharedSystemClient
from langchain_core.language_models import FakeListChatModel
from typer.testing import CliRunner

import qa.assistant
from qa import Assistant, Settings
from qa.cli import app
from qa.errors import BackendError, IndexNotFoundError, InvalidQuestionError
from qa.llm.models import make_llm
from qa.ui import add_documents, respond

from .conftest import free_port

REPLY = "Answer: in 1998\nQuote: The bakery opened in 1998."


@pytest.fixture
def assistant(settings: Settings, fake_embeddings) -> Assistant:
    indexed = Assistant(
        settings, embeddings=fake_embeddings, llm=FakeListChatModel(responses=[REPLY])
    )
    indexed.index()
    return indexed


@pytest.fixture(autouse=True)
def _fake_models(monkeypatch: pytest.MonkeyPatch, fake_embeddings) -> None:
    """The CLI builds its own Assistant: give it the fakes and the fixture's settings too."""
    for name, value in {
        "CHUNK_SIZE": "120",
        "CHUNK_OVERLAP": "0",
        "SUPPORT_THRESHOLD": "0",
    }.items():
        monkeypatch.setenv(f"QA_{name}", value)
    monkeypatch.setattr(qa.assistant, "make_embeddings", lambda s: fake_embeddings)
    monkeypatch.setattr(qa.assistant, "make_llm", lambda s: FakeListChatModel(responses=[REPLY]))


def assert_intact(assistant: Assistant, settings: Settings, fake_embeddings) -> None:
    """The index another process would open has the fixture's chunks and answers a search."""
    fresh = Assistant(settings, embeddings=fake_embeddings)
    assert sorted(fresh.store.sources()) == ["bakery.txt", "ferry.md"]
    assert fresh.store.count() == assistant.store.count()
    chunk = next(c for c in fresh.store.all_chunks() if "1998" in c.text)
    assert fresh.store.search(chunk.text, 1)[0].chunk == chunk


def cli(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def cli_error(code: int, output: str) -> str:
    """The one error line of a failed CLI run."""
    assert code == 1, output
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), output
    return lines[0]


def ui_reply(assistant: Assistant, question: str) -> str:
    *_, (_, chat, turns, sources) = respond(assistant, question, [])
    page = json.dumps([chat, sources], ensure_ascii=False)
    page.encode("utf-8")  # what Gradio sends must be valid UTF-8 (no lone surrogates)
    assert "Traceback" not in page
    return chat[-1]["content"]


# --- questions ---------------------------------------------------------------------------------

REFUSED_QUESTIONS = {
    "empty": ("", "question is empty"),
    "whitespace": (" \t\n  ", "question is empty"),
    "control characters only": ("\x00\x07\x1b\x7f", "question is empty"),
    "100 KB": ("why " * 25_000, "keep it under 2000"),
}
ANSWERED_QUESTIONS = {
    "control characters": "When\x00 did the\x1b[31m bakery\u200b open?",
    "lone surrogate (invalid unicode)": "When did the bakery open?\ud800",
    "another language": "¿Cuándo abrió la panadería?",
    "another script": "面包店是什么时候开的？",
}


@pytest.mark.parametrize(
    ("question", "reason"), REFUSED_QUESTIONS.values(), ids=list(REFUSED_QUESTIONS)
)
def test_bad_question_is_refused(assistant, settings, fake_embeddings, question, reason) -> None:
    with pytest.raises(InvalidQuestionError, match=reason):
        assistant.ask(question)
    assert reason in cli_error(
        *cli("ask", question, "--docs", settings.seeds_dir, "--index", settings.index_dir)
    )
    assert reason in ui_reply(assistant, question).replace("\\", "")
    assert_intact(assistant, settings, fake_embeddings)


@pytest.mark.parametrize("question", ANSWERED_QUESTIONS.values(), ids=list(ANSWERED_QUESTIONS))
def test_odd_question_is_answered_or_abstained(
    assistant, settings, fake_embeddings, question
) -> None:
    answer = assistant.ask(question)
    assert answer.text and ("\ud800" not in answer.question)
    code, output = cli("ask", question, "--docs", settings.seeds_dir, "--index", settings.index_dir)
    assert code == 0 and "1998" in output, output
    assert "⚠" not in ui_reply(assistant, question)
    assert_intact(assistant, settings, fake_embeddings)


# --- files -------------------------------------------------------------------------------------


def _zip_bomb(path: Path) -> None:
    """A small .docx whose zip directory claims a 4 GB document.xml."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", b"<w:document/>" * 1000)
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x01\x02", 24), (b"PK\x03\x04", 22)):
        at = data.rfind(signature)  # document.xml is the last member
        data[at + offset : at + offset + 4] = struct.pack("<I", 0xFFFF_FFF0)
    path.write_bytes(bytes(data))


def _bad_file(folder: Path, kind: str) -> Path:
    """Write one bad file into ``folder``; returns its path."""
    if kind == "binary":
        (path := folder / "photo.txt").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" * 50)
    elif kind == "empty":
        (path := folder / "blank.md").write_text("  \n\n")
    elif kind == "huge":
        (path := folder / "huge.txt").write_text("The ferry is late. " * 2_000)  # 38 KB
    elif kind == "zip bomb .docx":
        _zip_bomb(path := folder / "bomb.docx")
    elif kind == "damaged .pdf":
        (path := folder / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj <<\n" + b"\xff" * 200)
    elif kind == "unsupported type":
        (path := folder / "clip.mp4").write_bytes(b"\0\0\0\x18ftypmp42")
    return path


REFUSED_FILES = {
    "binary": "looks like a binary file",
    "empty": "the file is empty",
    "huge": "over the 0.0 MB limit (raise QA_MAX_FILE_MB",
    "zip bomb .docx": "unpacks to 4295.0 MB",
    "damaged .pdf": "may be damaged",
    "unsupported type": "unsupported file type",
}


@pytest.fixture
def small_limit(settings: Settings) -> Settings:
    """A 20 KB file limit, so "huge" files stay small."""
    return settings.model_copy(update={"max_file_mb": 0.02})


@pytest.mark.parametrize(("kind", "reason"), REFUSED_FILES.items(), ids=list(REFUSED_FILES))
def test_bad_file_in_the_documents_folder_is_skipped(
    small_limit, fake_embeddings, kind, reason, monkeypatch
) -> None:
    assistant = Assistant(small_limit, embeddings=fake_embeddings)
    assistant.index()
    _bad_file(small_limit.seeds_dir, kind)
    report = assistant.index()
    assert any(reason in s for s in report.skipped), report.skipped
    assert (report.added, report.removed) == (0, 0)
    monkeypatch.setenv("QA_MAX_FILE_MB", "0.02")
    code, output = cli("index", "--docs", small_limit.seeds_dir, "--index", small_limit.index_dir)
    assert code == 0 and "Skipped" in output and reason in " ".join(output.split())
    assert_intact(assistant, small_limit, fake_embeddings)


@pytest.mark.parametrize(("kind", "reason"), REFUSED_FILES.items(), ids=list(REFUSED_FILES))
def test_bad_upload_is_refused_and_not_copied(
    small_limit, fake_embeddings, tmp_path: Path, kind, reason
) -> None:
    assistant = Assistant(small_limit, embeddings=fake_embeddings)
    assistant.index()
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    bad = _bad_file(uploads, kind)
    report, _ = add_documents(assistant, [str(bad)])
    assert "Refused" in report and reason in report.replace("\\", "")
    assert not (small_limit.seeds_dir / bad.name).exists()
    assert_intact(assistant, small_limit, fake_embeddings)


def test_latin1_text_is_decoded_not_mangled(assistant, settings, fake_embeddings) -> None:
    (settings.seeds_dir / "menu.txt").write_bytes("Café crème, naïve résumé: 4 €.".encode("cp1252"))
    report = assistant.index()
    assert report.added == 1 and not report.skipped
    (menu,) = [c for c in assistant.store.all_chunks() if c.source == "menu.txt"]
    assert menu.text == "Café crème, naïve résumé: 4 €."


def test_deeply_nested_html_is_read_without_recursion(assistant, settings) -> None:
    depth = 100_000
    (settings.seeds_dir / "deep.html").write_text("<div>" * depth + "Deep text." + "</div>" * depth)
    report = assistant.index()
    assert report.added == 1 and not report.skipped
    assert any(c.text == "Deep text." for c in assistant.store.all_chunks())


def test_symlinks_out_of_the_documents_folder_are_not_followed(
    assistant, settings, fake_embeddings, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("The vault code is 4711.")
    os.symlink(outside / "secret.txt", settings.seeds_dir / "secret.txt")
    os.symlink(outside, settings.seeds_dir / "linked")
    (settings.seeds_dir / "inside.txt").symlink_to(settings.seeds_dir / "bakery.txt")
    report = assistant.index()
    (reason,) = [s for s in report.skipped if "symbolic links" in s]
    assert "secret.txt" in reason  # (links to folders are not descended into at all)
    assert "4711" not in " ".join(c.text for c in assistant.store.all_chunks())
    assert "inside.txt" in assistant.store.sources()  # a link within the folder is fine
    code, output = cli("index", "--docs", settings.seeds_dir, "--index", settings.index_dir)
    assert code == 0 and "symbolic links" in output


@pytest.mark.parametrize("name", ["../../escape.txt", "../escape.txt", "./sub/../escape.txt"])
def test_upload_names_with_dot_dot_stay_in_the_documents_folder(
    assistant, settings, fake_embeddings, tmp_path: Path, monkeypatch, name
) -> None:
    workdir = tmp_path / "uploads" / "a" / "b"
    (workdir / "sub").mkdir(parents=True)
    monkeypatch.chdir(workdir)
    Path(name).write_text("The escape hatch is on deck 3.")

    def files() -> set[Path]:
        return {p for p in tmp_path.rglob("*") if not p.is_relative_to(settings.index_dir)}

    before = files()
    report, _ = add_documents(assistant, [name])
    assert "escape.txt" in report.replace("\\", "")
    assert files() - before == {settings.seeds_dir / "escape.txt"}
    assert "escape.txt" in assistant.store.sources()


def test_hidden_upload_name_is_refused(assistant, settings, tmp_path: Path) -> None:
    hidden = tmp_path / ".notes.txt"
    hidden.write_text("Hidden notes.")
    report, _ = add_documents(assistant, [str(hidden)])
    assert "Refused" in report and not (settings.seeds_dir / ".notes.txt").exists()


# --- the index and the servers -----------------------------------------------------------------


def test_missing_index_says_run_qa_index(settings, fake_embeddings, tmp_path: Path) -> None:
    missing = settings.model_copy(update={"index_dir": tmp_path / "nowhere"})
    nobody = Assistant(
        missing, embeddings=fake_embeddings, llm=FakeListChatModel(responses=[REPLY])
    )
    with pytest.raises(IndexNotFoundError, match="run `qa index`"):
        nobody.ask("When did the bakery open?")
    line = cli_error(
        *cli("ask", "When?", "--docs", settings.seeds_dir, "--index", missing.index_dir)
    )
    assert "run `qa index`" in line
    assert "qa index" in ui_reply(nobody, "When did the bakery open?")


def test_corrupted_index_says_delete_it_and_reindex(assistant, settings, fake_embeddings) -> None:
    SharedSystemClient.clear_system_cache()  # as a new process would open it
    (settings.index_dir / "chroma.sqlite3").write_bytes(b"not a database" * 100)
    fresh = Assistant(
        settings, embeddings=fake_embeddings, llm=FakeListChatModel(responses=[REPLY])
    )
    with pytest.raises(IndexNotFoundError, match="damaged.*delete that folder and run `qa index`"):
        fresh.ask("When did the bakery open?")
    for args in (["ask", "When?"], ["index"]):
        line = cli_error(*cli(*args, "--docs", settings.seeds_dir, "--index", settings.index_dir))
        assert "is damaged" in line and "delete that folder" in line
    assert "is damaged" in ui_reply(fresh, "When did the bakery open?")
    SharedSystemClient.clear_system_cache()


def test_dead_llm_server_is_a_backend_error(assistant, settings, fake_embeddings) -> None:
    dead = settings.model_copy(
        update={
            "llm_backend": "openai",
            "openai_base_url": f"http://127.0.0.1:{free_port()}/v1",
            "request_timeout": 2,
        }
    )
    served = Assistant(dead, embeddings=fake_embeddings, llm=make_llm(dead))
    with pytest.raises(BackendError, match="LLM server at http://127.0.0.1"):
        served.ask("When did the bakery open?")
    assert "LLM server" in ui_reply(served, "When did the bakery open?")
    assert_intact(assistant, settings, fake_embeddings)
