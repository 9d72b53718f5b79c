"""What batching changes in the answer decision: the same questions answered by a checkout one
at a time and by this one with N sequences decoded together, compared answer by answer (the
text, the learned P(right), shown or withheld).

Decoding several sequences in one batch changes the order of floating-point sums inside
llama.cpp's kernels, so hidden states and probabilities move by rounding noise; this measures
how much that moves the decision.

    python bench/decision_ab.py --variant main=/tmp/qa-main:1 --variant alone=.:1 \\
        --variant batched=.:4 --questions 30
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(args: argparse.Namespace) -> list[dict]:
    """Answer the questions, ``QA_PARALLEL`` at a time, and report each decision."""
    from qa import Assistant, Settings
    from qa.gold import load_gold

    settings = Settings(seeds_dir=args.docs, index_dir=args.index)
    items = [it for it in load_gold(args.gold) if it.kind != "turns"][: args.questions]
    assistant = Assistant(settings)
    assistant.warm_up()
    rows: list[dict] = [{} for _ in items]

    def ask(i: int) -> None:
        answer = assistant.ask(items[i].turns[0].question)
        rows[i] = {
            "id": items[i].id,
            "text": answer.text,
            "abstained": answer.abstained,
            "answerability": answer.answerability,
        }

    parallel = int(os.environ.get("QA_PARALLEL", "1"))  # older checkouts have no such setting
    for start in range(0, len(items), parallel):
        group = range(start, min(start + parallel, len(items)))
        threads = [threading.Thread(target=ask, args=(i,)) for i in group]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return rows


def compare(a: list[dict], b: list[dict]) -> dict:
    """How often two runs agree, and how far their P(right) lie apart."""
    pairs = list(zip(a, b, strict=True))
    deltas = [
        abs(x["answerability"] - y["answerability"])
        for x, y in pairs
        if x["answerability"] is not None and y["answerability"] is not None
    ]
    return {
        "questions": len(pairs),
        "same_text": sum(x["text"] == y["text"] for x, y in pairs) / len(pairs),
        "same_decision": sum(x["abstained"] == y["abstained"] for x, y in pairs) / len(pairs),
        "p_right_delta_median": statistics.median(deltas) if deltas else 0.0,
        "p_right_delta_max": max(deltas, default=0.0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", action="append", required=True, help="NAME=ROOT:PARALLEL")
    parser.add_argument("--questions", type=int, default=30)
    parser.add_argument("--gold", type=Path, default=ROOT / "evals/gold.jsonl")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/decision_ab.json")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--docs", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--index", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    runs: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="qa-decision-") as tmp:
        docs, index = Path(tmp) / "docs", Path(tmp) / "index"
        shutil.copytree(ROOT / "seeds", docs)
        from qa import Assistant, Settings

        Assistant(Settings(seeds_dir=docs, index_dir=index)).index()
        for spec in args.variant:
            name, _, rest = spec.partition("=")
            root, parallel = rest.rsplit(":", 1)
            own = Path(tmp) / f"index-{name}"
            shutil.copytree(index, own)
            env = {**os.environ, "PYTHONPATH": str(Path(root).resolve()), "QA_PARALLEL": parallel}
            cmd = [sys.executable, __file__, "--child", "--docs", str(docs), "--index", str(own)]
            cmd += ["--questions", str(args.questions), "--gold", str(args.gold.resolve())]
            out = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True)
            if out.returncode:
                raise RuntimeError(f"{name} failed:\n{out.stderr[-3000:]}")
            runs[name] = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{name}: done", file=sys.stderr, flush=True)
    names = list(runs)
    table = {f"{a} vs {b}": compare(runs[a], runs[b]) for a in names for b in names if a < b}
    print("| pair | same text | same shown/withheld | P(right) delta median / max |")
    print("|---|---|---|---|")
    for pair, m in table.items():
        print(
            f"| {pair} | {m['same_text']:.2f} | {m['same_decision']:.2f} | "
            f"{m['p_right_delta_median']:.4f} / {m['p_right_delta_max']:.4f} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"pairs": table, "runs": runs}, indent=2) + "\n")


if __name__ == "__main__":
    main()
