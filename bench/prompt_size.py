"""Retrieval mode's cost is reading the prompt: what fewer or shorter passages would save, and
what they would cost in answers, side by side in one run (variants alternate per set).

A variant is a set of QA_* settings (e.g. QA_TOP_K=3); every variant answers the same gold
sets through `qa eval`, so quality and time come from the same runs. Changing these settings
changes what the model sees, so the shipped decision (fitted on the default prompt) may need
refitting before any of them becomes a default: this script only measures.

    python bench/prompt_size.py --variant k4= --variant k3=QA_TOP_K=3 --variant k2=QA_TOP_K=2 \\
        --set Normans@30=evals/squad2/Normans.jsonl:evals/squad2/docs:30
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ("contains_gold", "abstain_acc", "false_abstain_rate", "ttft_p50_ms", "total_p50_ms")


def run_eval(env: dict[str, str], gold: Path, docs: Path | None, sample: str | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="qa-prompt-size-") as tmp:
        cmd = [sys.executable, "-m", "qa", "eval", "--gold", str(gold), "--out", tmp]
        cmd += ["--docs", str(docs)] if docs else []
        cmd += ["--sample", sample] if sample else []
        subprocess.run(cmd, cwd=ROOT, env={**os.environ, **env}, check=True, capture_output=True)
        report = json.loads((Path(tmp) / "report.json").read_text())
    turns = [t for item in report["items"] for t in item["turns"]]
    prompt = [t["timings"]["prompt_tokens"] for t in turns if t.get("timings")]
    metrics = report["metrics"]
    if prompt:
        metrics["prompt_tokens_mean"] = sum(prompt) / len(prompt)
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", action="append", required=True, help="NAME=K=V[,K=V]")
    parser.add_argument(
        "--set", action="append", required=True, dest="sets", help="NAME=GOLD[:DOCS[:SAMPLE]]"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/prompt_size.json")
    args = parser.parse_args()
    results: dict[str, dict[str, dict]] = {}
    for spec in args.sets:
        name, rest = spec.split("=", 1)
        gold, docs, sample = ([*rest.split(":"), None, None])[:3]
        for variant in args.variant:
            label, _, assigns = variant.partition("=")
            env = dict(a.split("=", 1) for a in assigns.split(",") if a)
            metrics = run_eval(
                env, Path(gold).resolve(), Path(docs).resolve() if docs else None, sample
            )
            results.setdefault(name, {})[label] = metrics
            print(
                f"{name} {label}: {json.dumps({k: metrics.get(k) for k in COLUMNS})}",
                file=sys.stderr,
            )
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2) + "\n")
    print("| set | variant | prompt tokens | " + " | ".join(COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 3) + "|")
    for name, variants in results.items():
        for label, m in variants.items():
            cells = [
                f"{m[k] / 1000:.2f} s" if k.endswith("_ms") else f"{m[k]:.2f}"
                for k in COLUMNS
                if k in m
            ]
            tokens = f"{m.get('prompt_tokens_mean', 0):.0f}"
            print(f"| {name} | {label} | {tokens} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
