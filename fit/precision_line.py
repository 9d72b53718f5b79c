"""Place the answer threshold for the precision of asserted answers (#33 item 1), on the fit
pool's out-of-fold curves that ``fit_decision.py`` recorded (``results/decision-fit.json``).

Until #33 a withheld answer was an abstention, so the threshold was chosen to cost few right
answers (at most 0.02 of them on every source left out). Now a withheld candidate is still shown,
marked *unconfirmed* with the sentence it came from, so what the line must protect is what qa
asserts: each variant's threshold is the lowest at which at least ``PRECISION`` of the fit
pool's asserted answers are right (pooled over SQuAD and MultiRC, out of fold). Nothing here
reads the seed, the gated sets or any held-out question.

    python fit/precision_line.py            # print the choice
    python fit/precision_line.py --write    # set it in qa/data/decision.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIT = ROOT / "fit" / "results" / "decision-fit.json"
SHIPPED = ROOT / "qa" / "data" / "decision.json"
PRECISION = 0.75
"""Asserted answers must be right at least three times in four on the fit pool."""


def line(curve: list[dict[str, float]], precision: float = PRECISION) -> dict[str, float]:
    """The lowest point of ``curve`` whose asserted answers are right at least ``precision``
    of the time (the last point if none is)."""
    ok = [p for p in curve if p["coverage"] > 0 and 1 - p["risk"] >= precision]
    return min(ok, key=lambda p: p["threshold"]) if ok else curve[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="set it in qa/data/decision.json")
    args = parser.parse_args()
    variants = json.loads(FIT.read_text())["decision"]["variants"]
    shipped = json.loads(SHIPPED.read_text())
    for v in shipped["variants"]:
        point = line(variants[v["name"]]["curve"])
        print(
            f"{v['name']}: threshold {v['threshold']} -> {point['threshold']} (fit pool, out of "
            f"fold: precision {1 - point['risk']:.2f}, answered right {point['answered_right']:.2f}"
            f", coverage {point['coverage']:.2f})"
        )
        v["threshold"] = point["threshold"]
    if args.write:
        SHIPPED.write_text(json.dumps(shipped) + "\n")
        print(f"written to {SHIPPED}")


if __name__ == "__main__":
    main()
