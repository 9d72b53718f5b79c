"""Load test of the HTTP API: simulated clients chat with a real `qa api` server over loopback.

The API's sibling of ``bench/load.py`` (which drives the browser UI through gradio_client),
with the same workload so the numbers sit side by side: each client replays one conversation of
the gold set (3 turns, follow-ups that need the client's own history, sent as OpenAI messages)
at once with the others. Reports throughput, the whole wait of each request (p50/p95), the part
of it spent in the model's line (``qa.timings.queued_ms``), 429s (a client then waits its
``Retry-After`` and tries again, up to 5 times), errors, answers that miss their gold facts, and
the server's peak memory. Bounded: loopback only, ``--users`` clients, ``--deadline`` seconds.

Usage:
    python bench/load_api.py --users 20             # 3 turns each, as bench/load.py
    python bench/load_api.py --users 20 --turns 1   # each client's first question only
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from load import build_index, free_port, stop_server, tree_peak_rss_mib

from qa.bench import percentile
from qa.evaluation.gold import GoldItem, load_gold
from qa.evaluation.scoring import facts_present
from qa.text import contains

ROOT = Path(__file__).resolve().parents[1]
RETRIES = 5


def start_api(
    docs: Path, index: Path, port: int, max_queue: int, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """`qa api` over ``docs`` and ``index`` on a loopback ``port``, with ``env`` added (e.g.
    QA_WORKSPACES_DIR, bench/workspaces.py), once it reports ready."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "QA_SEEDS_DIR": str(docs),
        "QA_INDEX_DIR": str(index),
        "QA_API_MAX_QUEUE": str(max_queue),
        **(env or {}),
    }
    env.pop("QA_API_KEYS_FILE", None)  # loopback, no keys
    cmd = [sys.executable, "-m", "qa", "api", "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("qa api exited during start-up")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()["ready"]:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(1)
    os.killpg(server.pid, signal.SIGKILL)
    raise RuntimeError("qa api was not ready within 900 s")


def client(
    url: str, conversation: GoldItem, results: list[dict], deadline: float, turns: int
) -> None:
    """One simulated client: its conversation's first ``turns`` turns in order, its own message
    history; no new question after ``deadline``."""
    messages: list[dict[str, str]] = []
    with httpx.Client(timeout=max(1.0, deadline - time.monotonic())) as http:
        for turn in conversation.turns[:turns]:
            if time.monotonic() > deadline:
                return
            t0 = time.perf_counter()
            row: dict = {"conversation": conversation.id, "question": turn.question, "busy": 0}
            asked = [*messages, {"role": "user", "content": turn.question}]
            body = {"model": "qa", "messages": asked}
            try:
                for _ in range(RETRIES + 1):
                    r = http.post(f"{url}/v1/chat/completions", json=body)
                    if r.status_code != 429:
                        break
                    row["busy"] += 1
                    time.sleep(float(r.headers.get("Retry-After", "1")))
                r.raise_for_status()
                reply = r.json()
                answer = reply["choices"][0]["message"]["content"]
                messages = [*asked, {"role": "assistant", "content": answer}]
                row |= {
                    "ok": True,
                    "queued_s": reply["qa"]["timings"]["queued_ms"] / 1000,
                    "correct": facts_present(answer, turn.facts)
                    if turn.facts
                    else any(contains(answer, a) for a in turn.answers),
                }
            except Exception as err:  # a load test counts failures instead of stopping
                row |= {"ok": False, "error": f"{type(err).__name__}: {err}"}
            row["seconds"] = time.perf_counter() - t0
            results.append(row)
            print(f"{len(results)} done ({row['seconds']:.0f} s)", file=sys.stderr, flush=True)


def run(users: int, conversations: list[GoldItem], index: Path, args: argparse.Namespace) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="qa-load-api-"))
    try:
        shutil.copytree(ROOT / "seeds", tmp / "docs")
        shutil.copytree(index, tmp / "index", ignore=shutil.ignore_patterns("kv-states"))
        port = free_port()
        server = start_api(tmp / "docs", tmp / "index", port, args.max_queue)
        try:
            url = f"http://127.0.0.1:{port}"
            results: list[dict] = []
            t0 = time.perf_counter()
            deadline = time.monotonic() + args.deadline
            threads = [
                threading.Thread(
                    target=client,
                    args=(
                        url,
                        conversations[i % len(conversations)],
                        results,
                        deadline,
                        args.turns,
                    ),
                )
                for i in range(users)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=args.deadline + 60)
            wall = time.perf_counter() - t0
            rss = tree_peak_rss_mib(server.pid)
        finally:
            stop_server(server)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    done = [r for r in results if r["ok"]]
    latencies = [r["seconds"] for r in done]
    queued = [r["queued_s"] for r in done]
    return {
        "variant": "api",
        "users": users,
        "turns": args.turns,
        "max_queue": args.max_queue,
        "unfinished": args.users * args.turns - len(results),
        "requests": len(results),
        "errors": len(results) - len(done),
        "refused_429": sum(r["busy"] for r in results),
        "wall_s": wall,
        "answers_per_min": 60 * len(done) / wall,
        "latency_s_p50": statistics.median(latencies) if latencies else 0.0,
        "latency_s_p95": percentile(latencies, 95),
        "queued_s_p50": statistics.median(queued) if queued else 0.0,
        "queued_s_p95": percentile(queued, 95),
        "correct_rate": sum(r["correct"] for r in done) / max(1, len(done)),
        "peak_rss_mib": rss,
        "error_samples": [r["error"] for r in results if not r["ok"]][:5],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--gold", type=Path, default=ROOT / "evals/gold.jsonl")
    parser.add_argument("--max-queue", type=int, default=32, help="QA_API_MAX_QUEUE")
    parser.add_argument("--turns", type=int, default=3, help="turns of each conversation asked")
    parser.add_argument(
        "--deadline", type=float, default=1200, help="seconds after which no question is asked"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/load_api.json")
    args = parser.parse_args()
    conversations = [it for it in load_gold(args.gold) if it.kind == "turns"]
    with tempfile.TemporaryDirectory(prefix="qa-load-index-") as tmp:
        build_index(Path(tmp) / "index")
        row = run(args.users, conversations, Path(tmp) / "index", args)
    print(
        f"| api | {row['answers_per_min']:.1f} | {row['latency_s_p50']:.0f} s | "
        f"{row['latency_s_p95']:.0f} s | {row['queued_s_p50']:.0f} s | {row['errors']} | "
        f"{row['refused_429']} | {row['correct_rate']:.2f} | {row['peak_rss_mib']:,.0f} MiB |"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"users": args.users, "runs": [row]}, indent=2) + "\n")


if __name__ == "__main__":
    main()
