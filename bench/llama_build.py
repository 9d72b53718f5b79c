"""Prompt-processing and generation speed of llama.cpp builds, side by side in one run.

Each build is a Python interpreter with its own llama-cpp-python (e.g. the project's portable
.venv and a venv holding a native build). Rounds alternate between the builds so machine noise
hits both alike; the table shows medians and the ratio to the first build.

    python bench/llama_build.py --build portable=.venv/bin/python \\
        --build native=/tmp/native/bin/python --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

# Runs inside each build's interpreter; prints one JSON line.
PROBE = r"""
import json, sys, time
import llama_cpp
from llama_cpp import Llama
path, threads, n_prompt, n_gen = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
llm = Llama(model_path=path, n_ctx=4096, n_threads=threads, n_batch=512, verbose=False)
words = ("the river ferry crosses every twenty minutes between the harbour and the old town "
         "while the council debates a new bridge ").split()
text = " ".join(words[i % len(words)] for i in range(n_prompt * 2))
tokens = llm.tokenize(text.encode())[:n_prompt]
t0 = time.perf_counter(); llm.eval(tokens); pp = time.perf_counter() - t0
llm.reset(); short = llm.tokenize(b"Once upon a time")
gen = llm.generate(short, temp=0.0)
t0 = time.perf_counter()
for i, _ in enumerate(gen, 1):
    if i >= n_gen:
        break
tg = time.perf_counter() - t0
info = llama_cpp.llama_print_system_info().decode()
print(json.dumps({"pp_tok_s": len(tokens) / pp, "tg_tok_s": n_gen / tg, "system_info": info}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", action="append", required=True, help="NAME=PYTHON")
    parser.add_argument("--model", default=str(Path.home() / ".cache/qa/qwen2.5-coder-1.5b.gguf"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompt-tokens", type=int, default=1000)
    parser.add_argument("--gen-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    builds = dict(b.split("=", 1) for b in args.build)
    runs: dict[str, list[dict]] = {name: [] for name in builds}
    for r in range(args.rounds):
        for name, python in builds.items():
            cmd = [
                python,
                "-c",
                PROBE,
                args.model,
                str(args.threads),
                str(args.prompt_tokens),
                str(args.gen_tokens),
            ]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            runs[name].append(json.loads(out.strip().splitlines()[-1]))
            print(
                f"round {r + 1} {name}: {runs[name][-1]['pp_tok_s']:.1f} pp, "
                f"{runs[name][-1]['tg_tok_s']:.1f} tg tok/s",
                file=sys.stderr,
            )
    first = next(iter(builds))
    table = {
        name: {
            "pp_tok_s": statistics.median(x["pp_tok_s"] for x in rs),
            "tg_tok_s": statistics.median(x["tg_tok_s"] for x in rs),
            "system_info": rs[0]["system_info"],
        }
        for name, rs in runs.items()
    }
    result = {
        "model": args.model,
        "threads": args.threads,
        "rounds": args.rounds,
        "prompt_tokens": args.prompt_tokens,
        "gen_tokens": args.gen_tokens,
        "builds": table,
    }
    print(json.dumps(result, indent=2))
    print(f"\n| build | prompt tok/s | generation tok/s | vs {first} (pp / tg) |")
    print("|---|---|---|---|")
    for name, m in table.items():
        base = table[first]
        print(
            f"| {name} | {m['pp_tok_s']:.1f} | {m['tg_tok_s']:.1f} | "
            f"{m['pp_tok_s'] / base['pp_tok_s']:.2f} / {m['tg_tok_s'] / base['tg_tok_s']:.2f} |"
        )
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
