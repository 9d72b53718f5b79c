"""qa against real servers started here: a Chroma server and llama.cpp's OpenAI-compatible
server. Each server is a subprocess that the test stops again, also when it fails."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import httpx
import pytest
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import FakeListChatModel

from qa import Assistant, Settings
from qa.documents.embeddings import make_embeddings
from qa.errors import BackendError
from qa.llm.models import gguf_path

from .conftest import SEED, free_port

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

BIN = Path(sys.executable).parent
QUESTION = "Which TV channel aired the launch live?"


@contextmanager
def server(cmd: list[str], ready_url: str, log: Path, timeout: float = 120) -> Iterator[None]:
    """Run ``cmd`` until the block ends; ready once ``ready_url`` answers 200."""
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                pytest.fail(f"{cmd[0]} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(ready_url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{cmd[0]} not ready after {timeout}s:\n{log.read_text()[-3000:]}")
            time.sleep(0.25)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def embeddings() -> Embeddings:
    return make_embeddings(Settings())


@pytest.fixture
def seeds(tmp_path: Path) -> Path:
    folder = tmp_path / "seeds"
    folder.mkdir()
    shutil.copy(SEED, folder / SEED.name)
    return folder


def chroma(path: Path, port: int) -> AbstractContextManager[None]:
    cmd = [str(BIN / "chroma"), "run", "--path", str(path), "--port", str(port)]
    return server(cmd, f"http://localhost:{port}/api/v2/heartbeat", path.parent / "chroma.log")


def test_chroma_server_indexes_answers_and_keeps_data_across_restarts(
    tmp_path: Path, seeds: Path, embeddings: Embeddings
) -> None:
    port = free_port()
    settings = Settings(
        seeds_dir=seeds,
        index_dir=tmp_path / "unused",
        chroma_host="localhost",
        chroma_port=port,
        full_context_chars=0,  # retrieve top-k from the server, not the whole corpus
    )
    # The LLM is scripted: this test is about the store; the served LLM has its own test.
    quote = next(line for line in SEED.read_text().splitlines() if line.startswith("Channel One"))
    reply = f"Answer: Channel One\nQuote: {quote.split(' Upon')[0]}"
    with chroma(tmp_path / "chroma", port):
        llm = FakeListChatModel(responses=[reply])
        assistant = Assistant(settings, embeddings=embeddings, llm=llm)
        report = assistant.index()
        assert report.added > 10 and not report.skipped
        hits = assistant.retrieve(QUESTION)
        assert "Channel One" in hits[0].chunk.text
        answer = assistant.ask(QUESTION)
        assert not answer.abstained and "Channel One" in answer.citations[0].text
    assert not (tmp_path / "unused").exists()  # nothing was written to the embedded index
    with pytest.raises(BackendError, match="Lost the Chroma server"):
        assistant.retrieve(QUESTION)  # a client whose server went away
    with pytest.raises(BackendError, match=f"chroma run --path index --port {port}"):
        Assistant(settings, embeddings=embeddings).retrieve(QUESTION)

    with chroma(tmp_path / "chroma", port):
        again = Assistant(settings, embeddings=embeddings)
        assert again.store.count() == report.added
        assert again.retrieve(QUESTION)[0].chunk.id == hits[0].chunk.id
        assert again.index().unchanged == report.added  # nothing re-embedded


def test_openai_backend_streams_an_answer_from_llama_cpp_server(
    tmp_path: Path, seeds: Path, embeddings: Embeddings
) -> None:
    port = free_port()
    cmd = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(gguf_path(Settings())),
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", "2048", "--n_threads", "1", "--n_threads_batch", "1",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    settings = Settings(
        seeds_dir=seeds,
        index_dir=tmp_path / "index",
        llm_backend="openai",
        openai_base_url=url,
        openai_grammar=True,
        full_context_chars=0,
        top_k=2,  # a short prompt: one CPU thread
        max_tokens=64,
    )
    assistant = Assistant(settings, embeddings=embeddings)
    assistant.index()
    with server(cmd, f"{url}/models", tmp_path / "llama.log"):
        stream = assistant.stream(QUESTION)
        tokens = list(stream)
        answer = stream.answer
        assert answer is not None and answer.text
        assert tokens and "".join(tokens).strip()  # the answer line arrived token by token
        # The model's wording is not under test; a verified answer must cite what it quotes.
        assert answer.abstained or f"[{answer.citations[0].n}]" in answer.text
        # The server's log-probabilities stand in for the hidden state the learned decision
        # reads in-process: the answer pass reports them, and a supported answer is judged by
        # the log-probability variant.
        signals = answer.signals
        assert signals and signals.first_token_probs and signals.token_logprobs
        assert not signals.states
        second = assistant.ask("Who is directing Tom Cruise's film?")
        judged = [a for a in (answer, second) if not a.abstained or a.withheld]
        assert judged, "neither question got a supported answer"
        for a in judged:
            assert a.decided_by == "log-probabilities"
            assert a.answerability is not None and 0 <= a.answerability <= 1
    t0 = time.perf_counter()
    with pytest.raises(BackendError, match=f"Cannot reach the LLM server at {url}"):
        assistant.ask(QUESTION)  # the server is stopped now
    assert time.perf_counter() - t0 < 10
