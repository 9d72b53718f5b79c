"""Crash-safe, idempotent, serialized indexing: builds go live atomically through a pointer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from typer.testing import CliRunner

import qa.assistant
from qa import Assistant, Settings
from qa.cli import app
from qa.documents.client import fingerprint, index_lock
from qa.documents.store import Store

from .conftest import ROOT


class SlowEmbeddings(DeterministicFakeEmbedding):
    """Fake embeddings that take ``delay`` seconds per batch, note each call and can fail."""

    delay: float = 0.0
    fail_on_call: int | None = None
    calls: list[float] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(time.monotonic())
        if self.fail_on_call == len(self.calls):
            raise RuntimeError("killed mid-index")
        time.sleep(self.delay)
        return super().embed_documents(texts)


def _collections(settings: Settings, embeddings) -> set[str]:
    return {c.name for c in Store(settings, embeddings).client.list_collections()}


def _live(settings: Settings, embeddings) -> str:
    store = Store(settings, embeddings)
    store.count()
    assert store._live_name is not None
    return store._live_name


def _write_corpus(folder: Path, files: int, paragraphs: int, tag: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for f in range(files):
        text = "\n\n".join(
            f"Record {tag}-{f}-{p}: the {tag} archive lists item {p} of file {f} in its catalogue."
            for p in range(paragraphs)
        )
        (folder / f"{tag}-{f}.txt").write_text(text + "\n")


def test_nothing_changed_writes_no_collection(settings, fake_embeddings) -> None:
    Assistant(settings, embeddings=fake_embeddings).index()
    before = _collections(settings, fake_embeddings)
    report = Assistant(settings, embeddings=fake_embeddings).index()
    assert report.added == report.removed == 0
    assert _collections(settings, fake_embeddings) == before
    assert len(before) == 2  # the pointer and one build


def test_a_change_goes_live_in_a_new_collection_and_the_old_one_is_dropped(
    settings, fake_embeddings, docs: Path
) -> None:
    assistant = Assistant(settings, embeddings=fake_embeddings)
    assistant.index()
    first = _live(settings, fake_embeddings)
    (docs / "ferry.md").write_text("# Ferry\n\nThe ferry now crosses every 30 minutes.\n")
    assistant.index()
    second = _live(settings, fake_embeddings)
    assert second != first
    assert _collections(settings, fake_embeddings) == {"documents__active", second}


def test_unchanged_chunks_are_copied_not_embedded(settings, docs: Path) -> None:
    embeddings = SlowEmbeddings(size=32, calls=[])
    assistant = Assistant(settings, embeddings=embeddings)
    first = assistant.index()
    calls = len(embeddings.calls)
    (docs / "new.txt").write_text("The lighthouse keeper arrives at dawn.\n")
    second = assistant.index()
    assert second.added == 1 and second.unchanged == first.added
    assert len(embeddings.calls) == calls + 1
    chunks = assistant.store.all_chunks()
    assert len(chunks) == first.added + 1
    for chunk in chunks:  # the copied vectors still find their own text
        hit = assistant.store.search(chunk.text, 1)[0]
        assert hit.chunk == chunk and hit.score > 0.99


def test_a_failed_build_leaves_the_previous_index_and_is_cleaned_up_next_time(
    settings, docs: Path
) -> None:
    embeddings = SlowEmbeddings(size=32, calls=[])
    Assistant(settings, embeddings=embeddings).index()
    before = Assistant(settings, embeddings=embeddings).store.all_chunks()
    _write_corpus(docs, files=3, paragraphs=40, tag="new")  # several embedding batches
    embeddings.fail_on_call = len(embeddings.calls) + 2
    with pytest.raises(RuntimeError, match="killed mid-index"):
        Assistant(settings, embeddings=embeddings).index()
    reader = Assistant(settings, embeddings=embeddings)
    assert reader.store.all_chunks() == before
    assert any(
        "__build_" in n for n in _collections(settings, embeddings) - {_live(settings, embeddings)}
    )
    embeddings.fail_on_call = None
    report = Assistant(settings, embeddings=embeddings).index()
    assert report.added == 120 and reader.store.count() == len(before) + 120
    assert _collections(settings, embeddings) == {"documents__active", _live(settings, embeddings)}


def test_a_reader_sees_a_reindex_by_another_process(settings, fake_embeddings, docs: Path) -> None:
    reader = Assistant(settings, embeddings=fake_embeddings)
    reader.index()
    reader.store.hybrid_search("lighthouse keeper", 10)  # builds its BM25 index
    (docs / "light.txt").write_text("The lighthouse keeper arrives at dawn.\n")
    Assistant(settings, embeddings=fake_embeddings).index()  # another Store: another process
    hits = reader.store.hybrid_search("lighthouse keeper", 1)  # the BM25 index is rebuilt
    assert hits[0].chunk.source == "light.txt"


def test_an_index_from_before_the_pointer_is_used_then_replaced(
    settings, fake_embeddings, docs: Path
) -> None:
    from langchain_chroma import Chroma

    store = Store(settings, fake_embeddings)
    legacy = Chroma(
        client=store.client,
        collection_name="documents",
        embedding_function=fake_embeddings,
        collection_metadata={"hnsw:space": "cosine", "qa_fingerprint": fingerprint(settings)},
    )
    legacy.add_texts(["The bakery opened in 1998."], metadatas=[{"source": "bakery.txt"}])
    assert Store(settings, fake_embeddings).count() == 1
    report = Assistant(settings, embeddings=fake_embeddings).index()
    assert report.removed == 1 and report.added > 1
    assert "documents" not in _collections(settings, fake_embeddings)


def test_concurrent_index_runs_are_serialized_and_both_land(
    settings, docs: Path, tmp_path: Path
) -> None:
    embeddings = SlowEmbeddings(size=32, calls=[], delay=0.3)
    Assistant(settings, embeddings=embeddings).index()
    first, second = tmp_path / "a", tmp_path / "b"
    _write_corpus(first, files=1, paragraphs=3, tag="alpha")
    _write_corpus(second, files=1, paragraphs=3, tag="beta")
    waits: list[str] = []

    def run(folder: Path) -> None:
        Assistant(settings, embeddings=embeddings).index([folder], on_wait=waits.append)

    embeddings.calls.clear()
    threads = [threading.Thread(target=run, args=(folder,)) for folder in (first, second)]
    threads[0].start()
    while not embeddings.calls:  # the first run holds the lock and is embedding
        time.sleep(0.01)
    threads[1].start()
    for thread in threads:
        thread.join(timeout=30)
    assert waits == [f"Another qa index is running (pid {os.getpid()}); waiting for it to finish…"]
    sources = Assistant(settings, embeddings=embeddings).store.sources()
    assert {(first / "alpha-0.txt").as_posix(), (second / "beta-0.txt").as_posix()} <= set(sources)


def test_cli_says_it_waits_for_another_index_run(settings, monkeypatch, docs: Path) -> None:
    monkeypatch.setattr(qa.assistant, "make_embeddings", lambda s: SlowEmbeddings(size=32))
    args = ["index", "--docs", str(docs), "--index", str(settings.index_dir)]
    result: list = []
    with index_lock(settings):
        thread = threading.Thread(target=lambda: result.append(CliRunner().invoke(app, args)))
        thread.start()
        time.sleep(1.0)
        assert thread.is_alive()  # waiting for the lock
    thread.join(timeout=30)
    assert result[0].exit_code == 0, result[0].output
    assert f"Another qa index is running (pid {os.getpid()}); waiting" in result[0].output
    assert "Indexed 2 file(s)" in result[0].output


RUNNER = """
import os, sys, time
from langchain_core.embeddings import DeterministicFakeEmbedding
import qa.assistant
from qa.cli import app

