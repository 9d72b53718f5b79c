from __future__ import annotations

import os
import shutil
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

import qa  # noqa: F401 - sets the offline switches before any model library loads
from qa import Assistant, Settings

# Servers started by tests (and the processes they spawn) must not refit the decision in the
# background and write qa.toml where they run; tests/test_refit.py turns it on where it tests it.
os.environ["QA_AUTO_CALIBRATE"] = "false"

ROOT = Path(__file__).resolve().parents[1]
# Browser tests (tests/test_ui*_browser.py): Debian chromium, driven by Playwright.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 20_000
SEED = ROOT / "seeds" / "000_fee3450cbe0e2819.txt"


@pytest.fixture
def fake_embeddings() -> DeterministicFakeEmbedding:
    return DeterministicFakeEmbedding(size=32)


BAKERY = (
    "The Elm Street Bakery\n\nThe bakery opened in 1998. Its founder, Marta Kovacs, bakes "
    "every morning.\n\nThe shop sells about 400 loaves a day.\n"
)
"""The small document most tests ask about."""


def small_chunks(docs: Path, index_dir: Path, **extra: Any) -> Settings:
    """Settings for a few short documents: small chunks, all of them retrieved."""
    return Settings(
        seeds_dir=docs,
        index_dir=index_dir,
        chunk_size=120,
        chunk_overlap=0,
        top_k=20,
        support_threshold=0,
        **extra,
    )


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "bakery.txt").write_text(BAKERY)
    (folder / "ferry.md").write_text("# Ferry\n\nThe ferry crosses the river every 20 minutes.\n")
    return folder


@pytest.fixture
def settings(tmp_path: Path, docs: Path) -> Settings:
    # support_threshold=0: scripted LLMs have no answer checker; tests that need one set it.
    return Settings(
        seeds_dir=docs,
        index_dir=tmp_path / "index",
        chunk_size=120,
        chunk_overlap=0,
        support_threshold=0,
    )


@pytest.fixture(scope="session")
def real_assistant(tmp_path_factory: pytest.TempPathFactory) -> Assistant:
    """The shipped models over the seed article, loaded once per session."""
    root = tmp_path_factory.mktemp("seed")
    shutil.copy(SEED, root / SEED.name)
    assistant = Assistant(Settings(seeds_dir=root, index_dir=root / "index"))
    assistant.index()
    return assistant


def free_port() -> int:
    """A TCP port nothing listens on (free at the time of the call)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_ui(assistant: Assistant, auth: object = None, **options: object) -> Iterator[str]:
    """Serve the chat UI for ``assistant`` on a free loopback port (``options`` go to
    ``build_app``, e.g. ``evals``); yields its URL."""
    from qa.ui import CSS, build_app

    demo = build_app(assistant, examples=["What is this document about?"], **options)
    port = free_port()
    demo.launch(
        prevent_thread_lock=True,
        server_name="127.0.0.1",
        server_port=port,
        share=False,
        ssr_mode=False,
        quiet=True,
        css=CSS,
        auth=auth,
    )
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@contextmanager
def silent_server() -> Iterator[int]:
    """A server that accepts connections and never answers: a hung backend. Yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:  # the listener was closed
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        listener.close()
        for conn in accepted:
            conn.close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} not found; run scripts/install-browser"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    pg.dialogs = []  # type: ignore[attr-defined]
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))  # type: ignore[attr-defined]
    yield pg
    context.close()
