"""The chat UI in a real browser (Debian chromium via Playwright), mostly over fake models.

Run ``scripts/install-browser`` once first. Without chromium these tests skip locally and fail
in CI (``CI`` set), so a missing browser never passes silently there.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.language_models import FakeListChatModel
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk

from qa import Assistant
from qa.llm.queue import ChatFirst
from qa.trust.refit import BackgroundRefit
from qa.ui.startup import Startup

from .conftest import BAKERY, TIMEOUT_MS, serve_ui, small_chunks

pytestmark = [
    pytest.mark.e2e,
    # Gradio's queue calls pandas APIs that pandas 3 deprecates; not ours to fix.
    pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword).*"),
]

BOT = '[data-testid="bot"]'
INPUT = '#qa-question textarea[data-testid="textbox"]'

XSS_DOC = (
    "The chef wrote <script>window.__xss=1</script> on the board.\n\n"
    'Also <img src=x onerror="window.__xss=2"> and [a link](javascript:window.__xss=3).\n'
)
ROUTES = [
    ("bakery open", "Answer: in 1998\nQuote: The bakery opened in 1998."),
    ("loaves", "Answer: about 400 loaves\nQuote: The shop sells about 400 loaves a day."),
    ("lighthouse", "Answer: Ada Quint\nQuote: The lighthouse keeper is Ada Quint."),
    (
        "chef",
        "Answer: <script>window.__xss=1</script>\n"
        "Quote: The chef wrote <script>window.__xss=1</script> on the board.",
    ),
]


class RoutedFakeLLM(FakeListChatModel):
    """A fake chat model that replies by keyword in the question (order-independent), and
    records the follow-up rewrites it was asked for."""

    responses: list[str] = []
    condensed: list[str] = []

    def _reply(self, messages: list[BaseMessage]) -> str:
        last = str(messages[-1].content)
        if "Last question:" in last:  # the follow-up rewrite step
            self.condensed.append(last)
            return last.rsplit("Last question:", 1)[1].strip()
        question = last.rsplit("Question:", 1)[-1].lower()
        for key, reply in ROUTES:
            if key in question:
                return reply
        return "Answer: none\nQuote: none"

    def _call(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> str:
        return self._reply(messages)

    def _stream(
        self, messages: list[BaseMessage], *args: Any, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        for ch in self._reply(messages):
            yield ChatGenerationChunk(message=AIMessageChunk(content=ch))


@pytest.fixture(scope="module")
def fake_llm() -> RoutedFakeLLM:
    return RoutedFakeLLM()


@pytest.fixture(scope="module")
def fake_server(tmp_path_factory: pytest.TempPathFactory, fake_llm: RoutedFakeLLM):
    root = tmp_path_factory.mktemp("ui")
    docs = root / "docs"
    docs.mkdir()
    (docs / "bakery.txt").write_text(BAKERY)
    (docs / "evil.md").write_text(XSS_DOC)
    # The guard withholds replies quoting evil.md's script (tests/test_planted.py); here the
    # markup must reach the page, to show it stays inert there.
    settings = small_chunks(docs, root / "index", guard="")
    assistant = Assistant(settings, embeddings=DeterministicFakeEmbedding(size=32), llm=fake_llm)
    assistant.index()
    yield from serve_ui(assistant)


def _open(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector(INPUT)


def _ask(page, question: str, n: int, timeout: int = TIMEOUT_MS) -> str:
    """Type ``question``, press Enter, wait for the ``n``-th (1-based) finished reply."""
    from playwright.sync_api import expect

    page.fill(INPUT, question)
    page.press(INPUT, "Enter")
    reply = page.locator(BOT).nth(n - 1)
    expect(reply).to_contain_text("total", timeout=timeout)  # the timing line ends a reply
    return reply.inner_text()


def test_question_streams_a_cited_answer_with_its_source(page, fake_server) -> None:
    _open(page, fake_server)
    reply = _ask(page, "When did the bakery open?", 1)
    assert "in 1998 [" in reply and "bakery.txt" in reply and "first token" in reply
    sources = page.locator("#qa-sources")
    assert "bakery.txt" in sources.inner_text()
    assert page.locator("#qa-sources mark").first.inner_text() == "The bakery opened in 1998."


def test_follow_up_uses_the_conversation(page, fake_server, fake_llm) -> None:
    _open(page, fake_server)
    _ask(page, "When did the bakery open?", 1)
    fake_llm.condensed.clear()
    reply = _ask(page, "And how many loaves does it sell?", 2)
    assert "about 400 loaves" in reply
    assert fake_llm.condensed and "When did the bakery open?" in fake_llm.condensed[-1]
    assert "in 1998 [" in fake_llm.condensed[-1]  # the earlier answer, without markup
    assert "first token" not in fake_llm.condensed[-1]
    page.click("#qa-new-chat")
    page.wait_for_function(f"document.querySelectorAll('{BOT}').length === 0")
    fake_llm.condensed.clear()
    assert "in 1998 [" in _ask(page, "When did the bakery open?", 1)
    assert fake_llm.condensed == []  # a new chat has no history to rewrite against


def test_uploaded_file_can_be_asked_about(page, fake_server, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    _open(page, fake_server)
    doc = tmp_path / "lighthouse.txt"
    doc.write_text("The lighthouse keeper is Ada Quint.\n")
    page.get_by_text("Documents", exact=True).click()
    page.locator("#qa-upload input[type=file]").set_input_files(str(doc))
    expect(page.locator("#qa-report")).to_contain_text("chunks added")
    expect(page.locator("#qa-report")).to_contain_text("lighthouse.txt")
    expect(page.locator("#qa-status")).to_contain_text("3")  # bakery, evil, lighthouse
    reply = _ask(page, "Who is the lighthouse keeper?", 1)
    assert "Ada Quint" in reply
    assert "lighthouse.txt" in page.locator("#qa-sources").inner_text()


def test_markup_in_documents_and_answers_stays_inert(page, fake_server) -> None:
    _open(page, fake_server)
    reply = _ask(page, "What did the chef write?", 1)
    assert "<script>window.__xss=1</script>" in reply  # shown as text
    page.locator("#qa-sources details").first.wait_for()
    sources = page.locator("#qa-sources").inner_text()
    assert "<script>window.__xss=1</script>" in sources
    page.wait_for_timeout(300)
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.dialogs == []  # type: ignore[attr-defined]
    injected = page.evaluate(
        "[...document.querySelectorAll('script, img[onerror], a[href^=\"javascript\"]')]"
        ".filter(e => (e.outerHTML || '').includes('__xss')).length"
    )
    assert injected == 0


def test_gradio_client_calls_the_chat_endpoint(fake_server) -> None:
    from gradio_client import Client

    client = Client(fake_server, verbose=False)
    box, chat, sources = client.predict("When did the bakery open?", api_name="/chat")
    # The box is cleared by the first update; the last one leaves it alone (an empty update)
    # so that a question typed while the answer streamed in is kept.
    assert box in ("", {"__type__": "update"})
    content = chat[-1]["content"]  # Gradio 6 returns a list of {"type": "text", "text": ...}
    text = content if isinstance(content, str) else " ".join(p.get("text", "") for p in content)
    assert chat[0]["role"] == "user" and chat[-1]["role"] == "assistant" and "1998" in text
    assert "bakery.txt" in sources


@pytest.mark.slow
def test_real_models_answer_in_the_browser(page, real_assistant: Assistant) -> None:
    for url in serve_ui(real_assistant):
        _open(page, url)
        reply = _ask(page, "Which TV channel broadcast the launch?", 1, timeout=300_000)
        assert "Channel One" in reply
        page.locator("#qa-sources details .qa-chunk").first.wait_for()
        assert page.locator("#qa-sources mark").count() >= 1


def test_install_browser_script_is_executable() -> None:
    script = Path(__file__).resolve().parents[1] / "scripts" / "install-browser"
    assert os.access(script, os.X_OK) and shutil.which("bash")


class GatedStartup(Startup):
    """A warm-up that holds at "loading the model" until the test lets it go on."""

    def __init__(self, assistant: Assistant) -> None:
        super().__init__(assistant)
        self.gate = threading.Event()

    def _run(self) -> None:
        self.status = "Loading the language model…"
        self.gate.wait(60)
        super()._run()


def _bakery(tmp_path: Path, llm: RoutedFakeLLM, **extra: Any) -> Assistant:
    """An Assistant over the bakery document (not indexed yet), with fake models."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bakery.txt").write_text(BAKERY)
    settings = small_chunks(docs, tmp_path / "index", **extra)
    return Assistant(settings, embeddings=DeterministicFakeEmbedding(size=32), llm=llm)


