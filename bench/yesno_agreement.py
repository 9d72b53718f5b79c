"""Does the sentence shown after "Yes."/"No." say what the verdict says? (#26 item 4)

Reads ``qa eval`` reports and prints, per yes/no answer shown, the verdict, the sentence and the
gold, then two rates: right (the verdict matches the gold), and agreement by an automatic proxy
(``--proxy``): the model reads the shown sentence alone with the question (the reader of
:mod:`qa.answering.yesno`) and its odds, at ``SENTENCE_LINE``, must give the same verdict. The
proxy is the check the chain itself now makes, so it is a consistency check, not a judge; the
printed lines are what to read by hand (the figures in docs/benchmarks.md are hand-read).

    python bench/yesno_agreement.py evals/reports/<run>/report.json [...] [--proxy]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

_VERDICT = re.compile(r"^(Yes|No)\. (.*?)(?: \[\d+\])+$", re.DOTALL)


def shown_yes_no(report: Path) -> list[dict]:
    """Every shown yes/no answer of a report: question, verdict, sentence, gold, latency."""
    out = []
    for item in json.loads(report.read_text())["items"]:
        for turn in item["turns"]:
            found = _VERDICT.match(turn.get("answer", ""))
            if turn.get("shape") != "yesno" or turn.get("abstained") or not found:
                continue
            out.append(
                {
                    "id": item["id"],
                    "question": turn.get("standalone") or turn["question"],
                    "verdict": found.group(1) == "Yes",
                    "sentence": found.group(2),
                    "expected": turn.get("expected", ""),
                    "passed": turn.get("passed"),
                }
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", type=Path)
    parser.add_argument("--proxy", action="store_true", help="read each sentence with the model")
    args = parser.parse_args()
    read = None
    if args.proxy:
        from qa import Assistant
        from qa.answering.yesno import build_reader

        read = build_reader(Assistant().llm)
    for report in args.reports:
        rows = shown_yes_no(report)
        agree = 0
        for r in rows:
            mark = ""
            if read is not None:
                from qa.answering.shapes import INSTRUCTIONS
                from qa.answering.yesno import SENTENCE_LINE, log_odds, probability

                logit = log_odds(read([r["sentence"]], r["question"] + INSTRUCTIONS["yesno"]))
                says = logit is not None and probability(logit, SENTENCE_LINE) >= 0.5
                agree += says == r["verdict"]
                mark = "agrees" if says == r["verdict"] else "DISAGREES"
            verdict = "Yes" if r["verdict"] else "No"
            print(f"{r['id']}\t{verdict}\tright={r['passed']}\t{mark}\n  Q: {r['question']}")
            print(f"  S: {r['sentence']}")
        if read is not None and rows:
            print(f"{report}: {len(rows)} shown, proxy agreement {agree / len(rows):.2f}")


if __name__ == "__main__":
    main()
