"""Choose how decisive a yes/no verdict must be before it is shown (``DECISIVE`` in
``qa/answering/yesno.py``, #33 item 4), on BoolQ questions recorded by ``collect_signals.py``.

A verdict is P(yes) from the shipped verdict (``qa/data/decision.json``) on the answering
pass's first-token odds; it is shown when ``|P(yes) - 0.5| >= margin``, else the reply is
*unconfirmed* and quotes the sentence that bears on the question. For each margin of a grid
this prints, over the questions the model answered "Yes"/"No" on: the share shown, the share
given a wrong verdict (of all), and the accuracy of the shown verdicts. The margin is chosen on
the *fit* part only (the smallest whose wrong verdicts are at most ``TARGET_WRONG`` of all
questions); ``--part held_out`` reports the chosen margin on questions never fitted on.

    python fit/collect_signals.py boolq --part fit --limit 300
    python fit/yesno_decisive.py                      # fit: the table and the choice
    python fit/collect_signals.py boolq --part held_out --limit 150
    python fit/yesno_decisive.py --part held_out --margin 0.25
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "fit" / ".cache" / "decision"
RESULTS = ROOT / "fit" / "results" / "yesno-decisive.json"
TARGET_WRONG = 0.10
GRID = [round(0.025 * i, 3) for i in range(20)]


def verdicts(part: str) -> list[tuple[float, bool]]:
    """``(P(yes), the gold answer)`` of each recorded question the model answered yes or no."""
    from qa.trust.answerability import shipped_answerability
    from qa.trust.verify import yes_no_odds

    verdict = shipped_answerability().verdict
    path = CACHE / f"boolq.{part}.full.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    out = []
    for r in rows:
        odds = yes_no_odds(r["first_token_probs"])
        yes, no = odds.get("p_yes", 0.0), odds.get("p_no", 0.0)
        if yes + no <= 0 or r["shape"] != "yesno":
            continue
        logit = math.log((yes + 1e-6) / (no + 1e-6))
        p = verdict.probability([logit]) if verdict else yes / (yes + no)
        out.append((p, bool(r["gold"]["yes"])))
    return out


def at(rows: list[tuple[float, bool]], margin: float) -> dict[str, float]:
    """Shown share, wrong verdicts (of all questions) and accuracy of the shown at ``margin``."""
    shown = [(p, y) for p, y in rows if abs(p - 0.5) >= margin]
    wrong = sum((p >= 0.5) != y for p, y in shown)
    return {
        "margin": margin,
        "shown": len(shown) / len(rows),
        "wrong": wrong / len(rows),
        "shown_accuracy": 1 - wrong / len(shown) if shown else 1.0,
        "no_right_of_no": _no_recall(shown),
    }


def _no_recall(shown: list[tuple[float, bool]]) -> float:
    """Of the "no" questions shown, the share answered "No"."""
    nos = [p for p, y in shown if not y]
    return sum(p < 0.5 for p in nos) / len(nos) if nos else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("fit", "held_out"), default="fit")
    parser.add_argument("--margin", type=float, help="report this margin (held-out runs)")
    args = parser.parse_args()
    rows = verdicts(args.part)
    table = [at(rows, m) for m in GRID]
    print(f"boolq {args.part}: {len(rows)} questions answered yes/no")
    print("| margin | shown | wrong (of all) | accuracy shown | 'no' answered no |")
    print("|---|---|---|---|---|")
    for t in table:
        print(
            f"| {t['margin']:.3f} | {t['shown']:.2f} | {t['wrong']:.2f} | "
            f"{t['shown_accuracy']:.2f} | {t['no_right_of_no']:.2f} |"
        )
    result = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    if args.part == "fit":
        chosen = next((t for t in table if t["wrong"] <= TARGET_WRONG), table[-1])
        print(f"chosen margin {chosen['margin']} (wrong <= {TARGET_WRONG} of all questions)")
        result["fit"] = {"questions": len(rows), "chosen": chosen, "table": table}
    else:
        margin = args.margin if args.margin is not None else result["fit"]["chosen"]["margin"]
        result["held_out"] = {"questions": len(rows), "at_chosen": at(rows, margin)}
        print(f"held out at {margin}: {result['held_out']['at_chosen']}")
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
