"""Side-by-side: speed (`qa bench`) and quality (`qa eval`) of alternative configurations.

Each configuration is a set of QA_* environment variables; every run is a fresh process, so
nothing leaks between them. Prints a markdown table and writes the raw numbers as JSON.

Usage: python bench/compare.py [--configs default,small-model] [--out results.json]
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
CONFIGS: dict[str, dict[str, str]] = {
    "default": {},
    "no-checker": {"QA_SUPPORT_THRESHOLD": "0"},
    "dense-only": {"QA_RETRIEVAL": "dense"},
    "small-model": {"QA_LLM_MODEL": "qwen2.5-coder-0.5b"},
    "top-k-3": {"QA_TOP_K": "3"},
    "chunk-800": {"QA_CHUNK_SIZE": "800", "QA_CHUNK_OVERLAP": "150"},
}
EVALS = {
    "seed": ["--gold", "evals/gold.jsonl"],
    "Normans@30": ["--gold", "evals/squad2/Normans.jsonl", "--docs", "evals/squad2/docs"],
    "Steam@30": ["--gold", "evals/squad2/Steam_engine.jsonl", "--docs", "evals/squad2/docs"],
}


def qa(args: list[str], env: dict[str, str]) -> None:
    cmd = [sys.executable, "-m", "qa", *args]
    subprocess.run(cmd, cwd=ROOT, env={**os.environ, **env}, check=True, capture_output=True)


def measure(name: str, env: dict[str, str], questions: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="qa-compare-") as tmp:
        env = {**env, "QA_INDEX_DIR": str(Path(tmp) / "index")}
        out = Path(tmp) / "bench.json"
        qa(["bench", "--sizes", "", "--questions", str(questions), "--out", str(out)], env)
        row = {"config": name, "env": env, "bench": json.loads(out.read_text()), "eval": {}}
        for label, args in EVALS.items():
            report = Path(tmp) / label
            sample = ["--sample", "30"] if "--docs" in args else []
            qa(["eval", *args, *sample, "--out", str(report)], env)
            row["eval"][label] = json.loads((report / "report.json").read_text())["metrics"]
    return row


def markdown(rows: list[dict]) -> str:
    head = "| config | first token p50 | total p50 | peak RSS | seed recall / abstain |"
    head += " Normans contains / abstain | Steam contains / abstain |"
    lines = [head, "|---" * 7 + "|"]
    for r in rows:
        a, e = r["bench"]["answers"], r["eval"]
        cells = [
            r["config"],
            f"{a['first_token_ms_p50']:.0f} ms",
            f"{a['total_ms_p50']:.0f} ms",
            f"{r['bench']['serving_peak_rss_mib']:.0f} MiB",
            f"{e['seed']['fact_recall']:.2f} / {e['seed']['abstain_acc']:.2f}",
        ]
        for label in ("Normans@30", "Steam@30"):
            cells.append(f"{e[label]['contains_gold']:.2f} / {e[label]['abstain_acc']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/compare.json")
    args = parser.parse_args()
    rows = []
    for name in args.configs.split(","):
        rows.append(measure(name, CONFIGS[name], args.questions))
        print(f"done: {name}", file=sys.stderr, flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2))
    print(markdown(rows))


if __name__ == "__main__":
    main()
