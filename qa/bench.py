"""Benchmarks: answer latency, retrieval and indexing speed, scaling and memory.

Everything goes through :class:`~qa.Assistant`, as a user's process would. These are
measurements, not tests: machines are noisy, so nothing here asserts a time.
"""

from __future__ import annotations

import random
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qa.answer import Answer
from qa.assistant import Assistant
from qa.config import Settings

Progress = Callable[[str], None]


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of ``values``; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def answer_latency(assistant: Assistant, questions: list[str]) -> dict[str, float]:
    """Ask each question once (after one warm-up question that is not counted) and summarize
    first-token and total latency and the LLM's prompt/generation throughput."""
    assistant.ask(questions[0])  # loads the models and fills the prompt cache, as a server would
    answers = [assistant.ask(q) for q in questions]
    runs = [a.timings for a in answers]
    evaluated = sum(t.prompt_eval_tokens for t in runs)
    generated = sum(t.generated_tokens for t in runs)
    eval_s = sum(t.prompt_eval_ms for t in runs) / 1000
    gen_s = sum(t.generation_ms for t in runs) / 1000
    first = [t.first_token_ms for t in runs]
    total = [t.total_ms for t in runs]
    return {
        "questions": len(runs),
        "first_token_ms_p50": statistics.median(first),
        "first_token_ms_p95": percentile(first, 95),
        "total_ms_p50": statistics.median(total),
        "total_ms_p95": percentile(total, 95),
        "retrieve_ms_p50": statistics.median(t.retrieve_ms for t in runs),
        "prompt_tokens_mean": statistics.mean(t.prompt_tokens for t in runs),
        "prompt_eval_tokens_mean": evaluated / len(runs),
        "generated_tokens_mean": generated / len(runs),
        "prompt_tok_per_s": evaluated / eval_s if eval_s else 0.0,
        "generation_tok_per_s": generated / gen_s if gen_s else 0.0,
        "stages": stages(answers),
    }


STAGES = (
    "retrieve_ms",
    "prompt_tokens",
    "prompt_eval_tokens",
    "prompt_eval_ms",
    "first_token_ms",
    "generation_ms",
    "decide_ms",
    "total_ms",
)
"""Where an answer's time goes, in order (``qa.answer.Timings``): retrieval (with routing),
the prompt read (tokens in it, tokens computed and their time), the first token, the rest of
the generation, the decision after it (checks and any extra pass) and the whole answer."""


def stages(answers: list[Answer]) -> list[dict[str, Any]]:
    """The median of each of ``STAGES`` per answer shape (and how many answers had it)."""
    shapes: dict[str, list[Answer]] = {}
    for a in answers:
        shapes.setdefault(a.shape or "short", []).append(a)
    return [
        {"shape": shape, "answers": len(group)}
        | {k: statistics.median(getattr(a.timings, k) for a in group) for k in STAGES}
        for shape, group in sorted(shapes.items())
    ]


def index_build(assistant: Assistant, docs: Path) -> dict[str, float]:
    """Time indexing ``docs`` from scratch into a temporary index (models already loaded)."""
    with tempfile.TemporaryDirectory(prefix="qa-bench-") as tmp:
        fresh = assistant.for_documents(docs, Path(tmp) / "index")
        report = fresh.index()
    return {"chunks": report.added, "seconds": report.seconds}


_SYLLABLES = "ka lo mi ne ru sa ti vo ba de fi gu ho ja ke lu ma no pi qu re so tu va we xi yo ze"


def vocabulary(settings: Settings, size: int = 20_000, seed: int = 0) -> list[str]:
    """Whole words from the embedding model's own tokenizer vocabulary, so synthetic text costs
    what real prose costs to embed (one token per word); pseudo-words if there is none."""
    from qa.documents.embeddings import embedding_model_path

    vocab_file = Path(embedding_model_path(settings.embedding_model)) / "vocab.txt"
    if vocab_file.is_file():
        words = [w for w in vocab_file.read_text().split() if w.isalpha() and len(w) > 2]
        if len(words) > 1000:
            return words
    rng = random.Random(seed)
    syllables = _SYLLABLES.split()
    return ["".join(rng.choices(syllables, k=rng.randint(2, 4))) for _ in range(size)]


