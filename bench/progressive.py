"""Progressive reading (#35 item 1) against the wide read, on the same questions in one process
(the models load once).

For each corpus named, indexed alone as a user's whole corpus (a held-out SQuAD 2.0 article
with ``--article``, or ``--corpus multirc|boolq`` as ``bench/gold_ab.py`` builds them), a seeded
sample of its questions (half answerable where it has unanswerable ones) is asked under
``reading="wide"``, then under ``reading="progressive"``, each after one warm-up question so
both start with the instructions cached. Per reading: first token p50/p90 and answer p50 (s),
prompt tokens computed per question (mean), contains-gold (the reply, asserted or unconfirmed,
holds a gold answer: ``qa.evaluation.scoring.reply_right``, over answerable questions),
answered right / answered wrong / unconfirmed / not found (shares of all questions),
abstention (unanswerable questions not asserted) and how often each read answered
(``Timings.read``).

    python bench/progressive.py --article Harvard_University --article Normans --questions 40
    python bench/progressive.py --corpus multirc --questions 30

Raw rows go to ``bench/results/progressive-<corpus>.json`` (no question or reply text for a
corpus that may not be redistributed), the table to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path
from statistics import fmean

from gold_ab import CORPORA, RESULTS, Corpus, copy_docs, squad_article

from qa.bench import percentile

READINGS = ("wide", "progressive")
PATHS = ("narrow", "wide-after-narrow", "wide")
TEXT = ("question", "reply")
"""Fields left out of the result of a corpus that may not be redistributed."""


def sample(corpus: Corpus, questions: int, seed: int) -> list:
    """``questions`` items of the corpus's gold sets, half unanswerable where it has enough."""
    from qa.evaluation.gold import load_gold, stratified_sample

    items = [item for path in corpus.gold for item in load_gold(path)]
    unanswerable = min(questions // 2, sum(not it.answerable for it in items))
    return stratified_sample(items, questions - unanswerable, unanswerable, seed)


def ask_all(assistant, ask_with, items: list, reading: str) -> list[dict]:
    """Every turn of ``items`` (a conversation with this reading's own answers as history),
    one row each; ``ask_with(item)``, if given, is the assistant of the item's own documents."""
    from qa.evaluation.scoring import reply_right

    rows = []
    for i, item in enumerate(items, 1):
        asker, history = ask_with(item) if ask_with else assistant, []
        for turn in item.turns:
            answer = asker.ask(turn.question, history=list(history) or None)
            history += [
                {"role": "user", "content": turn.question},
                {"role": "assistant", "content": answer.text},
            ]
            t = answer.timings
            reply = answer.withheld if answer.abstained else answer.text
            rows.append(
                {
                    "id": item.id,
                    "question": turn.question,
                    "reading": reading,
                    "answerable": not turn.unanswerable,
                    "shape": answer.shape,
                    "status": answer.status,
                    "read": t.read,
                    "right": answer.status != "not_found" and reply_right(turn, reply),
                    "reply": reply,
                    "first_token_s": t.first_token_ms / 1000,
                    "total_s": t.total_ms / 1000,
                    "narrow_s": t.narrow_ms / 1000,
                    "prompt_tokens": t.prompt_tokens,
                    "prompt_eval_tokens": t.prompt_eval_tokens,
                }
            )
        print(f"\r{reading}: {i}/{len(items)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return rows


def summary(rows: list[dict]) -> dict:
    """The table's metrics of one reading's rows (None where no question applies)."""

    def share(xs: list[bool]) -> float | None:
        return sum(xs) / len(xs) if xs else None

    answerable = [r for r in rows if r["answerable"]]
    paths = Counter(r["read"] for r in rows)
    return {
        "n": len(rows),
        "first_token_p50_s": percentile([r["first_token_s"] for r in rows], 50),
        "first_token_p90_s": percentile([r["first_token_s"] for r in rows], 90),
        "answer_p50_s": percentile([r["total_s"] for r in rows], 50),
        "prompt_eval_tokens": fmean(r["prompt_eval_tokens"] for r in rows) if rows else None,
        "contains_gold": share([r["right"] for r in answerable]),
        "answered_right": share([r["status"] == "answered" and r["right"] for r in rows]),
        "answered_wrong": share([r["status"] == "answered" and not r["right"] for r in rows]),
        "unconfirmed": share([r["status"] == "unconfirmed" for r in rows]),
        "not_found": share([r["status"] == "not_found" for r in rows]),
        "abstention": share([r["status"] != "answered" for r in rows if not r["answerable"]]),
        "paths": {p: paths[p] / len(rows) for p in PATHS} if rows else {},
    }


def run(corpus: Corpus, questions: int, seed: int) -> dict:
    from qa import Assistant, Settings
    from qa.evaluation.evaluate import per_document

    missing = [p for p in (*corpus.docs, *corpus.gold) if not p.exists()] or not corpus.docs
    if missing:
        sys.exit(f"{corpus.name}: files missing ({missing}); {corpus.setup or 'see its README'}")
    items = sample(corpus, questions, seed)
    result: dict = {"corpus": corpus.name, "questions": questions, "seed": seed, "readings": {}}
    with tempfile.TemporaryDirectory() as tmp:
        docs = copy_docs(corpus, Path(tmp))
        # Prompt states stay in RAM: saved to disk by the first reading, they would spare the
        # second one prompts it never read. Its few prompts still pinned are soon replaced.
        settings = Settings(
            seeds_dir=docs, index_dir=Path(tmp) / "index", reading="wide", kv_state_files=0
        )
        wide = Assistant(settings)
        wide.index()
        progressive = Assistant(
            wide.settings.model_copy(update={"reading": "progressive"}),
            embeddings=wide.embeddings,
            llm=wide.llm,
        )
        progressive.store = wide.store
        for reading, assistant in zip(READINGS, (wide, progressive), strict=True):
            ask_with = None
            if corpus.per_document:
                alone = Path(tmp) / f"alone-{reading}"
                alone.mkdir()
                ask_with = per_document(assistant.for_documents, docs, alone)
            else:
                assistant.warm_up()
            rows = ask_all(assistant, ask_with, items, reading)
            if not corpus.redistributable:
                rows = [{k: v for k, v in r.items() if k not in TEXT} for r in rows]
            result["readings"][reading] = {"summary": summary(rows), "rows": rows}
    return result


def _cell(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def table(results: list[dict]) -> str:
    """One markdown row per corpus and reading."""
    head = (
        "| corpus | reading | n | first token p50 / p90 (s) | answer p50 (s) | prompt tokens "
        "computed | contains gold | answered right | answered wrong | unconfirmed | not found "
        "| abstention | narrow / wide after narrow / wide |"
    )
    lines = [head, "|" + "---|" * 13]
    for result in results:
        for reading, data in result["readings"].items():
            s = data["summary"]
            paths = " / ".join(_cell(s["paths"].get(p)) for p in PATHS)
            lines.append(
                f"| {result['corpus']} | {reading} | {s['n']} | "
                f"{_cell(s['first_token_p50_s'])} / {_cell(s['first_token_p90_s'])} | "
                f"{_cell(s['answer_p50_s'])} | {_cell(s['prompt_eval_tokens'], 0)} | "
                f"{_cell(s['contains_gold'])} | {_cell(s['answered_right'])} | "
                f"{_cell(s['answered_wrong'])} | {_cell(s['unconfirmed'])} | "
                f"{_cell(s['not_found'])} | {_cell(s['abstention'])} | {paths} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--article", action="append", default=[], help="A held-out SQuAD 2.0 article."
    )
    parser.add_argument(
        "--corpus", action="append", default=[], choices=["multirc", "boolq"], help="A corpus."
    )
    parser.add_argument("--questions", type=int, default=30, help="Questions per corpus.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    corpora = [squad_article(a, args.questions) for a in args.article]
    corpora += [CORPORA[name] for name in args.corpus]
    if not corpora:
        parser.error("name at least one --article or --corpus")
    results = []
    for corpus in corpora:
        result = run(corpus, args.questions, args.seed)
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = RESULTS / f"progressive-{corpus.name}.json"
        out.write_text(json.dumps(result, indent=1, default=float) + "\n")
        print(f"wrote {out}", file=sys.stderr)
        results.append(result)
    print(table(results))


if __name__ == "__main__":
    main()
