from __future__ import annotations

from pathlib import Path

from langchain_core.language_models import FakeListChatModel

from qa import Assistant, Settings, bench
from qa.documents.ingest import load_chunks


def test_synthetic_corpus_has_about_one_chunk_per_paragraph(tmp_path: Path) -> None:
    vocab = bench.vocabulary(Settings(embedding_model=str(tmp_path)))  # no vocab.txt: pseudo-words
    queries = bench.synthetic_corpus(tmp_path, 1200, vocab)
    chunks = [
        c for c in load_chunks(tmp_path, chunk_size=500, chunk_overlap=100, max_bytes=10**8) if c
    ]
    assert 1200 <= len(chunks) <= 1300
    assert 1 <= len(queries) <= 20 and all(len(q.split()) == 6 for q in queries)


def test_bench_run_reports_every_section(settings, docs, fake_embeddings, monkeypatch) -> None:
    reply = "Answer: about 400 loaves\nQuote: The shop sells about 400 loaves a day."

    def assistant(s):
        return Assistant(s, embeddings=fake_embeddings, llm=FakeListChatModel(responses=[reply]))

    monkeypatch.setattr(bench, "Assistant", assistant)
    result = bench.run(settings, ["How many loaves?", "When?"], docs, [60])
    assert result["answers"]["questions"] == 2
    assert result["answers"]["total_ms_p95"] >= result["answers"]["total_ms_p50"] > 0
    assert result["index_build"]["chunks"] >= 2
    (row,) = result["scaling"]
    assert row["chunks"] >= 60 and row["query_ms_p50"] > 0
    assert result["serving_peak_rss_mib"] > 0
    assert "| first_token_ms_p50 |" in bench.markdown(result)
    # Where the time went, per answer shape (#35 item 2): "When?" and "How many loaves?" are
    # both short answers here.
    (short,) = result["answers"]["stages"]
    assert short["shape"] == "short" and short["answers"] == 2
    assert short["total_ms"] >= short["first_token_ms"] > 0
    assert short["total_ms"] >= short["decide_ms"] > 0
    assert "| shape | answers | retrieve_ms |" in bench.markdown(result)


def test_percentile_uses_nearest_rank() -> None:
    assert bench.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert bench.percentile([5.0, 1.0], 95) == 5.0
    assert bench.percentile([], 95) == 0.0
