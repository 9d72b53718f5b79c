"""Removing a document from a real ``chroma run`` server leaves none of its chunks there."""

from __future__ import annotations

from pathlib import Path

import chromadb
import pytest
from chromadb.config import Settings as ChromaSettings

from qa import Assistant, Settings

from .conftest import free_port
from .test_documents import chunks_of
from .test_servers import chroma

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def test_remove_leaves_no_chunk_on_a_chroma_server(
    tmp_path: Path, settings: Settings, fake_embeddings
) -> None:
    port = free_port()
    served = settings.model_copy(
        update={"chroma_host": "localhost", "chroma_port": port, "cache_dir": tmp_path / "cache"}
    )
    with chroma(tmp_path / "chroma-data", port):
        assistant = Assistant(served, embeddings=fake_embeddings)
        assistant.index()
        client = chromadb.HttpClient(
            host="localhost", port=port, settings=ChromaSettings(anonymized_telemetry=False)
        )
        assert chunks_of(client, "bakery.txt") and chunks_of(client, "ferry.md")
        report = assistant.remove("bakery.txt")
        assert report.removed >= 2
        assert chunks_of(client, "bakery.txt") == {}  # in no collection, builds included
        assert chunks_of(client, "ferry.md")
        # Another qa on the same server sees the removal, and its re-index keeps it removed.
        other = Assistant(served, embeddings=fake_embeddings)
        other.index()
        assert [d.source for d in other.documents()] == ["ferry.md"]
        assert chunks_of(client, "bakery.txt") == {}
        assistant.remove("ferry.md", delete_file=True)
        assert chunks_of(client, "ferry.md") == {} and other.documents() == []
        assert not (settings.seeds_dir / "ferry.md").exists()
