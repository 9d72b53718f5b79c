"""The gold sets are well-formed and every expected fact or span occurs in its source document."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from qa.answering.prompts import SYSTEM
from qa.documents.ingest import read_text
from qa.evaluation.gold import GoldItem, GoldTurn, load_gold
from qa.text import contains
from qa.trust.guard import reveal

ROOT = Path(__file__).resolve().parents[1]
SEED_GOLD = ROOT / "evals" / "gold.jsonl"
SEED_DOC = ROOT / "seeds" / "000_fee3450cbe0e2819.txt"
SQUAD = ROOT / "evals" / "squad2"
OPEN_GOLD = ROOT / "evals" / "open.jsonl"
MULTIDOC = SQUAD / "multidoc.jsonl"
STORIES = ROOT / "evals" / "conversations" / "stories.jsonl"
STORY_DOCS = ROOT / "evals" / "conversations" / "docs"
BOOLQ = ROOT / "evals" / "boolq"
# A gold file and its document, or its folder of documents (then each item's `sources`, if any).
GOLD_SETS = [
    (SEED_GOLD, SEED_DOC),
    (SQUAD / "Normans.jsonl", SQUAD / "docs" / "Normans.txt"),
    (SQUAD / "Steam_engine.jsonl", SQUAD / "docs" / "Steam_engine.txt"),
    (OPEN_GOLD, SEED_DOC),
    (MULTIDOC, SQUAD / "docs"),
    (STORIES, STORY_DOCS),
    (BOOLQ / "boolq.jsonl", BOOLQ / "docs"),
    (ROOT / "evals" / "manuals" / "nodejs.jsonl", ROOT / "evals" / "manuals" / "docs"),
]
KINDS = ("facts", "answers", "candidates", "unanswerable", "turns")


def _source_text(item: GoldItem, doc: Path) -> str:
    """The text a correct answer to ``item`` comes from."""
    if doc.is_file():
        return doc.read_text(encoding="utf-8")
    files = [doc / s for s in item.sources] or sorted(doc.glob("*.txt"))
    return "\n\n".join(f.read_text(encoding="utf-8") for f in files)


@pytest.mark.parametrize(("gold", "doc"), GOLD_SETS, ids=lambda p: p.name)
def test_expected_text_occurs_in_source(gold: Path, doc: Path) -> None:
    missing = [
        (item.id, alt)
        for item in load_gold(gold)
        for turn in item.turns
        for alt in [*(a for g in turn.facts + turn.refers_to for a in g), *turn.answers]
        if not contains(_source_text(item, doc), alt)
    ]
    assert not missing


@pytest.mark.parametrize(("gold", "doc"), GOLD_SETS, ids=lambda p: p.name)
def test_records_are_well_formed(gold: Path, doc: Path) -> None:
    records = [json.loads(line) for line in gold.read_text(encoding="utf-8").splitlines() if line]
    ids = Counter(r["id"] for r in records)
    assert [i for i, n in ids.items() if n > 1] == []
    for record in records:
        kinds = sum(bool(record.get(k)) for k in KINDS)
        assert kinds == 1 or ("yes" in record and kinds <= 1), record["id"]
    items = load_gold(gold)
    assert len(items) == len(records)
    if doc.is_dir():
        assert {s for item in items for s in item.sources} <= {p.name for p in doc.iterdir()}


def test_the_boolq_sample_is_typed_as_people_type_and_routes_to_yes_no() -> None:
    from qa.answering.shapes import route

    items = load_gold(BOOLQ / "boolq.jsonl")
    assert {it.kind for it in items} == {"yes"} and all(len(it.sources) == 1 for it in items)
    assert sum(route(it.turns[0].question) == "yesno" for it in items) >= 29
    assert {it.turns[0].yes for it in items} == {True, False}


def test_candidates_need_a_correct_one() -> None:
    from qa.evaluation.gold import parse_gold_item

    item = parse_gold_item(
        {"id": "m", "question": "q?", "candidates": {"correct": ["a"], "incorrect": []}}
    )
    assert item.kind == "candidates" and item.turns[0].correct == ["a"]
    for bad in ({"correct": [], "incorrect": ["b"]}, {"correct": "a", "incorrect": []}, ["a"]):
        with pytest.raises(ValueError, match="candidates"):
            parse_gold_item({"id": "m", "question": "q?", "candidates": bad})


def test_seed_gold_coverage() -> None:
    items = load_gold(SEED_GOLD)
    kinds = Counter(item.kind for item in items)
    assert len(items) >= 40
    assert kinds["unanswerable"] >= 8
    assert kinds["turns"] >= 4
    assert all(len(item.turns) >= 2 for item in items if item.kind == "turns")
    assert len({item.turns[0].question for item in items}) == len(items)


def _turns(gold: Path) -> list[GoldTurn]:
    return [turn for item in load_gold(gold) for turn in item.turns]


def test_open_gold_coverage() -> None:
    items = load_gold(OPEN_GOLD)
    turns = _turns(OPEN_GOLD)
    assert len(items) >= 25 and all(t.shape for t in turns)
    assert len({t.question for t in turns}) == len(turns)
    assert {"overview", "list", "open", "yesno"} <= {t.shape for t in turns}
    verdicts = [t.yes for t in turns if t.yes is not None]
    assert len(verdicts) >= 6 and verdicts.count(False) >= 2
    assert sum(t.unanswerable and t.shape != "short" for t in turns) >= 5
    questions = {t.question for t in turns}
    assert {"What is this document about?", "Who are the people involved?"} <= questions


def test_multidoc_gold_coverage() -> None:
    turns = _turns(MULTIDOC)
    assert len(turns) >= 10
    about = next(t for t in turns if t.question == "What are these documents about?")
    assert len(about.facts) == len(list((SQUAD / "docs").glob("*.txt")))  # a group per document
    assert sum(t.yes is not None for t in turns) >= 1
    assert sum(t.unanswerable and t.shape != "short" for t in turns) >= 2
    assert {"overview", "list", "open"} <= {t.shape for t in turns}


def test_stories_are_conversations_with_follow_ups() -> None:
    items = load_gold(STORIES)
    assert len(items) >= 2
    for item in items:
        assert item.kind == "turns" and len(item.turns) >= 10 and len(item.sources) == 1
        verdicts = [t.yes for t in item.turns if t.yes is not None]
        assert len(verdicts) >= 3 and {True, False} <= set(verdicts), item.id
        assert sum(t.unanswerable for t in item.turns) == 1, item.id
        assert 1500 <= len((STORY_DOCS / item.sources[0]).read_text(encoding="utf-8")) <= 2500


def test_story_facts_are_not_known_to_the_code() -> None:
    """Expectations live only in evals/: none of the stories' names appears in qa/."""
    code = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "qa").glob("*.py"))
    stories = "\n".join(p.read_text(encoding="utf-8") for p in STORY_DOCS.glob("*.txt"))
    names = {
        a
        for t in _turns(STORIES)
        for g in t.facts
        for a in g
        if a[0].isalpha() and a.title() in stories
    }
    assert len(names) >= 10
    assert [n for n in sorted(names) if contains(code, n)] == []


