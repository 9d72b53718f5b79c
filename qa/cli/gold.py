"""``qa gold generate``: a gold set written from the indexed documents, for evaluating and
calibrating on a user's own corpus without writing questions by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from qa.cli.common import app, assistant_for, console, fail, progress_bar
from qa.errors import QAError

gold_app = typer.Typer(help="Gold sets generated from your documents.", no_args_is_help=True)
app.add_typer(gold_app, name="gold")


@gold_app.command()
def generate(
    count: Annotated[int, typer.Option(help="Items wanted (fewer if the corpus runs out).")] = 40,
    seed: Annotated[int, typer.Option(help="Seed: the same seed and corpus, the same set.")] = 0,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Gold file to write (default: the workspace's "
            "evals/generated/<documents folder>.jsonl)."
        ),
    ] = None,
) -> None:
    """Write a gold set from the indexed documents: answerable questions checked by a round
    trip through the chain, look-alike unanswerable ones checked absent from the corpus, and
    yes/no questions (half of them "no"). Review it like ratings, run it with `qa eval --gold`,
    fit the decision to it with `qa calibrate --synthetic`."""
    from qa.trust.synthetic import gold_path

    try:
        assistant = assistant_for()
        out = out or gold_path(assistant.settings)
        with progress_bar() as bar:
            task = bar.add_task("Generating questions", total=count)
            made = assistant.generate_gold(
                count=count,
                seed=seed,
                out=out,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    except (QAError, ValueError, OSError) as err:
        raise fail(QAError(str(err))) from err
    kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(made.kinds().items()))
    console.print(f"{len(made.items)} items ({kinds or 'none'}) from {made.attempts} candidates")
    for why, n in made.rejected.most_common():
        console.print(f"[dim]dropped {n}: {escape(why)}[/dim]")
    console.print(f"Wrote {out}; run it with `qa eval --gold {out}`")
