"""Launch -> first answer, as a new user meets it: start `qa chat`, ask as soon as the page
answers, time until the answer is complete. Cold: no saved prompt state; warm: the state the
previous launch saved. Variants (checkouts) run in alternating rounds.

Usage:
    python bench/launch.py --variant main=/tmp/qa-main --variant speed=. --rounds 3
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

from load import ROOT, Variant, free_port, start_server, stop_server, tree_peak_rss_mib

QUESTION = "What is this document about?"


def launch_once(variant: Variant, docs: Path, index: Path) -> dict:
    """Seconds from process start to the page, and to the first answer."""
    from gradio_client import Client

    port = free_port()
    t0 = time.perf_counter()
    server = start_server(variant, docs, index, port)
    try:
        page = time.perf_counter() - t0
        _, chat, _ = Client(f"http://127.0.0.1:{port}/", verbose=False).predict(
            QUESTION, api_name="/chat"
        )
        answered = time.perf_counter() - t0
        rss = tree_peak_rss_mib(server.pid)
    finally:
        stop_server(server)
    return {"page_s": page, "answer_s": answered, "peak_rss_mib": rss, "answer": str(chat[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", required=True, help="NAME=ROOT")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/launch.json")
    args = parser.parse_args()
    variants = [Variant.parse(f"{v}:chat") for v in args.variant]
    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="qa-launch-") as tmp:
        docs = Path(tmp) / "docs"
        shutil.copytree(ROOT / "seeds", docs)
        from qa import Assistant, Settings

        Assistant(Settings(seeds_dir=docs, index_dir=Path(tmp) / "index")).index()
        for r in range(args.rounds):
            for variant in variants:
                index = Path(tmp) / f"index-{variant.name}"
                shutil.rmtree(index, ignore_errors=True)
                shutil.copytree(Path(tmp) / "index", index)  # no saved state: cold
                for state in ("cold", "warm"):  # warm: what the cold launch saved
                    run = {"variant": variant.name, "state": state, "round": r + 1}
                    run |= launch_once(variant, docs, index)
                    runs.append(run)
                    print(json.dumps(run), file=sys.stderr, flush=True)
    table = {}
    for variant in variants:
        for state in ("cold", "warm"):
            mine = [x for x in runs if x["variant"] == variant.name and x["state"] == state]
            table[f"{variant.name} {state}"] = {
                k: statistics.median(x[k] for x in mine) for k in ("page_s", "answer_s")
            }
    print("| variant | launch -> page (s) | launch -> first answer (s) |\n|---|---|---|")
    for name, m in table.items():
        print(f"| {name} | {m['page_s']:.1f} | {m['answer_s']:.1f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"question": QUESTION, "runs": runs, "median": table}, indent=2))


if __name__ == "__main__":
    main()
