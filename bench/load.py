"""Load test: simulated users chat with a real `qa chat` server over loopback via gradio_client.

Each user replays one conversation from the gold set (its follow-ups depend on its own history)
in its own Gradio session. Reports throughput, latency percentiles, errors, answers that miss
their gold facts, and whether every user got back exactly its own history. Stops by itself.

Usage: python bench/load.py [--users 20] [--gold evals/gold.jsonl] [--out bench/results/load.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from qa.bench import percentile
from qa.gold import GoldItem, load_gold
from qa.scoring import facts_present
from qa.text import contains

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(docs: Path, index: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "QA_SEEDS_DIR": str(docs), "QA_INDEX_DIR": str(index)}
    cmd = [sys.executable, "-m", "qa", "chat", "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("qa chat exited during start-up")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
            return server
        except OSError:
            time.sleep(1)
    server.kill()
    raise RuntimeError("qa chat did not start within 300 s")


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    return " ".join(p.get("text", "") for p in content if isinstance(p, dict))  # type: ignore[union-attr]


def user(url: str, conversation: GoldItem, results: list[dict]) -> None:
    """One simulated user: its own client (session), its conversation's turns in order."""
    from gradio_client import Client

    client = Client(url, verbose=False)
    asked: list[str] = []
    for turn in conversation.turns:
        t0 = time.perf_counter()
        row: dict = {"conversation": conversation.id, "question": turn.question}
        try:
            _, chat, _ = client.predict(turn.question, api_name="/chat")
            asked.append(turn.question)
            answer = _text(chat[-1]["content"])
            own = [_text(m["content"]) for m in chat if m["role"] == "user"]
            row |= {
                "ok": True,
                "own_history": own == asked,
                "correct": facts_present(answer, turn.facts)
                if turn.facts
                else any(contains(answer, a) for a in turn.answers),
            }
        except Exception as err:  # a load test counts failures instead of stopping
            row |= {"ok": False, "error": f"{type(err).__name__}: {err}"}
        row["seconds"] = time.perf_counter() - t0
        results.append(row)


def run(users: int, gold: Path) -> dict:
    conversations = [it for it in load_gold(gold) if it.kind == "turns"]
    tmp = Path(tempfile.mkdtemp(prefix="qa-load-"))
    try:
        shutil.copytree(ROOT / "seeds", tmp / "docs")
        port = free_port()
        server = start_server(tmp / "docs", tmp / "index", port)
        try:
            url = f"http://127.0.0.1:{port}/"
            results: list[dict] = []
            threads = [
                threading.Thread(
                    target=user, args=(url, conversations[i % len(conversations)], results)
                )
                for i in range(users)
            ]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=1800)
            wall = time.perf_counter() - t0
        finally:
            server.terminate()
            server.wait(timeout=30)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    done = [r for r in results if r["ok"]]
    latencies = [r["seconds"] for r in done]
    return {
        "users": users,
        "requests": len(results),
        "errors": len(results) - len(done),
        "wall_s": wall,
        "answers_per_min": 60 * len(done) / wall,
        "latency_s_p50": statistics.median(latencies) if latencies else 0.0,
        "latency_s_p95": percentile(latencies, 95),
        "own_history_rate": sum(r["own_history"] for r in done) / max(1, len(done)),
        "correct_rate": sum(r["correct"] for r in done) / max(1, len(done)),
        "error_samples": [r["error"] for r in results if not r["ok"]][:5],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--gold", type=Path, default=ROOT / "evals/gold.jsonl")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/load.json")
    args = parser.parse_args()
    result = run(args.users, args.gold)
    print("| metric | value |\n|---|---|")
    for key, value in result.items():
        print(f"| {key} | {value:.2f} |" if isinstance(value, float) else f"| {key} | {value} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
