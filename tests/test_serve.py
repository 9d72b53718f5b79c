"""`qa serve`'s model server with the real model: its clients get every signal the answer
decision reads, and killing it mid-answer costs that answer only, never saved chats."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from qa import Assistant, Settings
from qa.errors import BackendError
from qa.history import ChatHistory
from qa.llm.server import ModelServer, healthy
from qa.llm.tap import TAPPED_LAYERS

from .conftest import SEED, free_port

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

QUESTION = "Which TV channel aired the launch live?"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    """The seed article indexed, a model server over it, and client settings."""
    root = tmp_path_factory.mktemp("serve")
    (root / "docs").mkdir()
    shutil.copy(SEED, root / "docs" / SEED.name)
    settings = Settings(seeds_dir=root / "docs", index_dir=root / "index", parallel=2)
    indexer = Assistant(settings)
    indexer.index()
    server = ModelServer(settings, free_port())
    server.start()
    client = settings.model_copy(update={"llm_backend": "qa", "llm_server_url": server.url})
    try:
        yield server, client, indexer
    finally:
        server.stop()


def test_a_served_answer_carries_every_signal_of_a_local_one(served) -> None:
    _, client, indexer = served
    answer = Assistant(client, embeddings=indexer.embeddings).ask(QUESTION)
    assert not answer.abstained and "channel one" in answer.text.lower()
    signals = answer.signals
    assert signals is not None and signals.first_token_probs and signals.token_logprobs
    layers = ["final", *(f"l{i}" for i in TAPPED_LAYERS)]
    assert set(signals.states) == {f"{la}@{pos}" for la in layers for pos in ("first", "end")}
    assert answer.answerability is not None  # the learned decision ran on them
    assert answer.decided_by == "hidden-state"


def test_killing_the_server_mid_answer_loses_no_saved_chat(served, tmp_path: Path) -> None:
    server, client, indexer = served
    assistant = Assistant(client, embeddings=indexer.embeddings)
    history = ChatHistory(tmp_path / "history.sqlite3")
    first = assistant.ask(QUESTION)
    saved = history.save("", None, [{"question": QUESTION, "text": first.text, "ok": True}])

    failed: list[BaseException] = []

    def ask_while_killed() -> None:
        try:
            for _ in assistant.stream("Summarize the whole article in detail."):
                pass
        except BackendError as err:
            failed.append(err)

    asking = threading.Thread(target=ask_while_killed)
    asking.start()
    time.sleep(1.0)  # the question is being answered
    assert server.process is not None
    os.kill(server.process.pid, 9)
    asking.join(timeout=300)
    assert failed, "the answer cut short must fail, not come back half-made"

    assert history.load("", saved) == [{"question": QUESTION, "text": first.text, "ok": True}]
    deadline = time.monotonic() + 300
    while not (server.restarts and healthy(server.url)) and time.monotonic() < deadline:
        time.sleep(1)
    again = assistant.ask(QUESTION)  # the supervisor started the server again
    assert again.text == first.text
