"""Retrieval sweep: hit@k and MRR of chunk size / overlap / retrieval mode, without the LLM.

A supporting chunk is one containing a gold answer (SQuAD) or all gold facts (seed gold set).
Usage: python bench/retrieval.py [--out bench/results/retrieval.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from qa import Assistant, Settings
from qa.evaluation.gold import load_gold
from qa.evaluation.scoring import facts_present
from qa.text import contains

ROOT = Path(__file__).resolve().parents[1]
DATASETS = {
    "seed": (ROOT / "evals/gold.jsonl", ROOT / "seeds"),
    "Normans": (ROOT / "evals/squad2/Normans.jsonl", ROOT / "evals/squad2/docs"),
    "Steam_engine": (ROOT / "evals/squad2/Steam_engine.jsonl", ROOT / "evals/squad2/docs"),
}
CONFIGS = [
    {"chunk_size": 500, "chunk_overlap": 100, "retrieval": "dense"},
    {"chunk_size": 500, "chunk_overlap": 100, "retrieval": "hybrid"},
    {"chunk_size": 300, "chunk_overlap": 60, "retrieval": "hybrid"},
    {"chunk_size": 800, "chunk_overlap": 150, "retrieval": "hybrid"},
]
KS = (1, 3, 4, 5)


def questions(gold: Path) -> list[tuple[str, list[str], list[list[str]]]]:
    """(question, answers, facts) for every answerable first turn."""
    out = []
    for item in load_gold(gold):
        turn = item.turns[0]
        if not turn.unanswerable:
            out.append((turn.question, turn.answers, turn.facts))
    return out


def supports(text: str, answers: list[str], facts: list[list[str]]) -> bool:
    return any(contains(text, a) for a in answers) if answers else facts_present(text, facts)


def measure(assistant: Assistant, qs: list, depth: int = 10) -> dict[str, float]:
    ranks, times = [], []
    for question, answers, facts in qs:
        t0 = time.perf_counter()
        hits = assistant.retriever.search(question, depth)
        times.append((time.perf_counter() - t0) * 1000)
        found = [i for i, h in enumerate(hits, 1) if supports(h.chunk.text, answers, facts)]
        ranks.append(found[0] if found else None)
    row = {f"hit@{k}": sum(r is not None and r <= k for r in ranks) / len(ranks) for k in KS}
    row["mrr@10"] = sum(1 / r for r in ranks if r) / len(ranks)
    row["retrieve_ms_p50"] = statistics.median(times)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/retrieval.json")
    args = parser.parse_args()
    rows = []
    embeddings = None
    for cfg in CONFIGS:
        for name, (gold, docs) in DATASETS.items():
            tmp = Path(tempfile.mkdtemp(prefix="qa-bench-"))
            try:
                src = tmp / "docs"
                src.mkdir()
                for f in docs.iterdir():
                    if name == "seed" or f.stem == name:
                        shutil.copy(f, src / f.name)
                settings = Settings(seeds_dir=src, index_dir=tmp / "index", **cfg)
                assistant = Assistant(settings, embeddings=embeddings)
                embeddings = assistant.embeddings
                chunks = assistant.index().added
                row = {
                    "dataset": name,
                    **cfg,
                    "chunks": chunks,
                    **measure(assistant, questions(gold)),
                }
                rows.append(row)
                print(json.dumps(row))
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
