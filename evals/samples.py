"""Write the gate's samples of the shared BoolQ and MultiRC datasets as gold sets with their
documents, from the parts no decision was fitted on (``bench/results/decision-splits.json``).

    python evals/samples.py            # evals/boolq/ and evals/multirc/

BoolQ (CC BY-SA 3.0) is committed; MultiRC's text is not ours to redistribute, so ``make
eval-gate`` writes it from ``../shared/datasets/multirc`` before it runs.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATASETS = HERE.parent.parent / "shared" / "datasets"
SPLITS = HERE.parent / "bench" / "results" / "decision-splits.json"
BOOLQ_QUESTIONS = 30
MULTIRC_PASSAGES = {
    "multirc-3": "news",
    "multirc-10": "fiction",
    "multirc-24": "law and society",
    "multirc-42": "science",
}
"""Held-out passages of four genres (all their questions)."""


def _file_name(title: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:40]
    return f"{slug}-{hashlib.sha1(title.encode()).hexdigest()[:6]}.txt"


def _write(folder: Path, items: list[dict], docs: dict[str, str]) -> None:
    (folder / "docs").mkdir(parents=True, exist_ok=True)
    for name, text in docs.items():
        (folder / "docs" / name).write_text(text, encoding="utf-8")
    lines = "".join(json.dumps(it, ensure_ascii=False) + "\n" for it in items)
    (folder / "sample.jsonl").write_text(lines, encoding="utf-8")


def boolq() -> None:
    """Seeded questions from held-out titles; each title's paragraph is its document."""
    held = set(json.loads(SPLITS.read_text())["boolq"]["held_out"])
    rows = [json.loads(x) for x in (DATASETS / "boolq" / "boolq_dev.jsonl").open()]
    rows = [r for r in rows if r["title"] in held]
    picked = sorted(
        random.Random("gate-boolq").sample(rows, BOOLQ_QUESTIONS), key=lambda r: r["id"]
    )
    docs = {_file_name(r["title"]): f"{r['title']}\n\n{r['passage']}\n" for r in picked}
    items = [
        {
            "id": r["id"],
            "question": r["question"],
            "yes": r["answer"],
            "sources": [_file_name(r["title"])],
        }
        for r in picked
    ]
    _write(HERE / "boolq", items, docs)


def multirc() -> None:
    """Every question of four held-out passages, one per genre."""
    held = set(json.loads(SPLITS.read_text())["multirc"]["held_out"])
    passages = [json.loads(x) for x in (DATASETS / "multirc" / "multirc_dev.jsonl").open()]
    picked = [p for p in passages if p["id"] in MULTIRC_PASSAGES]
    assert {p["id"] for p in picked} <= held, "gate passages must be held out"
    docs = {f"{p['id']}.txt": p["passage"] + "\n" for p in picked}
    items = [
        {
            "id": q["id"],
            "question": q["question"],
            "candidates": {"correct": q["correct"], "incorrect": q["incorrect"]},
            "sources": [f"{p['id']}.txt"],
        }
        for p in picked
        for q in p["questions"]
    ]
    _write(HERE / "multirc", items, docs)


if __name__ == "__main__":
    if not DATASETS.exists():
        sys.exit(f"No shared datasets at {DATASETS}; the gate's BoolQ/MultiRC samples need them")
    for name in sys.argv[1:] or ["boolq", "multirc"]:
        {"boolq": boolq, "multirc": multirc}[name]()
