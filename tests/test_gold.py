"""The gold sets are well-formed and every expected fact or span occurs in its source document."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from qa.chain import SYSTEM
from qa.gold import load_gold
from qa.ingest import read_text
from qa.text import contains

ROOT = Path(__file__).resolve().parents[1]
SEED_GOLD = ROOT / "evals" / "gold.jsonl"
SEED_DOC = ROOT / "seeds" / "000_fee3450cbe0e2819.txt"
SQUAD = ROOT / "evals" / "squad2"
GOLD_SETS = [
    (SEED_GOLD, SEED_DOC),
    (SQUAD / "Normans.jsonl", SQUAD / "docs" / "Normans.txt"),
    (SQUAD / "Steam_engine.jsonl", SQUAD / "docs" / "Steam_engine.txt"),
]
KINDS = ("facts", "answers", "unanswerable", "turns")


@pytest.mark.parametrize(("gold", "doc"), GOLD_SETS, ids=lambda p: p.name)
def test_expected_text_occurs_in_source(gold: Path, doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    missing = [
        (item.id, alt)
        for item in load_gold(gold)
        for turn in item.turns
        for alt in [*(a for group in turn.facts for a in group), *turn.answers]
        if not contains(text, alt)
    ]
    assert not missing


@pytest.mark.parametrize(("gold", "doc"), GOLD_SETS, ids=lambda p: p.name)
def test_records_are_well_formed(gold: Path, doc: Path) -> None:
    records = [json.loads(line) for line in gold.read_text(encoding="utf-8").splitlines() if line]
    ids = Counter(r["id"] for r in records)
    assert [i for i, n in ids.items() if n > 1] == []
    for record in records:
        assert sum(bool(record.get(k)) for k in KINDS) == 1, record["id"]
    assert len(load_gold(gold)) == len(records)


def test_seed_gold_coverage() -> None:
    items = load_gold(SEED_GOLD)
    kinds = Counter(item.kind for item in items)
    assert len(items) >= 40
    assert kinds["unanswerable"] >= 8
    assert kinds["turns"] >= 4
    assert all(len(item.turns) >= 2 for item in items if item.kind == "turns")
    assert len({item.turns[0].question for item in items}) == len(items)


INJECTION = ROOT / "evals" / "injection"
SYSTEM_PROMPT_MARKER = "numbered passages"  # from qa.chain.SYSTEM: said only if the prompt leaks


def _injection_docs() -> dict[str, str]:
    """Each probe document's text as the indexer reads it (HTML without its tags and scripts)."""
    docs = sorted((INJECTION / "docs").iterdir())
    return {p.name: read_text(p, max_bytes=1_000_000) for p in docs}


def test_injection_probes_are_answerable_from_their_documents() -> None:
    docs = _injection_docs()
    corpus = "\n\n".join(docs.values())
    items = load_gold(INJECTION / "probes.jsonl")
    turns = [turn for item in items for turn in item.turns]
    missing = [
        alt for turn in turns for group in turn.facts for alt in group if not contains(corpus, alt)
    ]
    assert not missing
    assert all(turn.forbidden for turn in turns)
    assert {s for item in items for s in item.sources} <= set(docs)
    assert sum(t.unanswerable for t in turns) >= 5 and sum(bool(t.facts) for t in turns) >= 10
    assert SYSTEM_PROMPT_MARKER in " ".join(SYSTEM.split())


def test_injection_canaries_are_planted_in_the_documents() -> None:
    corpus = "\n\n".join(_injection_docs().values())
    canaries = {
        f for item in load_gold(INJECTION / "probes.jsonl") for t in item.turns for f in t.forbidden
    }
    planted = canaries - {SYSTEM_PROMPT_MARKER}
    assert [c for c in sorted(planted) if not contains(corpus, c)] == []
    assert not contains(corpus, SYSTEM_PROMPT_MARKER)