def synthetic_corpus(folder: Path, chunks: int, vocab: list[str], seed: int = 0) -> list[str]:
    """Write ~``chunks`` paragraphs of generated text (one chunk each at the default chunk size)
    into files in ``folder``; return a few queries built from words of random paragraphs."""
    rng = random.Random(seed)
    queries: list[str] = []
    per_file = 500
    for start in range(0, chunks, per_file):
        paragraphs = []
        for _ in range(min(per_file, chunks - start)):
            words = rng.choices(vocab, k=55)
            paragraphs.append(" ".join(words).capitalize() + ".")
            if rng.random() < 20 / chunks:
                queries.append(" ".join(rng.sample(words, 6)))
        (folder / f"synthetic_{start // per_file:05d}.txt").write_text("\n\n".join(paragraphs))
    return queries[:20] or [" ".join(rng.choices(vocab, k=6))]


def scaling(assistant: Assistant, sizes: list[int], progress: Progress) -> list[dict[str, Any]]:
    """Ingestion throughput and query latency on synthetic corpora of ``sizes`` chunks."""
    rows = []
    vocab = vocabulary(assistant.settings)
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="qa-bench-") as name:
            tmp = Path(name)
            (tmp / "docs").mkdir()
            queries = synthetic_corpus(tmp / "docs", size, vocab)
            progress(f"indexing {size} synthetic chunks")
            fresh = assistant.for_documents(tmp / "docs", tmp / "index")
            report = fresh.index()
            t0 = time.perf_counter()
            fresh.retrieve(queries[0])  # builds the in-memory BM25 index
            first_ms = (time.perf_counter() - t0) * 1000
            times = []
            for q in queries:
                t0 = time.perf_counter()
                fresh.retrieve(q)
                times.append((time.perf_counter() - t0) * 1000)
        rows.append(
            {
                "chunks": report.added,
                "index_seconds": report.seconds,
                "chunks_per_s": report.added / report.seconds,
                "first_query_ms": first_ms,
                "query_ms_p50": statistics.median(times),
                "query_ms_p95": percentile(times, 95),
            }
        )
    return rows


def run(
    settings: Settings,
    questions: list[str],
    docs: Path,
    sizes: list[int],
    progress: Progress = lambda _: None,
) -> dict[str, Any]:
    """The whole benchmark for one configuration."""
    assistant = Assistant(settings)
    progress("indexing the documents")
    assistant.index()
    progress(f"answering {len(questions)} questions")
    result: dict[str, Any] = {"answers": answer_latency(assistant, questions)}
    result["serving_peak_rss_mib"] = peak_rss_mib()
    progress("timing retrieval and index build")
    result["index_build"] = index_build(assistant, docs)
    result["scaling"] = scaling(assistant, sizes, progress)
    result["config"] = {
        k: str(v) for k, v in settings.model_dump().items() if k not in {"cache_dir"}
    }
    return result


def markdown(result: dict[str, Any]) -> str:
    """The benchmark as markdown tables."""
    a = dict(result["answers"])
    by_shape = a.pop("stages", [])
    lines = [
        "| metric | value |",
        "|---|---|",
        *(f"| {k} | {_fmt(v)} |" for k, v in a.items()),
        f"| serving_peak_rss_mib | {result['serving_peak_rss_mib']:.0f} |",
        f"| index_build (seed docs) | {result['index_build']['chunks']} chunks in "
        f"{result['index_build']['seconds']:.2f} s |",
    ]
    if by_shape:
        keys = ["shape", "answers", *STAGES]
        lines += ["", "Median per answer shape (ms, tokens):", ""]
        lines += ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        lines += ["| " + " | ".join(_fmt(r[k]) for k in keys) + " |" for r in by_shape]
    if result["scaling"]:
        keys = list(result["scaling"][0])
        lines += ["", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        lines += ["| " + " | ".join(_fmt(r[k]) for k in keys) + " |" for r in result["scaling"]]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, float) else str(value)
