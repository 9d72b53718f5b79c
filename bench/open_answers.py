"""Open answers: their speed next to short answers, measured side by side in one run, and what
document summaries cost.

1. Short (evals/gold.jsonl) and open (evals/open.jsonl: yes/no, list, open, overview)
   questions are asked alternately on the seed documents, in full-context mode (the default
   for a small corpus) and in retrieval mode (``full_context_chars=0``, top-k passages).
2. The SQuAD articles are indexed together and each gets its summary, timed one by one.

Prints markdown tables and writes JSON. Nothing is asserted: compare the ratios.

Usage: python bench/open_answers.py [--questions 10] [--squad ../shared/datasets/squad2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from qa.assistant import Assistant
from qa.bench import peak_rss_mib
from qa.config import Settings
from qa.gold import load_gold
from qa.ingest import Chunk

ROOT = Path(__file__).resolve().parents[1]


def questions(path: str, n: int, open_only: bool) -> list[str]:
    """The first ``n`` answerable single questions of a gold file (non-short ones if asked)."""
    out = []
    for item in load_gold(ROOT / path):
        turn = item.turns[0]
        wanted = (turn.shape or "short") != "short" or turn.yes is not None
        if item.kind not in ("turns", "unanswerable") and wanted == open_only:
            out.append(turn.question)
    return out[:n]


def side_by_side(assistant: Assistant, short: list[str], open_: list[str]) -> dict:
    """Ask short and open questions alternately; first-token and total medians, in ms."""
    assistant.ask(short[0])  # models loaded, prompt prefix cached, as in a running server
    times: dict[str, dict[str, list[float]]] = {
        k: {"first": [], "total": [], "sentences": []} for k in ("short", "open")
    }
    for s, o in zip(short, open_, strict=False):
        for kind, q in (("short", s), ("open", o)):
            a = assistant.ask(q)
            times[kind]["first"].append(a.timings.first_token_ms)
            times[kind]["total"].append(a.timings.total_ms)
            times[kind]["sentences"].append(len(a.sentences))
    return {
        kind: {
            "questions": len(t["total"]),
            "first_token_ms_p50": statistics.median(t["first"]),
            "total_ms_p50": statistics.median(t["total"]),
            "total_ms_max": max(t["total"]),
            "sentences_mean": statistics.mean(t["sentences"]),
        }
        for kind, t in times.items()
    }


def summary_costs(base: Assistant, squad: Path, work: Path) -> dict:
    """Index every SQuAD article together, then time each document's summary."""
    docs = work / "docs"
    docs.mkdir()
    for f in sorted(squad.glob("*.txt")):
        shutil.copy(f, docs / f.name)
    corpus = base.for_documents(docs, work / "index")
    t0 = time.perf_counter()
    report = corpus.index()
    index_s = time.perf_counter() - t0
    by_source: dict[str, list[Chunk]] = {}
    for c in corpus.store.all_chunks():
        by_source.setdefault(c.source, []).append(c)
    per_doc = {}
    for source in sorted(by_source):
        t0 = time.perf_counter()
        summary = corpus.summaries.get(by_source, [source])[source]
        per_doc[source] = {"seconds": time.perf_counter() - t0, "sentences": len(summary)}
    t0 = time.perf_counter()
    corpus.summaries.get(by_source, sorted(by_source))  # all cached: reading costs nothing
    cached_s = time.perf_counter() - t0
    seconds = [d["seconds"] for d in per_doc.values()]
    return {
        "documents": len(per_doc),
        "chunks": report.added,
        "index_s": index_s,
        "summary_s_p50": statistics.median(seconds),
        "summary_s_max": max(seconds),
        "summary_s_total": sum(seconds),
        "summary_sentences_mean": statistics.mean(d["sentences"] for d in per_doc.values()),
        "cached_read_s": cached_s,
        "per_document": per_doc,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=10, help="questions per kind and mode")
    parser.add_argument("--squad", type=Path, default=ROOT.parent / "shared/datasets/squad2")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/open-answers.json")
    args = parser.parse_args(argv)
    short = questions("evals/gold.jsonl", args.questions, open_only=False)
    open_ = questions("evals/open.jsonl", args.questions, open_only=True)
    result: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        seed = Assistant(Settings()).for_documents(ROOT / "seeds", work / "seed-index")
        seed.index()
        result["full_context"] = side_by_side(seed, short, open_)
        retrieval = Assistant(
            seed.settings.model_copy(update={"full_context_chars": 0}),
            embeddings=seed.embeddings,
            llm=seed.llm,
        )
        result["retrieval"] = side_by_side(retrieval, short, open_)
        if args.squad.is_dir():
            result["summaries"] = summary_costs(seed, args.squad, work)
    result["peak_rss_mib"] = peak_rss_mib()
    print("| mode | kind | first token p50 | total p50 | total max | sentences |")
    print("|---|---|---|---|---|---|")
    for mode in ("full_context", "retrieval"):
        for kind, r in result[mode].items():
            print(
                f"| {mode} | {kind} | {r['first_token_ms_p50'] / 1000:.2f} s | "
                f"{r['total_ms_p50'] / 1000:.2f} s | {r['total_ms_max'] / 1000:.2f} s | "
                f"{r['sentences_mean']:.1f} |"
            )
    if s := result.get("summaries"):
        print(
            f"\nSummaries: {s['documents']} documents ({s['chunks']} chunks, indexed in "
            f"{s['index_s']:.0f} s): {s['summary_s_p50']:.1f} s per document (median, max "
            f"{s['summary_s_max']:.1f} s), {s['summary_s_total']:.0f} s in all; cached read "
            f"{s['cached_read_s'] * 1000:.0f} ms."
        )
    print(f"Peak RSS: {result['peak_rss_mib']:.0f} MiB")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