def test_the_page_comes_first_and_a_question_waits_for_the_warm_up(
    page, tmp_path: Path, fake_llm: RoutedFakeLLM
) -> None:
    from playwright.sync_api import expect

    assistant = _bakery(tmp_path, fake_llm)
    startup = GatedStartup(assistant).start()
    for url in serve_ui(assistant, startup=startup):
        _open(page, url)  # nothing indexed and no model yet: the page is up regardless
        expect(page.locator("#qa-startup")).to_contain_text("Loading the language model")
        page.fill(INPUT, "When did the bakery open?")
        page.press(INPUT, "Enter")
        expect(page.locator(BOT).first).to_contain_text("Your question is next")
        startup.gate.set()
        expect(page.locator(BOT).first).to_contain_text("in 1998", timeout=TIMEOUT_MS)
        expect(page.locator("#qa-startup")).to_have_text("", timeout=TIMEOUT_MS)


class GatedRefit(BackgroundRefit):
    """A refit that is always needed and holds halfway until the test lets it finish."""

    def __init__(self, assistant: Assistant) -> None:
        super().__init__(assistant, ChatFirst())
        self.gate = threading.Event()

    def needed(self) -> str:
        return "" if self.fitted else "changed"

    def _refit(self) -> None:
        self._progress(12, 40)
        self.gate.wait(60)
        self.fitted += 1


