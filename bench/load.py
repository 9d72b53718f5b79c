"""Load test: simulated users chat with a real qa web server over loopback via gradio_client.

Each user replays one conversation from the gold set (its follow-ups depend on its own history)
in its own Gradio session. Reports throughput, latency percentiles, errors, answers that miss
their gold facts, whether every user got back exactly its own history, and the peak memory of
the server's processes. Several variants (a checkout and a command: `qa chat` answers in the
UI process, `qa serve` through its model server) run in alternating rounds, so machine noise
hits them alike. Every run starts from the same index without saved prompt states.

Usage:
    python bench/load.py --users 20 --variant main=/tmp/qa-main:chat \\
        --variant serve1=.:serve:1 --variant serve4=.:serve:4 --rounds 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from qa.bench import percentile
from qa.evaluation.gold import GoldItem, load_gold
from qa.evaluation.scoring import facts_present
from qa.text import contains

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Variant:
    """A qa checkout and how to serve it: ``chat`` or ``serve`` with ``parallel`` sequences."""

    name: str
    root: Path
    command: str
    parallel: int | None

    @classmethod
    def parse(cls, text: str) -> Variant:
        name, _, spec = text.partition("=")
        root, command, *rest = spec.split(":")
        return cls(name, Path(root).resolve(), command, int(rest[0]) if rest else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(variant: Variant, docs: Path, index: Path, port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": str(variant.root),
        "QA_SEEDS_DIR": str(docs),
        "QA_INDEX_DIR": str(index),
    }
    cmd = [sys.executable, "-m", "qa", variant.command, "--host", "127.0.0.1", "--port", str(port)]
    if variant.command == "serve":
        cmd += ["--llm-port", str(free_port())]
    if variant.parallel is not None:
        env["QA_PARALLEL"] = str(variant.parallel)
    server = subprocess.Popen(
        cmd,
        cwd=variant.root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # one process group: the model server child goes with it
    )
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"qa {variant.command} exited during start-up")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
            return server
        except OSError:
            time.sleep(1)
    server.kill()
    raise RuntimeError(f"qa {variant.command} did not start within 900 s")


def tree_peak_rss_mib(pid: int) -> float:
    """The summed peak resident memory (VmHWM) of ``pid`` and its descendants, in MiB."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(
                next(ln for ln in status.splitlines() if ln.startswith("VmHWM")).split()[1]
            )
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, StopIteration):
            continue
    return total / 1024


def stop_server(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


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


def run(variant: Variant, users: int, conversations: list[GoldItem], index: Path) -> dict:
    """One load run of ``variant`` over a copy of ``index``."""
    tmp = Path(tempfile.mkdtemp(prefix="qa-load-"))
    try:
        shutil.copytree(ROOT / "seeds", tmp / "docs")
        shutil.copytree(index, tmp / "index", ignore=shutil.ignore_patterns("kv-states"))
        port = free_port()
        server = start_server(variant, tmp / "docs", tmp / "index", port)
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
                t.join(timeout=3600)
            wall = time.perf_counter() - t0
            rss = tree_peak_rss_mib(server.pid)
        finally:
            stop_server(server)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summarize(variant, users, results, wall, rss)


def summarize(variant: Variant, users: int, results: list[dict], wall: float, rss: float) -> dict:
    done = [r for r in results if r["ok"]]
    latencies = [r["seconds"] for r in done]
    return {
        "variant": variant.name,
        "command": variant.command,
        "parallel": variant.parallel,
        "users": users,
        "requests": len(results),
        "errors": len(results) - len(done),
        "wall_s": wall,
        "answers_per_min": 60 * len(done) / wall,
        "latency_s_p50": statistics.median(latencies) if latencies else 0.0,
        "latency_s_p95": percentile(latencies, 95),
        "own_history_rate": sum(r["own_history"] for r in done) / max(1, len(done)),
        "correct_rate": sum(r["correct"] for r in done) / max(1, len(done)),
        "peak_rss_mib": rss,
        "error_samples": [r["error"] for r in results if not r["ok"]][:5],
    }


def build_index(index: Path) -> None:
    """Index the seed documents once; every run gets a copy."""
    from qa import Assistant, Settings

    Assistant(Settings(seeds_dir=ROOT / "seeds", index_dir=index)).index()


COLUMNS = [
    ("answers_per_min", "answers/min", "{:.1f}"),
    ("latency_s_p50", "wait p50 (s)", "{:.0f}"),
    ("latency_s_p95", "wait p95 (s)", "{:.0f}"),
    ("errors", "errors", "{}"),
    ("own_history_rate", "own history", "{:.2f}"),
    ("correct_rate", "answers right", "{:.2f}"),
    ("peak_rss_mib", "peak RSS (MiB)", "{:.0f}"),
]


def markdown(rows: list[dict]) -> str:
    head = "| variant | round | " + " | ".join(label for _, label, _ in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 2)]
    for r in rows:
        cells = " | ".join(fmt.format(r[key]) for key, _, fmt in COLUMNS)
        lines.append(f"| {r['variant']} | {r['round']} | {cells} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--gold", type=Path, default=ROOT / "evals/gold.jsonl")
    parser.add_argument(
        "--variant",
        action="append",
        type=Variant.parse,
        help="NAME=ROOT:COMMAND[:PARALLEL], e.g. serve4=.:serve:4 (default: this checkout, chat)",
    )
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/load.json")
    args = parser.parse_args()
    variants = args.variant or [Variant("this", ROOT, "chat", None)]
    conversations = [it for it in load_gold(args.gold) if it.kind == "turns"]
    with tempfile.TemporaryDirectory(prefix="qa-load-index-") as tmp:
        build_index(Path(tmp) / "index")
        rows = []
        for r in range(args.rounds):
            for variant in variants:
                row = run(variant, args.users, conversations, Path(tmp) / "index")
                rows.append({"round": r + 1, **row})
                print(markdown(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    print(markdown(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"users": args.users, "runs": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