INJECTION = ROOT / "evals" / "injection"
SYSTEM_PROMPT_MARKER = (
    "numbered passages"  # from qa.answering.chain.SYSTEM: said only if the prompt leaks
)
# The kinds of planted text issue #20 asks the probe set to cover (evals/injection/planted.jsonl).
INJECTION_KINDS = {
    "override", "role-block", "fake-citation", "canary", "link", "phone", "reader-instruction",
    "html-comment", "markdown-comment", "pdf-hidden", "docx-hidden", "non-english",
    "spaced-letters", "base64", "other-chunk",
}  # fmt: skip


def _injection_docs() -> dict[str, str]:
    """Each probe document's text as the indexer reads it (HTML without its tags and scripts)."""
    docs = sorted((INJECTION / "docs").iterdir())
    return {p.name: read_text(p, max_bytes=1_000_000) for p in docs}


def _revealed(text: str) -> str:
    """``text`` and what its obfuscated parts say (letters spaced apart, base64)."""
    return "\n\n".join(reveal(text))


def test_injection_probes_are_answerable_from_their_documents() -> None:
    docs = _injection_docs()
    items = load_gold(INJECTION / "probes.jsonl")
    missing = [
        (item.id, alt)
        for item in items
        for turn in item.turns
        for group in turn.facts
        for alt in group
        if not any(contains(docs[s], alt) for s in item.sources)
    ]
    assert not missing
    turns = [turn for item in items for turn in item.turns]
    assert all(turn.forbidden for turn in turns)
    assert all(item.sources and set(item.sources) <= set(docs) for item in items)
    assert len(items) >= 60 and len(docs) >= 10
    assert sum(t.unanswerable for t in turns) >= 15 and sum(bool(t.facts) for t in turns) >= 40
    assert sum(len(item.turns) >= 2 for item in items) >= 2
    for name in docs:  # every document has ordinary facts to answer, and a question to refuse
        asked = [t for item in items if name in item.sources for t in item.turns]
        assert sum(bool(t.facts) for t in asked) >= 3 and any(t.unanswerable for t in asked), name
    assert SYSTEM_PROMPT_MARKER in " ".join(SYSTEM.split())


def test_injection_documents_are_short_enough_to_read_whole() -> None:
    """The gate reads each probe document whole (full-context mode holds <= 6,000 chars)."""
    assert {n: len(t) for n, t in _injection_docs().items() if len(t) > 2500} == {}


def test_injection_canaries_are_planted_in_the_documents() -> None:
    corpus = "\n\n".join(_revealed(t) for t in _injection_docs().values())
    canaries = {
        f for item in load_gold(INJECTION / "probes.jsonl") for t in item.turns for f in t.forbidden
    }
    planted = canaries - {SYSTEM_PROMPT_MARKER}
    assert [c for c in sorted(planted) if not contains(corpus, c)] == []
    assert not contains(corpus, SYSTEM_PROMPT_MARKER)


def test_planted_spans_are_where_the_manifest_says() -> None:
    """Each planted span occurs in its document as indexed, or, in an HTML comment the reader
    drops, in the raw file; together they cover every kind the issue lists."""
    docs = _injection_docs()
    rows = [json.loads(line) for line in (INJECTION / "planted.jsonl").read_text().splitlines()]
    for row in rows:
        text, needle = " ".join(docs[row["source"]].split()), " ".join(row["text"].split())
        raw = (INJECTION / "docs" / row["source"]).read_text(errors="replace")
        assert needle in text or f"<!-- {needle} -->" in raw, row
    assert {k for row in rows for k in row["kinds"]} >= INJECTION_KINDS


def test_benign_corpus_is_imperative_and_varied() -> None:
    benign = sorted((INJECTION / "benign").iterdir())
    assert len(benign) >= 6
    text = " ".join(read_text(p, max_bytes=1_000_000) for p in benign).lower()
    assert all(w in text for w in ("press and hold", "must", "call us", "ignore", "password"))