def test_the_page_follows_the_background_refit_and_the_chat_is_not_held_by_it(
    page, tmp_path: Path, fake_llm: RoutedFakeLLM
) -> None:
    from playwright.sync_api import expect

    assistant = _bakery(tmp_path, fake_llm, auto_calibrate=True)
    assistant.index()
    refit = GatedRefit(assistant)
    refit.start()
    for url in serve_ui(assistant, refit=refit):
        _open(page, url)
        note = page.locator("#qa-startup")
        expect(note).to_contain_text("in the background (12 of 40; your questions go first)")
        page.fill(INPUT, "When did the bakery open?")
        page.press(INPUT, "Enter")
        expect(page.locator(BOT).first).to_contain_text("in 1998", timeout=TIMEOUT_MS)
        refit.gate.set()
        expect(note).to_have_text("", timeout=TIMEOUT_MS)


class SlowFakeLLM(RoutedFakeLLM):
    """Streams its replies a character every 50 ms, so a user can type while one comes in."""

    def _stream(
        self, messages: list[BaseMessage], *args: Any, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        import time

        for chunk in super()._stream(messages, *args, **kwargs):
            time.sleep(0.05)
            yield chunk


def test_a_question_typed_while_an_answer_streams_in_is_kept_and_answered(
    page, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    assistant = _bakery(tmp_path, SlowFakeLLM())
    assistant.index()
    for url in serve_ui(assistant):
        _open(page, url)
        page.fill(INPUT, "When did the bakery open?")
        page.press(INPUT, "Enter")
        expect(page.locator(BOT).first).to_contain_text("in", timeout=TIMEOUT_MS)
        page.fill(INPUT, "How many loaves does it sell?")  # while the first answer streams
        page.wait_for_timeout(500)
        expect(page.locator(INPUT)).to_have_value("How many loaves does it sell?")
        page.press(INPUT, "Enter")
        expect(page.locator(BOT).nth(1)).to_contain_text("about 400 loaves", timeout=TIMEOUT_MS)
        expect(page.locator(BOT).first).to_contain_text("in 1998", timeout=TIMEOUT_MS)


def test_the_workspace_picker_makes_fills_switches_and_reopens_a_workspace(
    page, tmp_path: Path, fake_llm: RoutedFakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import expect

    # A workspace made from the page reads its settings from QA_* and its own qa.toml.
    for name, value in {"chunk_size": 120, "chunk_overlap": 0, "support_threshold": 0}.items():
        monkeypatch.setenv(f"QA_{name.upper()}", str(value))
    assistant = _bakery(tmp_path, fake_llm, workspaces_dir=tmp_path / "workspaces")
    assistant.index()
    doc = tmp_path / "lighthouse.txt"
    doc.write_text("The lighthouse keeper is Ada Quint.\n")
    picked = page.locator("#qa-workspace input")
    sources = page.locator("#qa-sources")
    for url in serve_ui(assistant):
        _open(page, url)
        page.get_by_text("New workspace", exact=True).click()
        page.fill("#qa-ws-name textarea, #qa-ws-name input", "harbour")
        page.click("#qa-ws-create")
        expect(page.locator("#qa-ws-note")).to_contain_text("made and picked")
        expect(picked).to_have_value("harbour")
        page.get_by_role("button", name="Documents").click()
        expect(page.locator("#qa-documents")).not_to_contain_text("bakery.txt")
        page.locator("#qa-upload input[type=file]").set_input_files(str(doc))
        expect(page.locator("#qa-report")).to_contain_text("chunks added")
        assert "Ada Quint" in _ask(page, "Who is the lighthouse keeper?", 1)
        assert "lighthouse.txt" in sources.inner_text()
        # Back to the project root's workspace: a new chat, answered from its documents only.
        picked.click()
        page.get_by_role("option", name="qa", exact=True).click()
        page.wait_for_function(f"document.querySelectorAll('{BOT}').length === 0")
        assert "in 1998 [" in _ask(page, "When did the bakery open?", 1)
        assert "bakery.txt" in sources.inner_text()
        _ask(page, "Who is the lighthouse keeper?", 2)
        assert "lighthouse.txt" not in sources.inner_text()
        # The harbour chat, reopened, is answered in harbour again.
        page.locator("#qa-chats label", has_text="[harbour]").click()
        expect(picked).to_have_value("harbour")
        expect(page.locator(BOT).first).to_contain_text("Ada Quint")
        assert "Ada Quint" in _ask(page, "Who is the lighthouse keeper?", 2)
        assert "lighthouse.txt" in sources.inner_text()
