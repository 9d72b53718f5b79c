"""Commands that measure: ``qa eval | calibrate | bench``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from qa.cli.common import (
    app,
    assistant_for,
    console,
    err_console,
    fail,
    index_with_progress,
    progress_bar,
    settings_for,
)
from qa.errors import QAError

if TYPE_CHECKING:
    from qa.assistant import Assistant
    from qa.evaluation import runs


@app.command("eval")
def eval_(
    gold: Annotated[
        Path | None, typer.Option(help="Gold set (JSONL; default: evals/gold.jsonl).")
    ] = None,
    docs: Annotated[
        Path | None,
        typer.Option(help="Evaluate on this folder of documents, indexed into a temporary index."),
    ] = None,
    sample: Annotated[
        int | None, typer.Option(help="Seeded sample: n - n//3 answerable + n//3 unanswerable.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Report folder (default: evals/reports/<timestamp>/).")
    ] = None,
    gate: Annotated[
        bool, typer.Option("--gate", help="Exit 1 if a metric regressed past its tolerance.")
    ] = False,
    update_baseline: Annotated[
        bool, typer.Option("--update-baseline", help="Accept this run as the new baseline.")
    ] = False,
    baseline: Annotated[
        Path | None, typer.Option(help="Baseline file (default: evals/baseline.json).")
    ] = None,
    per_document: Annotated[
        bool,
        typer.Option(
            "--per-document",
            help="Ask each item of an index of only its `sources` in --docs (as if each "
            "document were the user's whole corpus), not of all of --docs together.",
        ),
    ] = False,
    manifest: Annotated[
        Path | None,
        typer.Option(
            help="Run every set a gate manifest lists (evals/gate.toml) in this one process, "
            "the models loaded once, instead of --gold/--docs/--sample/--per-document.",
        ),
    ] = None,
) -> None:
    """Score answers against a gold set; write report.json/.md/.html; optionally gate."""
    from qa.evaluation import runs

    try:
        assistant = assistant_for()
        evals = assistant.settings.evals_dir  # the workspace's: evals/ for the project root
        gold = gold or evals / "gold.jsonl"
        baseline = baseline or evals / "baseline.json"
        sets = (
            runs.load_gate(manifest)
            if manifest
            else [runs.GateSet(gold, docs, sample, per_document)]
        )
        out = None if manifest else out  # each set of a manifest has its own report folder
    except QAError as err:
        raise fail(err) from err
    failed: list[str] = []
    skipped = 0
    for gate_set in sets:
        if gate_set.requires and not gate_set.requires.exists():
            err_console.print(
                f"[yellow]WARNING: no {gate_set.requires}: the {gate_set.name} set is skipped"
            )
            skipped += 1
            continue
        if not _run_set(assistant, gate_set, out, gate, update_baseline, baseline):
            failed.append(gate_set.name)
    if manifest:
        asked = len(sets) - skipped
        console.print(f"Sets: {asked - len(failed)} of {asked} passed, {skipped} skipped")
    if failed:
        err_console.print(f"[red]Gate failed:[/red] {', '.join(failed)}")
        raise typer.Exit(code=1)


def _run_set(
    assistant: Assistant,
    gate_set: runs.GateSet,
    out: Path | None,
    gate: bool,
    update_baseline: bool,
    baseline: Path,
) -> bool:
    """Ask one set, print its table, and gate it; False when it fails the gate."""
    import time

    from rich.table import Table

    from qa.evaluation import reports, runs

    name = gate_set.name
    out = out or runs.report_dir(runs.EvalPaths(assistant.settings.evals_dir).reports, name)
    t0 = time.perf_counter()
    try:
        with progress_bar() as bar:
            task = bar.add_task(f"Evaluating {name}", total=None)
            saved = runs.run_gold_set(
                assistant,
                runs.GoldSet(gate_set.gold, gate_set.docs),
                sample=gate_set.sample,
                per_document=gate_set.per_document,
                out=out,
                index=lambda a: index_with_progress(a, bar=bar),
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    except (QAError, ValueError, OSError) as err:
        err_console.print(f"[red]Error:[/red] {escape(str(err))}", soft_wrap=True)
        return False  # the other sets of a manifest still run; the command exits 1 at the end
    report = saved.report
    table = Table(title=f"{name}: {len(report.items)} items in {time.perf_counter() - t0:.0f} s")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in reports.summary_table(report):
        table.add_row(key, value)
    console.print(table)
    console.print(f"Reports in {out}/")
    if update_baseline:
        reports.update_baseline(baseline, name, report)
        console.print(f"Baseline {name!r} updated in {baseline}")
    if not gate:
        return True
    accepted = reports.load_baseline(baseline, name)
    if accepted is None:
        err_console.print(f"[red]No baseline {name!r} in {baseline}; run with --update-baseline")
        return False
    result = reports.check_gate(report, accepted)
    for item_id in result.newly_failing:
        console.print(f"[yellow]newly failing:[/yellow] {escape(item_id)}")
    for line in result.regressions:
        err_console.print(f"[red]regression:[/red] {escape(line)}")
    if result.ok:
        console.print(f"[green]Gate passed[/green] ({name})")
    return result.ok


@app.command()
def bench(
    gold: Annotated[
        Path, typer.Option(help="Questions to time (gold JSONL; first turns are used).")
    ] = Path("evals/gold.jsonl"),
    questions: Annotated[int, typer.Option(help="How many of its questions to ask.")] = 30,
    sizes: Annotated[
        str, typer.Option(help="Synthetic corpus sizes in chunks, comma-separated; '' skips.")
    ] = "1000,10000",
    out: Annotated[Path | None, typer.Option(help="Write the JSON result here.")] = None,
) -> None:
    """Measure answer latency, throughput, index build, scaling and peak memory (the current
    configuration: set QA_* variables or qa.toml to compare others)."""
    from qa import bench as benchmarks
    from qa.evaluation import evaluate as evaluation

    try:
        settings = settings_for()
        items = evaluation.load_gold(gold)
        asked = [it.turns[0].question for it in items][:questions]
        result = benchmarks.run(
            settings,
            asked,
            settings.seeds_dir,
            [int(s) for s in sizes.split(",") if s.strip()],
            progress=lambda msg: err_console.print(f"[dim]{escape(msg)}…[/dim]"),
        )
    except (QAError, ValueError, OSError) as err:
        raise fail(QAError(str(err))) from err
    console.print(benchmarks.markdown(result))
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
        console.print(f"Wrote {out}")


@app.command()
def calibrate(
    gold: Annotated[
        list[Path] | None,
        typer.Option("--gold", help="Gold sets to add to the ratings (repeatable)."),
    ] = None,
    ratings: Annotated[bool, typer.Option(help="Use the rated answers (QA_FEEDBACK_PATH).")] = True,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the curve and the choice; change nothing.")
    ] = False,
    synthetic: Annotated[
        bool,
        typer.Option(
            "--synthetic",
            help="Fit the decision itself to your documents, without labels: ask the gold set "
            "generated from them (reused if it exists: --gold names it, else "
            "evals/generated/<folder>.jsonl), refit the decision on the answers, and use it "
            "for this index only if it passes a check that reads no label.",
        ),
    ] = False,
    count: Annotated[int, typer.Option(help="--synthetic: items to generate.")] = 40,
    seed: Annotated[int, typer.Option(help="--synthetic: generation seed.")] = 0,
) -> None:
    """Fit the answer threshold to your documents: ask your rated answers (and gold sets) again,
    print the risk/coverage curve, and write the threshold that withholds the most wrong
    answers for at most 0.05 of the right ones to qa.toml. With --synthetic, fit the decision
    itself to a gold set generated from your documents (and your ratings)."""
    from qa.trust.calibration import curve_table

    assistant = assistant_for()
    if synthetic:
        _calibrate_synthetic(assistant, (gold or [None])[0], ratings, dry_run, count, seed)
        return
    try:
        with progress_bar() as bar:
            task = bar.add_task("Asking the rated questions again", total=None)
            result = assistant.calibrate(
                gold or [],
                ratings=ratings,
                write=not dry_run,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    except (QAError, ValueError, OSError) as err:
        raise fail(QAError(str(err))) from err
    marks = {result.current: "current"}
    if result.chosen is not None:
        marks[result.chosen] = "chosen" if result.chosen != result.current else "current, chosen"
    console.print(curve_table(result.curve, marks))
    if result.missing:
        console.print(
            f"{result.questions} questions asked; a calibration needs {result.missing} more "
            "decided answers (right and wrong ones): rate more answers. Nothing changed."
        )
    elif result.written:
        console.print(
            f"answer_threshold {result.current:g} -> {result.chosen:g}, written to {result.written}"
        )
    else:
        console.print(f"answer_threshold would be {result.chosen:g} (now {result.current:g})")


def _calibrate_synthetic(
    assistant: Assistant, gold: Path | None, ratings: bool, dry_run: bool, count: int, seed: int
) -> None:
    """``qa calibrate --synthetic``: generate or reuse, ask, refit; print both curves."""
    from qa.trust.calibration import curve_table

    try:
        with progress_bar() as bar:
            task = bar.add_task("Generating and asking the corpus's questions", total=None)
            result = assistant.calibrate_synthetic(
                gold,
                count=count,
                seed=seed,
                ratings=ratings,
                write=not dry_run,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    except (QAError, ValueError, OSError) as err:
        raise fail(QAError(str(err))) from err
    fitted = result.fitted
    made = "generated" if result.generated else "reused"
    console.print(f"{result.questions} questions asked ({made}: {result.gold})")
    for fit in fitted.fits:
        prior = "shipped weights kept" if fit.prior is None else f"prior {fit.prior:g}"
        aucs = " -> ".join(
            "–" if a is None else f"{a:.2f}" for a in (fit.shipped_auc, fit.fitted_auc)
        )
        console.print(
            f"{fit.name}: {fit.rows} decided answers, {prior}, log-loss "
            f"{fit.shipped_loss:.3f} -> {fit.fitted_loss:.3f}, AUC {aucs} (out of fold)"
        )
    console.print("Before (shipped decision):")
    console.print(curve_table(fitted.before, {result.current: "current"}))
    console.print("After (fitted to this corpus, out-of-fold):")
    console.print(curve_table(fitted.after, {fitted.threshold: "chosen"}))
    check = fitted.check
    if check is not None and check.passed:
        console.print(
            f"Check passed: it would withhold {check.newly_withheld:.0%} of the "
            f"{check.shown} answers the shipped decision shows."
        )
    elif check is not None:
        console.print("Check refused it: " + "; ".join(check.reasons) + ".")
    if result.adopted:
        console.print(
            f"decision {result.written} (answer threshold {fitted.threshold:g}): used for "
            "this index from now on"
        )
    elif dry_run:
        console.print("Dry run: nothing written.")
    else:
        console.print("The shipped decision stays in use.")
