"""Write the gate's samples of the shared BoolQ and MultiRC datasets as gold sets with their
documents, from the parts no decision was fitted on (``fit/results/decision-splits.json``).

    python evals/samples.py            # evals/boolq/, evals/multirc/, evals/followups/

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
SPLITS = HERE.parent / "fit" / "results" / "decision-splits.json"
BOOLQ_QUESTIONS = 30
MULTIRC_PASSAGES = {
    "multirc-3": "news",
    "multirc-10": "fiction",
    "multirc-24": "law and society",
    "multirc-42": "science",
}
"""Held-out passages of four genres (all their questions)."""

# Follow-ups written for this repo: (first question's id, second question's id, the second
# question as a follow-up would ask it, what its pronoun stands for). All from held-out parts.
FOLLOW_UPS = [
    ("boolq-1219", "boolq-1992", "did they win the world cup in 1978", ["scotland"]),
    ("boolq-140", "boolq-1994", "does winning it qualify for europe", ["fa cup"]),
    ("boolq-322", "boolq-1386", "is it in the old testament", ["song of songs", "song of solomon"]),
    ("boolq-382", "boolq-2381", "does the right one receive blood from the lungs", ["atrium"]),
    ("boolq-2079", "boolq-2292", "is it part of the armed forces", ["coast guard"]),
    ("boolq-479", "boolq-1205", "did they have an executive branch", ["articles of confederation"]),
    ("boolq-684", "boolq-1046", "has it reached the quarter final in the world cup", ["nigeria"]),
    ("boolq-403", "boolq-2480", "is it considered a part of the united states", ["puerto rico"]),
    ("boolq-310", "boolq-1214", "is it the same as a sausage dog", ["dachshund"]),
    ("boolq-189", "boolq-593", "do their stingers fall out on their own", ["bee"]),
    ("multirc-44-505", "multirc-44-508", "Does she have any brothers or sisters?", ["lucy"]),
    ("multirc-5-51", "multirc-5-45", "Why did he leave University?", ["poe", "edgar"]),
    (
        "multirc-20-228",
        "multirc-20-224",
        "Where is he contained after he is bitten by a hamster?",
        ["ralph"],
    ),
    ("multirc-55-656", "multirc-55-657", "How old was he when he freed the serfs?", ["alexander"]),
    (
        "multirc-33-400",
        "multirc-33-401",
        "How many times does he come across the cave where the voodoo curse was created?",
        ["chuck"],
    ),
    ("multirc-33-403", "multirc-33-405", "Why is she able to escape death by zombies?", ["jenny"]),
    ("multirc-54-639", "multirc-54-640", "Who are his friends?", ["timothy"]),
    (
        "multirc-51-601",
        "multirc-51-599",
        "What two departments took part in the raid on his office?",
        ["melgen"],
    ),
    ("multirc-1-7", "multirc-1-6", "Why did he murder a man?", ["sanjay"]),
    (
        "multirc-1-5",
        "multirc-1-4",
        "Why does her professor deny her access to records on Sanjay Singhania?",
        ["sunita"],
    ),
    ("multirc-25-287", "multirc-25-291", "How did he want to reform FBI?", ["ashcroft"]),
    ("multirc-22-250", "multirc-22-251", "What company does he work for?", ["polutnik", "nicolas"]),
    (
        "multirc-60-718",
        "multirc-60-721",
        "What happened to him after the air was let out?",
        ["narrator", "protagonist"],
    ),
]
"""Follow-ups that name someone or something by pronoun, to measure the condense step."""


def _file_name(title: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:40]
    return f"{slug}-{hashlib.sha1(title.encode()).hexdigest()[:6]}.txt"


def _write(folder: Path, items: list[dict], docs: dict[str, str]) -> None:
    (folder / "docs").mkdir(parents=True, exist_ok=True)
    for name, text in docs.items():
        (folder / "docs" / name).write_text(text, encoding="utf-8")
    lines = "".join(json.dumps(it, ensure_ascii=False) + "\n" for it in items)
    (folder / f"{folder.name}.jsonl").write_text(lines, encoding="utf-8")


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


def followups() -> None:
    """Two-turn conversations: a held-out question, then another about the same subject asked
    with a pronoun (``FOLLOW_UPS``); each over its own document."""
    boolq_rows = {
        r["id"]: r for r in map(json.loads, (DATASETS / "boolq" / "boolq_dev.jsonl").open())
    }
    passages = [json.loads(x) for x in (DATASETS / "multirc" / "multirc_dev.jsonl").open()]
    multirc = {q["id"]: (p, q) for p in passages for q in p["questions"]}
    docs: dict[str, str] = {}
    items = []
    for first, second, asked, refers_to in FOLLOW_UPS:
        turns = []
        for qid in (first, second):
            if qid in boolq_rows:
                r = boolq_rows[qid]
                source = _file_name(r["title"])
                docs[source] = f"{r['title']}\n\n{r['passage']}\n"
                turns.append({"question": r["question"], "yes": r["answer"]})
            else:
                p, q = multirc[qid]
                source = f"{p['id']}.txt"
                docs[source] = p["passage"] + "\n"
                turns.append(
                    {
                        "question": q["question"],
                        "candidates": {"correct": q["correct"], "incorrect": q["incorrect"]},
                    }
                )
        turns[1] |= {"question": asked, "refers_to": [refers_to]}
        items.append({"id": f"followup-{second}", "turns": turns, "sources": [source]})
    _write(HERE / "followups", items, docs)


if __name__ == "__main__":
    if not DATASETS.exists():
        sys.exit(f"No shared datasets at {DATASETS}; the gate's BoolQ/MultiRC samples need them")
    for name in sys.argv[1:] or ["boolq", "multirc", "followups"]:
        {"boolq": boolq, "multirc": multirc, "followups": followups}[name]()
