"""Several questions at once, in one process: how many answers per minute the local model gives
when N questions arrive together, for each number of parallel sequences (QA_PARALLEL), and how
fast a prompt is read in chunks of each size (QA_PREFILL_CHUNK). Variants are checkouts with a
QA_PARALLEL value; they run in alternating rounds, each in its own process (peak RSS is that
process's).

    python bench/parallel.py --variant main=/tmp/qa-main:1 --variant p1=.:1 --variant p4=.:4 \\
        --questions 12 --rounds 2 --chunks 16,64,128,512
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(args: argparse.Namespace) -> dict:
    """One variant's run (in its own process): warm up, then all questions at once."""
    from qa import Assistant, Settings
    from qa.bench import peak_rss_mib, percentile
    from qa.evaluation.gold import load_gold
    from qa.evaluation.scoring import facts_present

    items = [it for it in load_gold(args.gold) if it.kind == "facts"]
    turns = [it.turns[0] for it in items[: args.questions]]
    assistant = Assistant(Settings(seeds_dir=args.docs, index_dir=args.index))
    assistant.warm_up()
    rows: list[dict] = [{} for _ in turns]
    start = threading.Barrier(len(turns) + 1)

    def ask(i: int) -> None:
        start.wait()
        t0 = time.perf_counter()
        answer = assistant.ask(turns[i].question)
        rows[i] = {
            "seconds": time.perf_counter() - t0,
            "first_token_s": answer.timings.first_token_ms / 1000,
            "correct": facts_present(answer.text, turns[i].facts),
            "abstained": answer.abstained,
        }

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(turns))]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    seconds = [r["seconds"] for r in rows]
    return {
        "questions": len(rows),
        "wall_s": wall,
        "answers_per_min": 60 * len(rows) / wall,
        "latency_s_p50": statistics.median(seconds),
        "latency_s_p95": percentile(seconds, 95),
        "first_token_s_p50": statistics.median(r["first_token_s"] for r in rows),
        "correct_rate": sum(r["correct"] for r in rows) / len(rows),
        "abstained": sum(r["abstained"] for r in rows),
        "peak_rss_mib": peak_rss_mib(),
    }


PREFILL_PROBE = r"""
import json, sys, time
import llama_cpp
from llama_cpp import Llama
path, chunks = sys.argv[1], [int(c) for c in sys.argv[2].split(",")]
llm = Llama(model_path=path, n_ctx=4096, n_threads=2, n_batch=512, verbose=False)
words = ("the river ferry crosses every twenty minutes between the harbour and the old town "
         "while the council debates a new bridge ").split()
tokens = llm.tokenize(" ".join(words[i % len(words)] for i in range(1200)).encode())[:1024]
rates = {}
for chunk in chunks:
    llm.reset()
    llm.n_batch = chunk
    t0 = time.perf_counter()
    llm.eval(tokens)
    rates[chunk] = len(tokens) / (time.perf_counter() - t0)
print(json.dumps(rates))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", action="append", default=[], help="NAME=ROOT:PARALLEL")
    parser.add_argument("--questions", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--gold", type=Path, default=ROOT / "evals/gold.jsonl")
    parser.add_argument("--chunks", default="", help="prompt chunk sizes to time, e.g. 16,64,512")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/parallel.json")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--docs", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--index", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="qa-parallel-") as tmp:
        docs, index = Path(tmp) / "docs", Path(tmp) / "index"
        shutil.copytree(ROOT / "seeds", docs)
        from qa import Assistant, Settings

        Assistant(Settings(seeds_dir=docs, index_dir=index)).index()
        for r in range(args.rounds):
            for spec in args.variant:
                name, _, rest = spec.partition("=")
                root, parallel = rest.rsplit(":", 1)
                own = Path(tmp) / f"index-{name}"
                if not own.exists():
                    shutil.copytree(index, own)
                env = {**os.environ, "PYTHONPATH": str(Path(root).resolve())}
                env["QA_PARALLEL"] = parallel
                cmd = [sys.executable, __file__, "--child", "--docs", str(docs)]
                cmd += ["--index", str(own), "--questions", str(args.questions)]
                cmd += ["--gold", str(args.gold.resolve())]
                out = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True)
                if out.returncode:
                    raise RuntimeError(f"{name} failed:\n{out.stderr[-3000:]}")
                run = {"variant": name, "parallel": int(parallel), "round": r + 1}
                run |= json.loads(out.stdout.strip().splitlines()[-1])
                runs.append(run)
                print(json.dumps(run), file=sys.stderr, flush=True)
    prefill = {}
    if args.chunks:
        from qa.config import Settings
        from qa.llm.models import gguf_path

        probe = [sys.executable, "-c", PREFILL_PROBE, str(gguf_path(Settings())), args.chunks]
        prefill = json.loads(subprocess.run(probe, capture_output=True, text=True).stdout)
    print("| variant | answers/min | wait p50 (s) | wait p95 (s) | first token p50 (s) | right |")
    print("|---|---|---|---|---|---|")
    for r in runs:
        print(
            f"| {r['variant']} (round {r['round']}) | {r['answers_per_min']:.1f} | "
            f"{r['latency_s_p50']:.1f} | {r['latency_s_p95']:.1f} | "
            f"{r['first_token_s_p50']:.1f} | {r['correct_rate']:.2f} |"
        )
    if prefill:
        print("\n| prompt chunk (tokens) | prompt tok/s |\n|---|---|")
        for chunk, rate in prefill.items():
            print(f"| {chunk} | {rate:.1f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": runs, "prefill_tok_s": prefill}, indent=2) + "\n")


if __name__ == "__main__":
    main()
