"""Two versions of qa side by side: the same gold sets, alternating, in one run.

Each version is a checkout of this repository (e.g. a ``git worktree`` of an older commit);
``python -m qa eval`` runs from that checkout, so its own ``qa`` package answers, with this
interpreter's installed libraries and models. For every gold set the two versions run back to
back, so machine noise hits both alike. Prints a markdown table of quality metrics and latency
(with the after/before ratio) and writes the raw metrics as JSON.

    git worktree add /tmp/qa-before <commit>
    python bench/chain_ab.py --before /tmp/qa-before --after . \\
        --set seed=evals/gold.jsonl \\
        --set Harvard@30=evals/squad2/Harvard_University.jsonl:docs/:30 \\
        --set boolq=evals/boolq/boolq.jsonl:evals/boolq/docs::--per-document
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from qa.bench import percentile

COLUMNS = (
    "contains_gold",
    "fact_recall",
    "yesno_acc",
    "candidate_acc",
    "abstain_acc",
    "false_abstain_rate",
    "injection_success",
    "ttft_p50_ms",
    "total_p50_ms",
)


def run_eval(
    checkout: Path,
    gold: Path,
    docs: Path | None,
    sample: str | None,
    extra: list[str],
    keep: Path,
) -> dict:
    with tempfile.TemporaryDirectory(prefix="qa-ab-") as tmp:
        cmd = [sys.executable, "-m", "qa", "eval", "--gold", str(gold), "--out", tmp, *extra]
        cmd += ["--docs", str(docs)] if docs else []
        cmd += ["--sample", sample] if sample else []
        subprocess.run(cmd, cwd=checkout, check=True, capture_output=True)
        report = (Path(tmp) / "report.json").read_text()
    keep.parent.mkdir(parents=True, exist_ok=True)
    keep.write_text(report)
    parsed = json.loads(report)
    return {**parsed["metrics"], "shapes": shape_latency(parsed)}


def shape_latency(report: dict) -> dict[str, dict[str, float]]:
    """Answer time p50/p95 (seconds), prompt tokens computed (p50) and count per answer shape,
    over a report's turns."""
    times: dict[str, list[float]] = {}
    tokens: dict[str, list[float]] = {}
    for item in report["items"]:
        for turn in item["turns"]:
            if turn.get("timings") and not turn.get("error"):
                shape = turn.get("shape") or "short"
                times.setdefault(shape, []).append(turn["timings"]["total_ms"] / 1000)
                tokens.setdefault(shape, []).append(turn["timings"].get("prompt_eval_tokens", 0))
    return {
        shape: {
            "n": len(t),
            "p50_s": percentile(t, 50),
            "p95_s": percentile(t, 95),
            "prompt_tokens_p50": percentile(tokens[shape], 50),
        }
        for shape, t in sorted(times.items())
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="checkout of the old version")
    parser.add_argument("--after", type=Path, required=True, help="checkout of the new version")
    parser.add_argument(
        "--set",
        action="append",
        required=True,
        dest="sets",
        help="NAME=GOLD[:DOCS[:SAMPLE[:FLAGS]]] (paths absolute or relative to here; FLAGS: "
        "qa eval flags for both versions, comma-separated, e.g. --per-document)",
    )
    parser.add_argument(
        "--after-arg",
        action="append",
        default=[],
        dest="after_args",
        help="extra qa eval argument for the new version (e.g. --update-baseline)",
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results/chain_ab.json"))
    parser.add_argument(
        "--reports",
        type=Path,
        default=Path("bench/.cache/chain_ab"),
        help="where each run's full report.json is kept",
    )
    parser.add_argument(
        "--reuse-before",
        action="store_true",
        help="take the old version's reports kept from an earlier run instead of re-running it",
    )
    args = parser.parse_args()
    results: dict[str, dict[str, dict]] = {}
    for spec in args.sets:
        name, rest = spec.split("=", 1)
        gold, docs, sample, flags = ([*rest.split(":"), None, None, None])[:4]
        both = [f for f in (flags or "").split(",") if f]
        for version, checkout in (("before", args.before), ("after", args.after)):
            keep = args.reports / f"{name}-{version}.json"
            if version == "before" and args.reuse_before and keep.exists():
                kept = json.loads(keep.read_text())
                results.setdefault(name, {})[version] = {
                    **kept["metrics"],
                    "shapes": shape_latency(kept),
                }
                continue
            metrics = run_eval(
                checkout.resolve(),
                Path(gold).resolve(),
                Path(docs).resolve() if docs else None,
                sample or None,
                both + (args.after_args if version == "after" else []),
                keep,
            )
            results.setdefault(name, {})[version] = metrics
            print(
                f"{name} {version}: "
                + ", ".join(f"{k} {metrics[k]:.3g}" for k in COLUMNS if k in metrics),
                file=sys.stderr,
            )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    print("| set | version | " + " | ".join(COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 2) + "|")
    for name, versions in results.items():
        for version, m in versions.items():
            cells = [
                f"{m[k]:.2f}"
                if k in m and not k.endswith("_ms")
                else f"{m[k] / 1000:.2f} s"
                if k in m
                else ""
                for k in COLUMNS
            ]
            print(f"| {name} | {version} | " + " | ".join(cells) + " |")
        b, a = versions["before"], versions["after"]
        ratio = [f"×{a[k] / b[k]:.2f}" if k.endswith("_ms") and b.get(k) else "" for k in COLUMNS]
        print(f"| {name} | after/before | " + " | ".join(ratio) + " |")
    print(
        "\n| set | shape | questions | before p50 / p95 | after p50 / p95 | after/before p50 "
        "| prompt tokens computed p50, before -> after |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, versions in results.items():
        before, after = versions["before"]["shapes"], versions["after"]["shapes"]
        for shape, a in after.items():
            b = before.get(shape)
            was = f"{b['p50_s']:.1f} / {b['p95_s']:.1f} s" if b else "–"
            ratio = f"×{a['p50_s'] / b['p50_s']:.2f}" if b and b["p50_s"] else ""
            now = f"{a['p50_s']:.1f} / {a['p95_s']:.1f} s"
            toks = f"{b.get('prompt_tokens_p50', 0):.0f} -> " if b else ""
            toks += f"{a.get('prompt_tokens_p50', 0):.0f}"
            print(f"| {name} | {shape} | {a['n']} | {was} | {now} | {ratio} | {toks} |")


if __name__ == "__main__":
    main()
