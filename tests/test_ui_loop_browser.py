"""The loop in a real browser (Debian chromium via Playwright, fake models): rate an answer, find
the rating as a runnable regression item; remove a document; reopen a chat after a restart;
two logged-in users with separate histories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from typer.testing import CliRunner

from qa import Assistant, Settings
from qa.cli import app

from .conftest import BAKERY, TIMEOUT_MS, serve_ui, small_chunks
from .test_documents import chunks_of, raw_client
from .test_ui_browser import BOT, INPUT, RoutedFakeLLM, _ask, _open

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword).*"),
]

WRONG = "Answer: Elm Street\nQuote: The Elm Street Bakery"
RIGHT = "Answer: Marta Kovacs\nQuote: Its founder, Marta Kovacs, bakes every morning."


class FounderLLM(RoutedFakeLLM):
    """Answers the founder question wrongly until ``fixed`` is set (a model that gets better)."""

    fixed: bool = False

    def _reply(self, messages) -> str:
        if "founded" in str(messages[-1].content).rsplit("Question:", 1)[-1]:
            return RIGHT if self.fixed else WRONG
        return super()._reply(messages)


def _settings(root: Path) -> Settings:
    docs = root / "docs"
    docs.mkdir(exist_ok=True)
    (docs / "bakery.txt").write_text(BAKERY)
    (docs / "ferry.md").write_text("# Ferry\n\nThe ferry crosses the river every 20 minutes.\n")
    return small_chunks(docs, root / "index", feedback_path=root / "feedback.jsonl")


def _assistant(settings: Settings, llm: RoutedFakeLLM | None = None) -> Assistant:
    a = Assistant(settings, embeddings=DeterministicFakeEmbedding(size=32), llm=llm or FounderLLM())
    a.index()
    return a


def _rate(page, n: int, which: str) -> None:
    page.locator(BOT).nth(n - 1).wait_for()
    page.locator(f'#qa-chat button[aria-label="{which}"]').nth(n - 1).click()


def test_thumbs_down_with_a_correction_becomes_a_regression_item(
    page, tmp_path: Path, monkeypatch
) -> None:
    from playwright.sync_api import expect

    llm = FounderLLM()
    assistant = _assistant(_settings(tmp_path), llm)
    for url in serve_ui(assistant):
        _open(page, url)
        assert "Elm Street" in _ask(page, "Who founded the bakery?", 1)
        _rate(page, 1, "Dislike")
        note = page.locator("#qa-feedback-note")
        expect(note).to_contain_text("What should it have said?")
        page.fill("#qa-correction-text textarea", "Marta Kovacs")
        page.click("#qa-save-feedback")
        expect(note).to_contain_text("Saved as regression item")
        expect(note).to_contain_text("marta")
        expect(page.locator("#qa-save-feedback")).to_be_hidden()
        assert "1998" in _ask(page, "When did the bakery open?", 2)
        _rate(page, 2, "Like")
        expect(note).to_contain_text("facts: 1998")
        # A 👎 form left open does not follow the user into another chat.
        _rate(page, 2, "Dislike")
        expect(page.locator("#qa-save-feedback")).to_be_visible()
        page.click("#qa-new-chat")
        expect(page.locator("#qa-save-feedback")).to_be_hidden()

    path = assistant.settings.feedback_path
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["feedback"]["verdict"] for r in records] == ["down", "up"]
    down = records[0]
    assert down["facts"] == [["marta"], ["kovacs"]] and down["feedback"]["correction"]
    assert down["feedback"]["answer"].startswith("Elm Street") and down["feedback"]["user"] is None

    # `qa eval --gold` runs the file (over this fake-model assistant instead of the real models).
    monkeypatch.setattr("qa.cli.evals.assistant_for", lambda *a, **k: assistant)

    def qa_eval(out: Path) -> dict[str, bool]:
        args = ["eval", "--gold", str(path), "--out", str(out)]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        report = json.loads((out / "report.json").read_text())
        return {it["id"]: it["passed"] for it in report["items"]}

    # The model still says Elm Street: the corrected item fails, for want of "marta".
    assert qa_eval(tmp_path / "r1") == {down["id"]: False, records[1]["id"]: True}
    failed = json.loads((tmp_path / "r1" / "report.json").read_text())["items"][0]["turns"][0]
    assert failed["answer"].startswith("Elm Street") and failed["expected"] == "marta; kovacs"
    # Once the model answers right, the same item passes.
    llm.fixed = True
    assert qa_eval(tmp_path / "r2") == {down["id"]: True, records[1]["id"]: True}


def test_documents_panel_lists_and_removes_after_confirmation(page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    assistant = _assistant(_settings(tmp_path))
    settings = assistant.settings
    for url in serve_ui(assistant):
        _open(page, url)
        page.get_by_text("Documents", exact=True).click()
        table = page.locator("#qa-documents")
        expect(table).to_contain_text("ferry.md")
        expect(table).to_contain_text("bakery.txt")
        upload_label = page.locator("#qa-upload").inner_text()
        assert ".txt .md .pdf .html .docx" in upload_label
        page.locator("#qa-doc-pick input").click()
        page.get_by_role("option", name="ferry.md").click()
        page.click("#qa-remove")
        expect(page.locator("#qa-confirm-text")).to_contain_text("Remove ferry.md")
        page.click("#qa-confirm-no")
        expect(page.locator("#qa-confirm-yes")).to_be_hidden()
        assert "ferry.md" in {d.source for d in assistant.documents()}
        page.click("#qa-remove")
        page.click("#qa-confirm-yes")
        expect(page.locator("#qa-report")).to_contain_text("Removed ferry.md")
        expect(table).not_to_contain_text("ferry.md")
        documents_row = page.locator("#qa-status tr", has_text="Documents")
        expect(documents_row.locator("td").nth(1)).to_have_text("1")
        assert chunks_of(raw_client(settings), "ferry.md") == {}
        assert (settings.seeds_dir / "ferry.md").exists()
        (settings.seeds_dir / "tide.txt").write_text("High tide is at 6 pm.\n")
        page.click("#qa-reindex")
        expect(page.locator("#qa-report")).to_contain_text("1 chunks added")
        expect(table).to_contain_text("tide.txt")
        expect(table).not_to_contain_text("ferry.md")  # removed stays removed


def test_history_survives_an_app_restart(page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    settings = _settings(tmp_path)
    for url in serve_ui(_assistant(settings)):
        _open(page, url)
        _ask(page, "When did the bakery open?", 1)
        _ask(page, "How many loaves does it sell?", 2)
        expect(page.locator("#qa-chats")).to_contain_text("When did the bakery open?")
    # A new process would build a new Assistant over the same settings: the same here.
    for url in serve_ui(_assistant(settings)):
        _open(page, url)
        assert page.locator(BOT).count() == 0
        page.locator("#qa-chats label", has_text="When did the bakery open?").click()
        expect(page.locator(BOT).nth(1)).to_contain_text("about 400 loaves")
        expect(page.locator("#qa-sources")).to_contain_text("bakery.txt")
        # The reopened chat goes on with its history, and is saved under the same entry.
        _ask(page, "And when did the bakery open?", 3)
        expect(page.locator("#qa-chats label")).to_have_count(1)
        page.click("#qa-delete-chat")
        expect(page.locator("#qa-chats label")).to_have_count(0)
        expect(page.locator(BOT)).to_have_count(0)


def _login(browser, url: str, user: str, password: str):
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    pg.goto(url)
    pg.get_by_label("username").fill(user)
    pg.get_by_label("password").fill(password)
    pg.get_by_role("button", name="Login").click()
    pg.wait_for_selector(INPUT)
    return context, pg


def test_two_users_never_see_each_others_chats(browser, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    assistant = _assistant(_settings(tmp_path))
    for url in serve_ui(assistant, auth=[("ann", "pw-ann"), ("bob", "pw-bob")]):
        ann_ctx, ann = _login(browser, url, "ann", "pw-ann")
        _ask(ann, "When did the bakery open?", 1)
        expect(ann.locator("#qa-chats")).to_contain_text("When did the bakery open?")
        bob_ctx, bob = _login(browser, url, "bob", "pw-bob")
        _ask(bob, "How many loaves does it sell?", 1)
        _rate(bob, 1, "Like")
        expect(bob.locator("#qa-feedback-note")).to_contain_text("Saved")
        expect(bob.locator("#qa-chats label")).to_have_count(1)
        assert "bakery open" not in bob.locator("#qa-chats").inner_text()
        ann.reload()
        ann.wait_for_selector(INPUT)
        expect(ann.locator("#qa-chats label")).to_have_count(1)
        assert "loaves" not in ann.locator("#qa-chats").inner_text()
        ann_ctx.close()
        bob_ctx.close()
    assert [c.title for c in assistant.history.list("bob")] == ["How many loaves does it sell?"]
    [rating] = assistant.feedback_store.items()
    assert rating.meta["user"] == "bob"
