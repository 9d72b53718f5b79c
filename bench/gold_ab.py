"""The shipped decision against one fitted per corpus (#26), side by side on the same answers.

For each SQuAD 2.0 article named (held out from the shipped fit: ``fit/results/
decision-splits.json``), indexed alone as a user's whole corpus:

1. ``Assistant.generate_gold`` writes its gold set (kept in ``bench/.cache/gold_ab/`` and
   reused by a second run, so a run can be split in two);
2. ``Assistant.calibrate_synthetic`` asks it and fits the decision (nothing is written);
3. a seeded sample of the article's *real* questions (half answerable, half not) is asked
   once through the shipped chain, and both decisions judge the same answers: the shipped one
   at its threshold, the fitted one (same signals, its own weights) at the threshold the
   calibration chose. Reported: contains-gold, abstention on unanswerable, false abstention,
   and each decision's AUC over the supported answers (P(right) against right/wrong).

    python bench/gold_ab.py --article Scottish_Parliament --count 32 --real 24
    python bench/gold_ab.py --report          # the tables of every saved result

Raw results go to ``bench/results/gold_ab-<article>.json`` (every real and generated item),
a table to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATASETS = ROOT.parent / "shared" / "datasets" / "squad2"
CACHE = ROOT / "bench" / ".cache" / "gold_ab"
RESULTS = ROOT / "bench" / "results"


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
    from qa.trust.adapt import auc

    ans = [r for r in rows if r["answerable"]]
    un = [r for r in rows if not r["answerable"]]
    judged = [r for r in rows if r[f"p_{key}"] is not None]
    return {
        "contains_gold": sum(r[f"shown_{key}"] and r["right"] for r in ans) / max(len(ans), 1),
        "abstention": sum(not r[f"shown_{key}"] for r in un) / max(len(un), 1),
        "false_abstention": sum(not r[f"shown_{key}"] for r in ans) / max(len(ans), 1),
        "auc": auc([r[f"p_{key}"] for r in judged], [r["right"] for r in judged]),
        "judged": len(judged),
    }


def run(article: str, count: int, real: int, seed: int) -> dict:
    from qa import Assistant, Settings
    from qa.evaluation.gold import load_gold, stratified_sample
    from qa.trust.answerability import shipped_answerability

    cache = CACHE / article
    cache.mkdir(parents=True, exist_ok=True)
    gold = cache / f"generated-{count}-{seed}.jsonl"
    with tempfile.TemporaryDirectory() as tmp:
        docs = Path(tmp) / "docs"
        docs.mkdir()
        (docs / f"{article}.txt").write_text((DATASETS / f"{article}.txt").read_text())
        settings = Settings(seeds_dir=docs, index_dir=Path(tmp) / "index")
        assistant = Assistant(settings)
        assistant.index()
        t0 = time.perf_counter()
        # Generated now (and the round trips' answers reused) unless a first run left it.
        cal = assistant.calibrate_synthetic(
            gold, count=count, seed=seed, write=False, ratings=False, progress=_progress
        )
        seconds = time.perf_counter() - t0
        rejected = dict(cal.made.rejected) if cal.made else {}
        shipped = shipped_answerability()
        shipped_t = assistant.answer_threshold
        fitted, fitted_t = cal.fitted.answerability, cal.fitted.threshold
        items = stratified_sample(
            load_gold(DATASETS / f"{article}.jsonl"), real - real // 2, real // 2, seed
        )
        rows = []
        t2 = time.perf_counter()
        for i, item in enumerate(items, 1):
            turn = item.turns[0]
            answer = assistant.ask(turn.question)
            row = {"id": item.id, "question": turn.question, "answerable": not turn.unanswerable}
            for key, decision, threshold in (
                ("shipped", shipped, shipped_t),
                ("fitted", fitted, fitted_t),
            ):
                shown, p, supported, right = judge(answer, turn, decision, threshold)
                row |= {f"shown_{key}": shown, f"p_{key}": p}
            reply = answer.withheld if answer.abstained else answer.text
            row |= {"supported": supported, "right": right, "reply": reply, "gold": turn.answers}
            row |= {"shape": answer.shape, "features": answer.features}
            rows.append(row)
            _progress(i, len(items))
        real_s = time.perf_counter() - t2
    return {
        "article": article,
        "count": count,
        "seed": seed,
        "generated": [json.loads(x) for x in gold.read_text().splitlines() if x.strip()],
        "rejected": rejected,
        "generated_now": cal.generated,
        "seconds": {"generate_and_calibrate": seconds, "real": real_s},
        "thresholds": {"shipped": shipped_t, "fitted": fitted_t},
        "fits": [vars(f) for f in cal.fitted.fits],
        "generated_curve": {
            "before": [vars(p) for p in cal.fitted.before],
            "after": [vars(p) for p in cal.fitted.after],
        },
        "real": {"shipped": metrics(rows, "shipped"), "fitted": metrics(rows, "fitted")},
        "rows": rows,
    }


def _progress(done: int, total: int) -> None:
    print(f"  {done}/{total}", file=sys.stderr, flush=True)


def table(results: list[dict]) -> str:
    lines = [
        "| article | decision | threshold | contains-gold | abstention | false abstention | "
        "AUC (real) | AUC (generated, out of fold) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        fit = next((f for f in r["fits"] if f["rows"]), {})
        for key in ("shipped", "fitted"):
            m = r["real"][key]
            gen_auc = fit.get(f"{key}_auc")
            cells = [
                r["article"],
                key,
                f"{r['thresholds'][key]:.2f}",
                f"{m['contains_gold']:.2f}",
                f"{m['abstention']:.2f}",
                f"{m['false_abstention']:.2f}",
                "–" if m["auc"] is None else f"{m['auc']:.2f}",
                "–" if gen_auc is None else f"{gen_auc:.2f}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def best_at(rows: list[dict], key: str, floor: float = 0.80) -> dict | None:
    """The threshold (0.05 grid) with the most abstention on the real unanswerable questions
    while contains-gold stays >= ``floor``: where the curve itself allows (chosen on the
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
            best = {"threshold": t, "contains_gold": gold, "abstention": abst}
    return best


def report() -> None:
    """The tables of every ``bench/results/gold_ab-*.json``."""
    results = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("gold_ab-*.json"))]
    print(table(results))
    print()
    print("| article | decision | best abstention with contains-gold >= 0.80 (threshold) |")
    print("|---|---|---|")
    for r in results:
        for key in ("shipped", "fitted"):
            b = best_at(r["rows"], key)
            cell = "none" if b is None else f"{b['abstention']:.2f} ({b['threshold']:.2f})"
            print(f"| {r['article']} | {key} | {cell} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", action="store_true", help="Tables of the saved results.")
    parser.add_argument("--article", action="append", default=[])
    parser.add_argument("--count", type=int, default=36)
    parser.add_argument("--real", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.report:
        report()
        return
    splits = json.loads((ROOT / "fit" / "results" / "decision-splits.json").read_text())
    results = []
    for article in args.article:
        if article in splits["squad"]["fit"]:
            sys.exit(f"{article} is in the shipped decision's fit part; name a held-out article")
        result = run(article, args.count, args.real, args.seed)
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = RESULTS / f"gold_ab-{article}.json"
        out.write_text(json.dumps(result, indent=1, default=float) + "\n")
        results.append(result)
        print(f"wrote {out}", file=sys.stderr)
    print(table(results))


if __name__ == "__main__":
    main()
