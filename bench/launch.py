"""Launch -> page -> app -> first answer, as a new user meets it: start `qa chat` and time
from the process start until its URL first answers a browser with 200 (the page, #35 item 3:
a progress page if the app is not there yet), until the URL serves the app itself (Gradio's
page), and until the answer to a question asked as soon as the app is there is complete. Cold:
no saved prompt state; warm: the state the previous launch saved. Variants (checkouts) run in
alternating rounds, in alternating order.

Usage:
    python bench/launch.py --variant main=/tmp/qa-main --variant speed=. --rounds 3
    python bench/launch.py --variant before=/tmp/qa-main --variant after=. --rounds 5 \\
        --no-answer --out bench/results/launch-35.json   # page and app only: no model runs
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
import time
import urllib.request
from pathlib import Path

from load import ROOT, Variant, free_port, stop_server, tree_peak_rss_mib

QUESTION = "What is this document about?"
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
"""What a browser sends for a page: qa shows its progress page only to requests that take HTML."""
APP_MARK = "gradio_config"  # in Gradio's page, not in the progress page


def spawn(variant: Variant, docs: Path, index: Path, port: int) -> subprocess.Popen:
    """``qa chat`` of ``variant``, as ``load.start_server`` starts it, without waiting."""
    env = {
        **os.environ,
        "PYTHONPATH": str(variant.root),
        "QA_SEEDS_DIR": str(docs),
        "QA_INDEX_DIR": str(index),
    }
    cmd = [sys.executable, "-m", "qa", "chat", "--host", "127.0.0.1", "--port", str(port)]
    return subprocess.Popen(
        cmd,
        cwd=variant.root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def poll(server: subprocess.Popen, url: str, done, every: float, limit: float = 900) -> None:
    """Ask ``url`` as a browser does every ``every`` seconds until ``done(body)``; raises if
    the server exits or ``limit`` seconds pass."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("qa chat exited during start-up")
        try:
            request = urllib.request.Request(url, headers=BROWSER)
            with urllib.request.urlopen(request, timeout=5) as reply:
                if reply.status == 200 and done(reply.read().decode("utf-8", "replace")):
                    return
        except OSError:
            pass
        time.sleep(every)
    raise RuntimeError(f"{url} did not answer within {limit:.0f} s")


def launch_once(variant: Variant, docs: Path, index: Path, *, answer: bool = True) -> dict:
    """Seconds from process start to the page (first 200), to the app, to the first answer."""
    from gradio_client import Client

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    t0 = time.perf_counter()
    server = spawn(variant, docs, index, port)
    try:
        poll(server, url, lambda body: True, every=0.05)
        page = time.perf_counter() - t0
        # As often as the progress page itself asks: more would tax the server being timed.
        poll(server, url, lambda body: APP_MARK in body, every=0.4)
        app = time.perf_counter() - t0
        run = {"page_s": page, "app_s": app}
        if answer:
            _, chat, _ = Client(url, verbose=False).predict(QUESTION, api_name="/chat")
            run |= {"answer_s": time.perf_counter() - t0, "answer": str(chat[-1])}
        run["peak_rss_mib"] = tree_peak_rss_mib(server.pid)
    finally:
        stop_server(server)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", required=True, help="NAME=ROOT")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--no-answer",
        dest="answer",
        action="store_false",
        help="Stop at the app: time the page and the app only (no model runs).",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/launch.json")
    args = parser.parse_args()
    variants = [Variant.parse(f"{v}:chat") for v in args.variant]
    runs: list[dict] = []
    states = ("cold", "warm") if args.answer else ("start",)
    keys = ("page_s", "app_s", "answer_s") if args.answer else ("page_s", "app_s")
    with tempfile.TemporaryDirectory(prefix="qa-launch-") as tmp:
        docs = Path(tmp) / "docs"
        shutil.copytree(ROOT / "seeds", docs)
        from qa import Assistant, Settings

        Assistant(Settings(seeds_dir=docs, index_dir=Path(tmp) / "index")).index()
        for r in range(args.rounds):
            # Alternate the order too: a load that grows or shrinks then hits both alike.
            for variant in variants if r % 2 == 0 else variants[::-1]:
                index = Path(tmp) / f"index-{variant.name}"
                shutil.rmtree(index, ignore_errors=True)
                shutil.copytree(Path(tmp) / "index", index)  # no saved state: cold
                for state in states:  # warm: what the cold launch saved
                    run = {"variant": variant.name, "state": state, "round": r + 1}
                    run |= launch_once(variant, docs, index, answer=args.answer)
                    runs.append(run)
                    print(json.dumps(run), file=sys.stderr, flush=True)
    table = {}
    for variant in variants:
        for state in states:
            mine = [x for x in runs if x["variant"] == variant.name and x["state"] == state]
            table[f"{variant.name} {state}"] = {
                k: statistics.median(x[k] for x in mine) for k in keys
            }
    heads = {"page_s": "page (first 200)", "app_s": "app", "answer_s": "first answer"}
    print("| variant | " + " | ".join(f"launch -> {heads[k]} (s)" for k in keys) + " |")
    print("|---|" + "---|" * len(keys))
    for name, m in table.items():
        print(f"| {name} | " + " | ".join(f"{m[k]:.2f}" for k in keys) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {"question": QUESTION if args.answer else None, "runs": runs, "median": table}
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
