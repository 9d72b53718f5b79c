"""Which answer-shape router is best: the rules in qa/answering/shapes.py, or asking the LLM?

Every gold question that states its shape (or is a plain fact question, ``short``) is routed
both ways: by ``qa.answering.shapes.route`` and by a one-word classification prompt to the local
model.
Prints a markdown table of accuracy, per-shape recall and time per question, and writes JSON.

Usage: python bench/router.py [--out bench/results/router.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

from langchain_core.prompts import ChatPromptTemplate

from qa.answering.shapes import route
from qa.config import Settings
from qa.evaluation.gold import load_gold
from qa.llm.models import make_llm

ROOT = Path(__file__).resolve().parents[1]
GOLD = [
    "evals/open.jsonl",
    "evals/squad2/multidoc.jsonl",
    "evals/conversations/stories.jsonl",
    "evals/gold.jsonl",
]
SQUAD = ["Normans", "Steam_engine", "Harvard_University"]  # the CI samples: short answers
SHAPES = ("short", "yesno", "list", "open", "overview")

CLASSIFY = """Classify the question by the kind of answer it needs. Reply with one word:
short (a name, number, date, place or phrase), yesno (a yes/no question), list (several items),
open (an explanation: why, how, describe, compare) or overview (what documents are about, a
summary)."""
EXAMPLES = [
    ("When did the bakery open?", "short"),
    ("Does the ferry run on Sundays?", "yesno"),
    ("Which products does the bakery sell?", "list"),
    ("Why did the council propose a bridge?", "open"),
    ("Give me a summary of the report.", "overview"),
]


def questions() -> list[tuple[str, str]]:
    """(question, shape) for every gold question that states or implies its shape."""
    out = []
    for path in GOLD:
        for item in load_gold(ROOT / path):
            for turn in item.turns:
                out.append(
                    (turn.question, turn.shape or ("yesno" if turn.yes is not None else "short"))
                )
    for title in SQUAD:
        for item in load_gold(ROOT / f"evals/squad2/{title}.jsonl", sample=30):
            out += [(t.question, "short") for t in item.turns]
    return out


def llm_router(settings: Settings):
    messages = [("system", CLASSIFY)]
    for q, shape in EXAMPLES:
        messages += [("human", q), ("ai", shape)]
    messages.append(("human", "{question}"))
    chain = ChatPromptTemplate.from_messages(messages) | make_llm(settings).bind(max_tokens=3)

    def classify(question: str) -> str:
        reply = "".join(str(c.content) for c in chain.stream({"question": question}))
        word = reply.strip().lower()
        return next((s for s in SHAPES if word.startswith(s[:3])), "short")

    return classify


def score(name: str, router, data: list[tuple[str, str]]) -> dict:
    t0 = time.perf_counter()
    routed = [router(q) for q, _ in data]
    seconds = time.perf_counter() - t0
    right = Counter(s for (_, s), r in zip(data, routed, strict=True) if r == s)
    total = Counter(s for _, s in data)
    return {
        "router": name,
        "accuracy": sum(right.values()) / len(data),
        **{f"recall_{s}": right[s] / total[s] for s in SHAPES if total[s]},
        "ms_per_question": 1000 * seconds / len(data),
        "mistakes": [(q, s, r) for (q, s), r in zip(data, routed, strict=True) if r != s],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/router.json")
    args = parser.parse_args(argv)
    data = questions()
    llm = llm_router(Settings())
    llm("warm up")  # load the model and cache the prompt's fixed part outside the timing
    rows = [score("rules", route, data), score("llm", llm, data)]
    counts = Counter(s for _, s in data)
    print(f"{len(data)} questions: " + ", ".join(f"{s} {counts[s]}" for s in SHAPES))
    keys = [k for k in rows[0] if k not in ("router", "mistakes")]
    print("| router | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for r in rows:
        print(f"| {r['router']} | " + " | ".join(f"{r[k]:.3g}" for k in keys) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