class Slow(DeterministicFakeEmbedding):
    def embed_documents(self, texts):
        print("embedding", len(texts), flush=True)
        time.sleep(float(os.environ["SLOW_EMBED_S"]))
        return super().embed_documents(texts)

qa.assistant.make_embeddings = lambda settings: Slow(size=32)
app()
"""


def _qa_index(docs: Path, index: Path, delay: float) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SLOW_EMBED_S": str(delay),
        "QA_CHUNK_SIZE": "120",
        "QA_CHUNK_OVERLAP": "0",
    }
    cmd = [sys.executable, "-c", RUNNER, "index", "--docs", str(docs), "--index", str(index)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_qa_index_killed_mid_build_leaves_the_previous_index_queryable(
    settings, fake_embeddings, docs: Path
) -> None:
    assert _qa_index(docs, settings.index_dir, 0).wait(timeout=120) == 0
    reader = Assistant(settings, embeddings=fake_embeddings)  # e.g. a running `qa chat`
    before = reader.store.all_chunks()
    bakery = next(c for c in before if "1998" in c.text)

    _write_corpus(docs, files=10, paragraphs=64, tag="big")  # 10 batches of 64 chunks
    proc = _qa_index(docs, settings.index_dir, 0.5)
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("embedding")
    assert proc.stdout.readline().startswith("embedding")  # a build is half written
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    assert reader.store.all_chunks() == before
    assert reader.store.search(bakery.text, 1)[0].chunk == bakery
    fresh = Assistant(settings, embeddings=fake_embeddings)  # a process started after the kill
    assert fresh.store.all_chunks() == before
    assert fresh.store.hybrid_search("Marta Kovacs bakes", 1)[0].chunk == bakery
    assert len(_collections(settings, fake_embeddings)) == 3  # pointer, live, half-built

    assert _qa_index(docs, settings.index_dir, 0).wait(timeout=120) == 0
    assert reader.store.count() == len(before) + 640
    big = reader.store.search(
        "Record big-9-63: the big archive lists item 63 of file 9 in its catalogue.", 1
    )
    assert big[0].chunk.source == "big-9.txt"
    assert _collections(settings, fake_embeddings) == {
        "documents__active",
        _live(settings, fake_embeddings),
    }
