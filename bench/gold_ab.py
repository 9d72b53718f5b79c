"""The shipped decision against one fitted per corpus (#26), side by side on the same answers.

For each corpus named, indexed alone as a user's whole corpus (none of them was used to fit
the shipped decision: ``fit/results/decision-splits.json``):

1. ``Assistant.generate_gold`` writes its gold set (kept in ``bench/.cache/gold_ab/`` and
   reused by a second run, so a run can be split in two);
2. ``Assistant.calibrate_synthetic`` asks it and fits the decision (nothing is written);
3. the corpus's *real* questions (a seeded sample, half answerable and half not, for a SQuAD
   article; every item for the others) are asked once through the shipped chain
   (conversations turn by turn with the shipped answers as history), and both decisions
   judge the same answers: the shipped one at its threshold, the fitted one (same signals,
   its own weights) at the threshold the calibration chose. Reported per gold set: right
   (contains-gold, facts or the best candidate), abstention on unanswerable, false abstention,
   yes/no verdicts, and each decision's AUC over the supported answers it judges (P(right)
   against right/wrong). The learned decision judges short answers only: a yes/no, open or
   list answer is shown as the chain showed it under both.

The gap (#33 item 6): every answer the generated set got is recorded too, so each generated
row is judged like a real one (``generated_rows``, by how its look-alike was made); the
evidence-removal set written beside the generated one (``qa.evaluation.generate.write_removed``)
is asked item by item of its own document (``removed_rows``); ``--report`` then sets the
decision's AUC on the generated rows (out of fold, from the calibration's ``fits``) beside its
AUC on the real questions. A generated set is only as good as that gap is small.

Corpora: ``--article <Title>`` (a held-out SQuAD 2.0 article of ``../shared/datasets/squad2``),
or ``--corpus`` one of ``CORPORA`` (``seed``, ``multirc``, ``boolq``).

    python bench/gold_ab.py --article Scottish_Parliament --count 32 --real 24
    python bench/gold_ab.py --corpus seed --count 28
    python bench/gold_ab.py --report          # the tables of every saved result

Raw results go to ``bench/results/gold_ab-<corpus>.json`` (every real and generated item),
a table to stdout.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATASETS = ROOT.parent / "shared" / "datasets" / "squad2"
CACHE = ROOT / "bench" / ".cache" / "gold_ab"
RESULTS = ROOT / "bench" / "results"


@dataclass(frozen=True)
class Corpus:
    """One corpus measured: its documents (indexed together), its real gold sets, how many
    of their items are asked (None: all) and whether each item is asked of an index of only
    its own ``sources`` (as the gate asks BoolQ) instead of the whole corpus."""

    name: str
    docs: tuple[Path, ...]
    gold: tuple[Path, ...]
    real: int | None = None
    per_document: bool = False
    setup: str = ""  # what writes the files when they are missing
    redistributable: bool = True  # False: no text of it in the committed result


CORPORA = {
    "seed": Corpus(
        "seed",
        tuple(sorted((ROOT / "seeds").glob("*.txt"))),
        (ROOT / "evals" / "gold.jsonl", ROOT / "evals" / "open.jsonl"),
    ),
    "multirc": Corpus(
        "multirc",
        tuple(sorted((ROOT / "evals" / "multirc" / "docs").glob("*.txt"))),
        (ROOT / "evals" / "multirc" / "multirc.jsonl",),
        setup="python evals/samples.py multirc",
        redistributable=False,  # research use only (evals/multirc/README.md)
    ),
    "boolq": Corpus(
        "boolq",
        tuple(sorted((ROOT / "evals" / "boolq" / "docs").glob("*.txt"))),
        (ROOT / "evals" / "boolq" / "boolq.jsonl",),
        per_document=True,
    ),
}


def squad_article(article: str, real: int) -> Corpus:
    """A held-out SQuAD 2.0 article as a corpus of its own, ``real`` of its questions."""
    splits = json.loads((ROOT / "fit" / "results" / "decision-splits.json").read_text())
    if article in splits["squad"]["fit"]:
        sys.exit(f"{article} is in the shipped decision's fit part; name a held-out article")
    return Corpus(article, (DATASETS / f"{article}.txt",), (DATASETS / f"{article}.jsonl",), real)


def judge(answer, turn, decision, threshold):
    """(shown, P(right), supported, right) of ``answer`` under ``decision`` at ``threshold``;
    P is None where the decision does not judge (no supported answer, another shape)."""
    from qa.evaluation.scoring import reply_right

    supported = not answer.abstained or bool(answer.withheld)
    reply = answer.withheld if answer.abstained else answer.text
    right = supported and reply_right(turn, reply)
    variant = next((v for v in decision.variants if v.name == answer.decided_by), None)
    p = None
    if supported and variant is not None and answer.signals is not None:
        x = variant.probe.vector(answer.features, answer.signals)
        p = variant.probe.probability(x) if x is not None else None
    shown = supported and (p is None or p >= threshold)
    if p is None:  # not judged by a learned decision: as the chain showed it
        shown = not answer.abstained
    return shown, p, supported, right


def metrics(rows: list[dict], key: str) -> dict:
    """The metrics of ``rows`` (one per asked question) as decision ``key`` would show them;
    a metric with no question it applies to is None."""
    from qa.trust.adapt import auc

    def share(xs: list[bool]) -> float | None:
        return sum(xs) / len(xs) if xs else None

    ans = [r for r in rows if r["answerable"]]
    un = [r for r in rows if not r["answerable"]]
    yesno = [r for r in ans if r.get("verdict_right") is not None]
    judged = [r for r in rows if r[f"p_{key}"] is not None]
    return {
        "right": share([r[f"shown_{key}"] and r["right"] for r in ans]),
        "abstention": share([not r[f"shown_{key}"] for r in un]),
        "false_abstention": share([not r[f"shown_{key}"] for r in ans]),
        "yesno": share([r[f"shown_{key}"] and r["verdict_right"] for r in yesno]),
        "auc": auc([r[f"p_{key}"] for r in judged], [r["right"] for r in judged]),
        "judged": len(judged),
        "answerable": len(ans),
        "unanswerable": len(un),
        "yesno_n": len(yesno),
    }


def ask_and_judge(asker, item, decisions) -> list[dict]:
    """Ask every turn of ``item`` once (a conversation with the shipped answers as history)
    and judge each answer under every ``(key, decision, threshold)``."""
    from qa.evaluation.scoring import reply_right

    rows, history = [], []
    for turn in item.turns:
        answer = asker.ask(turn.question, history=list(history) or None)
        history += [
            {"role": "user", "content": turn.question},
            {"role": "assistant", "content": answer.text},
        ]
        row = {"id": item.id, "question": turn.question, "answerable": not turn.unanswerable}
        for key, decision, threshold in decisions:
            shown, p, supported, right = judge(answer, turn, decision, threshold)
            row |= {f"shown_{key}": shown, f"p_{key}": p}
        reply = answer.withheld if answer.abstained else answer.text
        verdict = None
        if turn.yes is not None:  # the verdict alone, as the eval's yesno_acc reads it
            verdict = supported and reply_right(replace(turn, facts=[]), reply)
        row |= {"supported": supported, "right": right, "verdict_right": verdict}
        row |= {"reply": reply, "expected": turn.answers or turn.facts or turn.correct}
        row |= {"yes": turn.yes, "shape": answer.shape, "gold_shape": turn.shape}
        row |= {"decided_by": answer.decided_by, "features": answer.features}
        rows.append(row)
    return rows


def record_answers(assistant) -> dict:
    """Every answer ``assistant`` gives to a question asked without history, by question,
    until ``del assistant.ask``: the generated items' answers, round trips included, as the
    calibration saw them."""
    asked: dict = {}
    ask = assistant.ask

    def recording(question, history=None, **kwargs):
        answer = ask(question, history=history, **kwargs)
        if not history:
            asked[question] = answer
        return answer

    assistant.ask = recording
    return asked


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def judge_generated(records: list[dict], asked: dict, decisions) -> list[dict]:
    """One row per generated item whose answer was recorded, judged like the real rows, with
    its kind and how it was made (``corpus swap`` for a set from before #33 item 6). The
    fitted decision's P here is in sample (it was fitted on these rows): read its out-of-fold
    AUC from ``fits``."""
    from qa.evaluation.gold import parse_gold_item

    rows = []
    for raw in records:
        answer = asked.get(raw["question"])
        if answer is None:
            continue
        turn = parse_gold_item(raw, raw["id"]).turns[0]
        meta = raw.get("generated", {})
        how = meta.get("how") or ("corpus swap" if meta.get("swapped") else meta.get("kind"))
        row = {"id": raw["id"], "kind": meta.get("kind"), "how": how}
        row["answerable"] = not turn.unanswerable
        for key, decision, threshold in decisions:
            shown, p, supported, right = judge(answer, turn, decision, threshold)
            row |= {f"shown_{key}": shown, f"p_{key}": p}
        row |= {"supported": supported, "right": right, "shape": answer.shape}
        rows.append(row | {"features": answer.features})
    return rows


def removed_set(gold: Path, made) -> Path | None:
    """The evidence-removal set next to ``gold`` (written now when ``made`` has one; an
    earlier run's otherwise), or None (a generator from before #33 item 6 makes none)."""
    try:
        from qa.evaluation.generate import removed_path, write_removed
    except ImportError:
        return None
    if made is not None and getattr(made, "removed", None):
        return write_removed(made.removed, gold)
    path = removed_path(gold)
    return path if path.exists() else None


def ask_removed(assistant, path: Path, decisions, tmp: Path) -> list[dict]:
    """Ask each evidence-removal item of an index of only its own document (its passage
    without the answer's sentence), as ``qa eval --per-document`` does; judged like the
    real rows."""
    from qa.evaluation.evaluate import per_document
    from qa.evaluation.gold import load_gold

    alone = tmp / "removed"
    alone.mkdir()
    ask_with = per_document(assistant.for_documents, path.parent / "docs", alone)
    rows = []
    items = load_gold(path)
    for i, item in enumerate(items, 1):
        rows += ask_and_judge(ask_with(item), item, decisions)
        _progress(i, len(items))
    return rows


def copy_docs(corpus: Corpus, tmp: Path) -> Path:
    """A ``docs`` folder under ``tmp`` holding a copy of ``corpus``'s documents (a user's whole
    corpus, indexed alone)."""
    docs = tmp / "docs"
    docs.mkdir()
    for path in corpus.docs:
        shutil.copy(path, docs / path.name)
    return docs


def run(corpus: Corpus, count: int, seed: int, tag: str = "", samples: int = 0) -> dict:
    from qa import Assistant, Settings
    from qa.evaluation.evaluate import per_document
    from qa.evaluation.gold import load_gold, stratified_sample
    from qa.trust.answerability import shipped_answerability

    missing = [p for p in (*corpus.docs, *corpus.gold) if not p.exists()] or not corpus.docs
    if missing:
        sys.exit(f"{corpus.name}: files missing ({missing}); {corpus.setup or 'see its README'}")
    cache = CACHE / (corpus.name + tag)
    cache.mkdir(parents=True, exist_ok=True)
    gold = cache / f"generated-{count}-{seed}.jsonl"
    with tempfile.TemporaryDirectory() as tmp:
        docs = copy_docs(corpus, Path(tmp))
        # Sampled answers are recorded (features["agreement"]), never used to withhold.
        settings = Settings(
            seeds_dir=docs,
            index_dir=Path(tmp) / "index",
            agreement_samples=samples,
            agreement_threshold=0.0,
        )
        assistant = Assistant(settings)
        t0 = time.perf_counter()
        assistant.index()
        index_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        asked = record_answers(assistant)
        # Generated now (and the round trips' answers reused) unless a first run left it.
        cal = assistant.calibrate_synthetic(
            gold, count=count, seed=seed, write=False, ratings=False, progress=_progress
        )
        del assistant.ask  # the class's own again
        seconds = time.perf_counter() - t0
        rejected = dict(cal.made.rejected) if cal.made else {}
        decisions = (
            ("shipped", shipped_answerability(), assistant.answer_threshold),
            ("fitted", cal.fitted.answerability, cal.fitted.threshold),
        )
        ask_with = None
        if corpus.per_document:
            alone = Path(tmp) / "alone"
            alone.mkdir()
            ask_with = per_document(assistant.for_documents, docs, alone)
        sets, t2 = {}, time.perf_counter()
        for path in corpus.gold:
            items = load_gold(path)
            if corpus.real is not None:
                n = corpus.real
                items = stratified_sample(items, n - n // 2, n // 2, seed)
            rows = []
            for i, item in enumerate(items, 1):
                asker = ask_with(item) if ask_with else assistant
                rows += ask_and_judge(asker, item, decisions)
                _progress(i, len(items))
            sets[path.stem] = {key: metrics(rows, key) for key, _, _ in decisions}
            sets[path.stem]["rows"] = rows
        real_s = time.perf_counter() - t2
        generated_rows = judge_generated(_lines(gold), asked, decisions)
        removed_path = removed_set(gold, cal.made)
        removed_rows, t3 = [], time.perf_counter()
        if removed_path is not None:
            removed_rows = ask_removed(assistant, removed_path, decisions, Path(tmp))
        removed_s = time.perf_counter() - t3
    return {
        "corpus": corpus.name + tag,
        "docs": [p.name for p in corpus.docs],
        "asked": "each item over its own sources" if corpus.per_document else "over the corpus",
        "count": count,
        "seed": seed,
        "generated": _lines(gold),
        "generated_rows": generated_rows,
        "removed": _lines(removed_path) if removed_path else [],
        "removed_rows": removed_rows,
        "rejected": rejected,
        "generated_now": cal.generated,
        "seconds": {
            "index": index_s,
            "generate_and_calibrate": seconds,
            "real": real_s,
            "removed": removed_s,
        },
        "thresholds": {key: t for key, _, t in decisions},
        "fits": [vars(f) for f in cal.fitted.fits],
        "generated_curve": {
            "before": [vars(p) for p in cal.fitted.before],
            "after": [vars(p) for p in cal.fitted.after],
        },
        "sets": sets,
    }


TEXT_FIELDS = ("question", "reply", "expected", "features")


def without_text(result: dict) -> dict:
    """``result`` with no text of the corpus: rows keep their ids, labels and probabilities,
    generated items their id, kind and source chunk."""
    sets = {
        name: s
        | {"rows": [{k: v for k, v in r.items() if k not in TEXT_FIELDS} for r in s["rows"]]}
        for name, s in result["sets"].items()
    }
    generated = [
        {"id": g["id"], "kind": g["generated"]["kind"], "chunk_id": g["generated"]["chunk_id"]}
        for g in result["generated"]
    ]
    return result | {"sets": sets, "generated": generated}


def _progress(done: int, total: int) -> None:
    print(f"  {done}/{total}", file=sys.stderr, flush=True)


def _sets(result: dict) -> dict:
    """A result's gold sets (a result written before corpora had several: its article's)."""
    if "sets" in result:
        return result["sets"]
    real = result["real"]
    rows = result["rows"]
    for key in ("shipped", "fitted"):
        real[key].setdefault("right", real[key].get("contains_gold"))
    return {result["article"]: real | {"rows": rows}}


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def table(results: list[dict]) -> str:
    lines = [
        "| corpus | gold set | decision | threshold | right | abstention on unanswerable | "
        "false abstention | yes/no | AUC (real) | AUC (generated, out of fold) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        fit = next((f for f in r["fits"] if f["rows"]), {})
        for name, s in _sets(r).items():
            for key in ("shipped", "fitted"):
                m = s[key]
                cells = [
                    r.get("corpus", r.get("article")),
                    name,
                    key,
                    f"{r['thresholds'][key]:.2f}",
                    _cell(m["right"]),
                    _cell(m["abstention"]),
                    _cell(m["false_abstention"]),
                    _cell(m.get("yesno")),
                    _cell(m["auc"]),
                    _cell(fit.get(f"{key}_auc")),
                ]
                lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def best_at(rows: list[dict], key: str, floor: float = 0.80) -> dict | None:
    """The threshold (0.05 grid) with the most abstention on the real unanswerable questions
    while right answers stay >= ``floor``: where the curve itself allows (chosen on the
    answers' labels, so an upper bound, not an operating point)."""
    best = None
    for t in (round(0.05 * i, 2) for i in range(20)):
        shown = [
            r["supported"] and (r[f"p_{key}"] is None or r[f"p_{key}"] >= t)
            if r[f"p_{key}"] is not None
            else r[f"shown_{key}"]
            for r in rows
        ]
        ans = [(r, s) for r, s in zip(rows, shown, strict=True) if r["answerable"]]
        un = [s for r, s in zip(rows, shown, strict=True) if not r["answerable"]]
        gold = sum(s and r["right"] for r, s in ans) / max(len(ans), 1)
        abst = sum(not s for s in un) / max(len(un), 1)
        if gold >= floor - 1e-9 and (best is None or abst > best["abstention"]):
            best = {"threshold": t, "right": gold, "abstention": abst}
    return best


def _auc_of(rows: list[dict], key: str) -> float | None:
    from qa.trust.adapt import auc

    judged = [r for r in rows if r.get(f"p_{key}") is not None]
    return auc([r[f"p_{key}"] for r in judged], [r["right"] for r in judged])


def _gap(generated: float | None, real: float | None) -> str:
    return "–" if generated is None or real is None else f"{generated - real:+.2f}"


def gap_table(results: list[dict]) -> str:
    """The gap (#33 item 6): the decision's AUC on the generated rows against its AUC on the
    corpus's real questions, per result, and how hard each way of making a look-alike was."""
    lines = [
        "| corpus | generated look-alikes (how: n) | AUC generated, shipped | "
        "AUC generated, fitted (out of fold) | AUC real, shipped | AUC real, fitted | "
        "gap, shipped | gap, fitted | AUC generated + evidence removed, shipped |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        fit = next((f for f in r["fits"] if f["rows"]), {})
        real = next(iter(_sets(r).values()))
        hows: dict[str, int] = {}
        for g in r["generated"]:
            meta = g.get("generated", {})
            if meta.get("kind") in ("unanswerable", "no"):
                how = meta.get("how") or "corpus swap"
                hows[how] = hows.get(how, 0) + 1
        removed = r.get("removed_rows", [])
        if removed:
            hows["evidence removed (own set)"] = len(removed)
        gen = {k: fit.get(f"{k}_auc") for k in ("shipped", "fitted")}
        rea = {k: real[k]["auc"] for k in ("shipped", "fitted")}

        both = r.get("generated_rows", []) + removed
        cells = [
            r.get("corpus", r.get("article")),
            ", ".join(f"{h}: {n}" for h, n in sorted(hows.items(), key=lambda x: -x[1])),
            _cell(gen["shipped"]),
            _cell(gen["fitted"]),
            _cell(rea["shipped"]),
            _cell(rea["fitted"]),
            _gap(gen["shipped"], rea["shipped"]),
            _gap(gen["fitted"], rea["fitted"]),
            _cell(_auc_of(both, "shipped")) if removed else "–",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "| corpus | how | look-alikes | answered (supported) | wrong claims under the shipped "
        "decision | mean P(right), shipped |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        rows = r.get("generated_rows", [])
        groups: dict[str, list[dict]] = {}
        for row in rows:
            if not row["answerable"] or row["kind"] == "no":
                groups.setdefault(row["how"] or "corpus swap", []).append(row)
        if r.get("removed_rows"):
            groups["evidence removed"] = r["removed_rows"]
        for how, group in sorted(groups.items()):
            ps = [x["p_shipped"] for x in group if x.get("p_shipped") is not None]
            claims = sum(x["shown_shipped"] and not x["right"] for x in group)
            cells = [
                r.get("corpus", r.get("article")),
                how,
                str(len(group)),
                f"{sum(x['supported'] for x in group)}",
                f"{claims} ({claims / len(group):.2f})",
                _cell(sum(ps) / len(ps) if ps else None),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


AGREEMENT_LINES = (0.34, 0.5, 0.67, 1.0)


def agreement_table(results: list[dict]) -> str:
    """Self-agreement as a signal (#33 item 3), for results run with ``--samples``: its AUC
    alone and beside the shipped decision's P(right), on the real questions and on the
    generated ones, and what requiring each share of agreeing samples does to the answers
    the shipped decision asserts on the real questions."""
    from qa.trust.adapt import auc

    def aucs(rows: list[dict]) -> list[str]:
        judged = [
            r
            for r in rows
            if "agreement" in (r.get("features") or {}) and r["p_shipped"] is not None
        ]
        labels = [r["right"] for r in judged]
        agree = [r["features"]["agreement"] for r in judged]
        p = [r["p_shipped"] for r in judged]
        both = [a + b for a, b in zip(agree, p, strict=True)]
        return [str(len(judged))] + [_cell(auc(xs, labels)) for xs in (agree, p, both)]

    lines = [
        "| corpus | rows | AUC agreement | AUC P(right) | AUC agreement + P(right) | "
        "generated rows | AUC agreement | AUC P(right) | AUC agreement + P(right) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rules = [
        "| corpus | agreement required | asserted | asserted right | asserted wrong | precision |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        real = [row for s in _sets(r).values() for row in s["rows"]]
        if not any("agreement" in (row.get("features") or {}) for row in real):
            continue
        name = r.get("corpus", r.get("article"))
        lines.append(
            "| " + " | ".join([name, *aucs(real), *aucs(r.get("generated_rows", []))]) + " |"
        )
        for line in (0.0, *AGREEMENT_LINES):
            shown = [
                row
                for row in real
                if row["shown_shipped"]
                and (row.get("features") or {}).get("agreement", 1.0) >= line
            ]
            right = sum(row["right"] for row in shown)
            cells = [name, f"{line:.2f}", str(len(shown)), str(right), str(len(shown) - right)]
            cells.append(_cell(right / len(shown)) if shown else "–")
            rules.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines + [""] + rules)


def report() -> None:
    """The tables of every ``bench/results/gold_ab-*.json``."""
    results = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("gold_ab-*.json"))]
    print(table(results))
    print()
    print("| corpus | gold set | decision | best abstention with right >= 0.80 (threshold) |")
    print("|---|---|---|---|")
    for r in results:
        for name, s in _sets(r).items():
            if not any(not row["answerable"] for row in s["rows"]):
                continue
            for key in ("shipped", "fitted"):
                b = best_at(s["rows"], key)
                cell = "none" if b is None else f"{b['abstention']:.2f} ({b['threshold']:.2f})"
                print(f"| {r.get('corpus', r.get('article'))} | {name} | {key} | {cell} |")
    gapped = [r for r in results if "generated_rows" in r]
    if gapped:
        print()
        print(gap_table(gapped))
    agreed = agreement_table(results)
    if agreed.count("\n") > 4:
        print()
        print(agreed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", action="store_true", help="Tables of the saved results.")
    parser.add_argument(
        "--article", action="append", default=[], help="A held-out SQuAD 2.0 article."
    )
    parser.add_argument(
        "--corpus", action="append", default=[], choices=sorted(CORPORA), help="A named corpus."
    )
    parser.add_argument("--count", type=int, default=36, help="Generated items to ask for.")
    parser.add_argument("--real", type=int, default=30, help="Real questions per SQuAD article.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--samples",
        type=int,
        default=0,
        help="Answers sampled per short answer to record its self-agreement (#33 item 3).",
    )
    parser.add_argument(
        "--tag", default="", help="Suffix of the result's name, to keep a second run of a corpus."
    )
    args = parser.parse_args()
    if args.report:
        report()
        return
    corpora = [squad_article(a, args.real) for a in args.article]
    corpora += [CORPORA[name] for name in args.corpus]
    results = []
    for corpus in corpora:
        result = run(corpus, args.count, args.seed, args.tag, args.samples)
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = RESULTS / f"gold_ab-{corpus.name}{args.tag}.json"
        if not corpus.redistributable:  # the whole result stays in the (ignored) cache
            full = CACHE / (corpus.name + args.tag) / "result.json"
            full.write_text(json.dumps(result, indent=1, default=float) + "\n")
            result = without_text(result)
        out.write_text(json.dumps(result, indent=1, default=float) + "\n")
        results.append(result)
        print(f"wrote {out}", file=sys.stderr)
    print(table(results))


if __name__ == "__main__":
    main()
