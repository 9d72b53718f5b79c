"""The Evaluate tab: run a gold set, read its results, compare two runs, choose the operating
point, follow a set over time and turn ratings into gold.

This module is the wiring; the callbacks' work is in :mod:`qa.ui.eval_panels`, the layout of
tables and plots in :mod:`qa.ui.eval_views`, runs in the background in :mod:`qa.ui.eval_jobs`.
The tab follows the page's workspace picker (:mod:`qa.ui.workspace_picker`): every callback
is given the picked workspace and works on its gold sets, reports, ratings and runs. Every
callback that changes something (run, cancel, apply, correct, promote, discard) checks
the caller itself and raises ``gr.Error`` for a user QA_ADMINS does not name, so the server
refuses the call however it was made; the disabled buttons are only a courtesy.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import gradio as gr

from qa.errors import QAError
from qa.evaluation.reports import list_runs
from qa.ui import eval_panels as ep
from qa.ui import eval_views as views
from qa.ui.eval_jobs import may_administer, refusal
from qa.ui.workspace_picker import PageWorkspaces, Scope
from qa.workspaces import DEFAULT

PRIVATE: dict[str, Any] = {"api_visibility": "private"}
FOLLOW_POLL_S = 1.0
"""How often a browser following a run hears of its progress (seconds)."""


def _user(request: gr.Request | None) -> str:
    return str(getattr(request, "username", None) or "")


def build_evaluate_tab(demo: gr.Blocks, pages: PageWorkspaces, picker: gr.Dropdown) -> None:
    """Lay out the tab's components (inside an open ``gr.Tab``) and wire their events; the
    workspace is the one ``picker`` names."""
    first = pages.get(None)
    admins = first.assistant.settings.admins  # the install's, shared by every workspace

    def scope(ws: str | None) -> Scope:
        try:
            return pages.get(ws)
        except QAError as err:
            raise gr.Error(str(err), print_exception=False) from err

    def allowed(request: gr.Request | None) -> bool:
        return may_administer(demo.auth is not None, _user(request), admins)

    def require_admin(request: gr.Request | None) -> None:
        if not allowed(request):
            raise gr.Error(refusal(_user(request)))

    access = gr.Markdown(elem_id="qa-eval-access")
    # The picked workspace for the one endpoint callable by API (/eval_run): its callers send
    # (set, sample, per document) and run in the default workspace, as before workspaces.
    picked = gr.State(DEFAULT)
    with gr.Tabs():
        with gr.Tab("Run", elem_id="qa-eval-tab-run"):
            gr.Markdown(
                "Ask every question of a gold set and score the answers, as `qa eval` does. "
                "The chat goes first while a run goes; the run is saved under the "
                "workspace's `evals/reports/`."
            )
            with gr.Row():
                # Listed now as well as on load: an API call is checked against these choices.
                gold = gr.Dropdown(
                    choices=ep.gold_set_choices(ep.gold_sets(first.assistant, first.paths)),
                    label="Gold set",
                    elem_id="qa-eval-set",
                    scale=3,
                )
                sample = gr.Number(
                    label="Sample (0: every item)",
                    value=0,
                    precision=0,
                    minimum=0,
                    elem_id="qa-eval-sample",
                    scale=1,
                )
            per_doc = gr.Checkbox(
                label="Per document: ask each item of an index of only its sources "
                "(qa eval --per-document, for sets whose task is one document per question)",
                elem_id="qa-eval-per-document",
            )
            with gr.Row():
                run_btn = gr.Button("Run", variant="primary", elem_id="qa-eval-run")
                cancel_btn = gr.Button("Cancel", elem_id="qa-eval-cancel")
                gen_btn = gr.Button("Generate a set from my documents", elem_id="qa-eval-generate")
            # Room for Gradio's progress bar, shown over this box while a run goes.
            status = gr.Markdown(elem_id="qa-eval-status", min_height=90)
        with gr.Tab("Results", elem_id="qa-eval-tab-results"):
            run_pick = gr.Dropdown(label="Run", elem_id="qa-eval-run-pick")
            head = gr.Markdown(elem_id="qa-eval-headline")
            metrics = gr.Dataframe(
                label="Metrics against the baseline",
                interactive=False,
                max_height=320,
                elem_id="qa-eval-metrics",
            )
            show = gr.Radio(views.SHOW_CHOICES, value="all", label="Show", elem_id="qa-eval-show")
            items = gr.Dataframe(
                label="Items",
                interactive=False,
                wrap=True,
                max_height=600,
                column_widths=views.ITEM_WIDTHS,
                elem_id="qa-eval-items",
            )
        with gr.Tab("Compare", elem_id="qa-eval-tab-compare"):
            with gr.Row():
                run_a = gr.Dropdown(label="Run A", elem_id="qa-eval-a")
                run_b = gr.Dropdown(label="Run B (same gold set)", elem_id="qa-eval-b")
            deltas = gr.Dataframe(label="Metrics", interactive=False, elem_id="qa-eval-deltas")
            flips = gr.HTML(elem_id="qa-eval-flips")
        with gr.Tab("Operating point", elem_id="qa-eval-tab-op"):
            gr.Markdown(
                "Each answer has a learned P(right); answers below `answer_threshold` are "
                "withheld. A run keeps its withheld answers, so it shows what any threshold "
                "would have scored without asking again."
            )
            op_run = gr.Dropdown(label="Run", elem_id="qa-eval-op-run")
            with gr.Row():
                risk_plot = gr.ScatterPlot(
                    x="coverage",
                    y="risk",
                    color="point",
                    title="Risk (shown answers wrong) against coverage (questions answered)",
                    x_lim=[0, 1],
                    y_lim=[0, 1],
                    elem_id="qa-eval-risk",
                )
                share_plot = gr.LinePlot(
                    x="threshold",
                    y="share",
                    color="outcome",
                    title="Outcomes against answer_threshold",
                    y_lim=[0, 1],
                    elem_id="qa-eval-outcomes",
                )
            threshold = gr.Slider(
                0,
                1,
                step=0.01,
                value=first.assistant.answer_threshold or 0.0,
                label="answer_threshold",
                elem_id="qa-eval-threshold",
            )
            numbers = gr.Markdown(elem_id="qa-eval-numbers")
            with gr.Row():
                suggest_btn = gr.Button(
                    "Suggest (the qa calibrate rule)", elem_id="qa-eval-suggest"
                )
                apply_btn = gr.Button("Apply this threshold", elem_id="qa-eval-apply")
            applied = gr.Markdown(elem_id="qa-eval-applied")
            curve = gr.State(None)
        with gr.Tab("Trend", elem_id="qa-eval-tab-trend"):
            trend_set = gr.Dropdown(label="Gold set", elem_id="qa-eval-trend-set")
            trend = gr.LinePlot(
                x="time",
                y="value",
                color="metric",
                title="Headline metrics over the set's complete runs",
                y_lim=[0, 1],
                elem_id="qa-eval-trend",
            )
        with gr.Tab("Ratings", elem_id="qa-eval-tab-ratings") as ratings_tab:
            ratings = gr.Dataframe(
                label="Ratings (thumbs up and down)",
                interactive=False,
                wrap=True,
                column_widths=views.RATING_WIDTHS,
                elem_id="qa-eval-ratings",
            )
            rating = gr.Dropdown(label="Rating", elem_id="qa-eval-rating")
            detail = gr.Markdown(elem_id="qa-eval-rating-detail")
            with gr.Row():
                correction = gr.Textbox(
                    label="Correction (the right short answer)",
                    elem_id="qa-eval-correction",
                    scale=3,
                )
                dont_say = gr.Checkbox(label="The documents don't say", elem_id="qa-eval-dont-say")
                save_btn = gr.Button("Save correction", elem_id="qa-eval-save-correction")
            with gr.Row():
                target = gr.Dropdown(label="Promote into", elem_id="qa-eval-target", scale=3)
                promote_btn = gr.Button("Promote", variant="primary", elem_id="qa-eval-promote")
                discard_btn = gr.Button("Discard…", variant="stop", elem_id="qa-eval-discard")
            with gr.Group(visible=False, elem_id="qa-eval-confirm") as confirm:
                gr.Markdown("Delete this rating from the ratings file?")
                with gr.Row():
                    yes_btn = gr.Button("Yes, discard", variant="stop", elem_id="qa-eval-yes")
                    no_btn = gr.Button("Keep it", elem_id="qa-eval-no")
            rating_note = gr.Markdown(elem_id="qa-eval-rating-note")
    admin_buttons = [
        *(run_btn, cancel_btn, gen_btn, apply_btn),
        *(save_btn, promote_btn, discard_btn, yes_btn),
    ]

    # --- lists ---------------------------------------------------------------------------------

    def refresh_runs(ws: str | None) -> tuple[Any, ...]:
        """Every run list, showing the newest run (a comparison: it and the one before)."""
        runs = list_runs(scope(ws).paths.reports)
        choices = ep.run_choices(runs)
        value = choices[0][1] if choices else None
        names = sorted({r.gold_name for r in runs})
        first_a, _ = ep.first_pair(runs)
        return (
            gr.update(choices=choices, value=value),
            gr.update(choices=choices, value=first_a),
            gr.update(choices=choices, value=value),
            gr.update(choices=names, value=names[0] if names else None),
        )

    run_lists = [run_pick, run_a, op_run, trend_set]

    def ratings_lists(ws: str | None, keep: str | None = None) -> tuple[Any, ...]:
        assistant, paths = scope(ws).assistant, scope(ws).paths
        sets = ep.gold_sets(assistant, paths)
        found = assistant.feedback_store.items()
        promoted = ep.promoted(sets, assistant.settings.feedback_path)
        choices = ep.rating_choices(found)
        value = keep if keep in dict(choices).values() else None
        targets = ep.gold_set_choices(ep.promotion_targets(assistant, sets))
        return (
            views.ratings_frame(found, promoted),
            gr.update(choices=choices, value=value),
            gr.update(choices=targets, value=targets[0][1] if targets else None),
        )

    rating_lists = [ratings, rating, target]

    def load_fn(ws: str | None, request: gr.Request):
        may = allowed(request)
        note = (
            ""
            if may
            else refusal(_user(request)) + " Results, comparisons and trends are open to all."
        )
        sets = ep.gold_set_choices(ep.gold_sets(scope(ws).assistant, scope(ws).paths))
        buttons = [gr.update(interactive=may) for _ in admin_buttons]
        return (
            note,
            gr.update(choices=sets, value=sets[0][1] if sets else None),
            *buttons,
            *refresh_runs(ws),
            *ratings_lists(ws),
        )

    load_outputs = [access, gold, *admin_buttons, *run_lists, *rating_lists]

    # --- run -----------------------------------------------------------------------------------

    def sample_fn(ws: str | None, value: str | None) -> int:
        try:
            at = pages.get(ws)
            return ep.sample_for(at.paths, ep.find_set(ep.gold_sets(at.assistant, at.paths), value))
        except QAError:
            return 0

    def start_fn(value: str | None, n: float | None, one_doc: bool, ws, request: gr.Request) -> str:
        require_admin(request)
        at = scope(ws)
        try:
            gold_set = ep.find_set(ep.gold_sets(at.assistant, at.paths), value)
            at.jobs.start(gold_set, int(n) if n else None, _user(request), per_document=one_doc)
        except QAError as err:
            raise gr.Error(str(err)) from err
        return ""  # the progress bar takes the box until the run ends

    async def follow_fn(ws: str | None, progress=gr.Progress()):  # noqa: B008 - Gradio's idiom
        # Async: every open tab follows a run, and none may hold a worker thread meanwhile.
        at = scope(ws)
        state = at.jobs.state
        while state is not None and not state.finished:
            progress((state.done, state.total), desc=ep.progress_line(state), unit="items")
            await asyncio.sleep(FOLLOW_POLL_S)
            state = at.jobs.state
        return ep.job_status(state, at.paths)

    def cancel_fn(ws: str | None, request: gr.Request) -> str:
        require_admin(request)
        at = scope(ws)
        if not at.jobs.cancel():
            return "No run is going."
        return ep.job_status(at.jobs.state, at.paths)

    follow: dict[str, Any] = {
        "fn": follow_fn,
        "inputs": [picker],
        "outputs": [status],
        "concurrency_limit": None,
    }
    gold.change(sample_fn, [picker, gold], [sample], **PRIVATE)
    run_btn.click(
        start_fn,
        [gold, sample, per_doc, picked],
        [status],
        api_name="eval_run",
        api_visibility="undocumented",
    ).success(**follow, **PRIVATE).then(refresh_runs, [picker], run_lists, **PRIVATE)
    cancel_btn.click(cancel_fn, [picker], [status], **PRIVATE)

    def generate_fn(ws: str | None, request: gr.Request) -> str:
        require_admin(request)
        try:
            scope(ws).jobs.generate(_user(request))
        except QAError as err:
            raise gr.Error(str(err)) from err
        return ""

    def sets_fn(ws: str | None, value: str | None):
        sets = ep.gold_set_choices(ep.gold_sets(scope(ws).assistant, scope(ws).paths))
        return gr.update(choices=sets, value=value)

    gen_btn.click(generate_fn, [picker], [status], **PRIVATE).success(**follow, **PRIVATE).then(
        sets_fn, [picker, gold], [gold], **PRIVATE
    )

    # --- results and comparison ----------------------------------------------------------------

    def results_fn(ws: str | None, value: str | None, which: views.Show):
        view = ep.show_run(scope(ws).paths, value, which)
        return view.headline, view.metrics, view.items

    def other_runs_fn(ws: str | None, value: str | None):
        choices, default = ep.same_set_runs(scope(ws).paths, value)
        return gr.update(choices=choices, value=default)

    run_pick.change(results_fn, [picker, run_pick, show], [head, metrics, items], **PRIVATE)
    show.change(
        lambda ws, v, w: results_fn(ws, v, w)[2], [picker, run_pick, show], [items], **PRIVATE
    )
    compare: dict[str, Any] = {
        "fn": lambda ws, a, b: ep.compare(scope(ws).paths, a, b),
        "inputs": [picker, run_a, run_b],
        "outputs": [deltas, flips],
        **PRIVATE,
    }
    run_a.change(other_runs_fn, [picker, run_a], [run_b], **PRIVATE).then(**compare)
    run_b.input(**compare)

    # --- operating point -----------------------------------------------------------------------

    def current(ws: str | None) -> float:
        """The threshold answers are shown at now (the decision off shows all: 0)."""
        return scope(ws).assistant.answer_threshold or 0.0

    def plots(ws: str | None, loaded: ep.Curve, chosen: float) -> tuple[Any, Any, str]:
        frame, note = ep.curve_view(loaded, current(ws), chosen)
        return frame, views.outcomes_frame(ep.curve_points(loaded), current(ws)), note

    def curve_fn(ws: str | None, value: str | None, chosen: float):
        try:
            loaded = ep.load_curve(scope(ws).paths, value, current(ws))
        except QAError as err:
            return None, None, None, f"⚠️ {err}", ""
        return loaded, *plots(ws, loaded, chosen), ""

    def move_fn(ws: str | None, loaded: ep.Curve | None, chosen: float):
        if loaded is None:
            return gr.update(), "Pick a run first."
        return ep.curve_view(loaded, current(ws), chosen)

    def suggest_fn(loaded: ep.Curve | None, chosen: float):
        if loaded is None:
            return gr.update(), "Pick a run first."
        value, note = ep.suggest(loaded)
        return (chosen if value is None else value), note

    def apply_fn(ws, loaded: ep.Curve | None, value, chosen: float, request: gr.Request):
        require_admin(request)
        at = scope(ws)
        if loaded is None:
            return "Pick a run first.", gr.update(), gr.update()
        if at.jobs.running:
            return "A run is going; apply the threshold when it has finished.", *[gr.update()] * 2
        source = f"{loaded.gold_name} (run {Path(value or '').name})"
        note = ep.apply_threshold(at.assistant, loaded, float(chosen), source)
        frame, lines, _ = plots(ws, loaded, chosen)
        return note, frame, lines

    op_outputs = [curve, risk_plot, share_plot, numbers, applied]
    op_run.change(curve_fn, [picker, op_run, threshold], op_outputs, **PRIVATE)
    threshold.change(
        move_fn,
        [picker, curve, threshold],
        [risk_plot, numbers],
        trigger_mode="always_last",
        **PRIVATE,
    )
    suggest_btn.click(suggest_fn, [curve, threshold], [threshold, applied], **PRIVATE)
    apply_btn.click(
        apply_fn, [picker, curve, op_run, threshold], [applied, risk_plot, share_plot], **PRIVATE
    )
    trend_set.change(
        lambda ws, name: views.trend_frame(list_runs(scope(ws).paths.reports), name or ""),
        [picker, trend_set],
        [trend],
        **PRIVATE,
    )

    # --- ratings -------------------------------------------------------------------------------

    def pick_fn(ws: str | None, rating_id: str | None):
        try:
            item = ep.find_rating(pages.get(ws).assistant, rating_id)
        except QAError:
            return views.rating_detail(None), "", False
        meta = item.meta
        return (
            views.rating_detail(item),
            str(meta.get("correction") or ""),
            bool(meta.get("unanswerable")),
        )

    def save_fn(ws, rating_id: str | None, text: str, unanswerable: bool, request: gr.Request):
        require_admin(request)
        note = ep.save_correction(scope(ws).assistant, rating_id, text, unanswerable)
        return note, *ratings_lists(ws, rating_id)

    def promote_fn(ws, rating_id: str | None, dest: str | None, request: gr.Request):
        require_admin(request)
        at = scope(ws)
        note = ep.promote(at.assistant, ep.gold_sets(at.assistant, at.paths), rating_id, dest)
        return note, *ratings_lists(ws, rating_id)

    def discard_fn(ws: str | None, rating_id: str | None, request: gr.Request):
        require_admin(request)
        note = ep.discard(scope(ws).assistant, rating_id)
        return note, gr.update(visible=False), *ratings_lists(ws)

    # Ratings made in the chat since the page loaded show up when the panel is opened.
    ratings_tab.select(ratings_lists, [picker, rating], rating_lists, **PRIVATE)
    rating.change(pick_fn, [picker, rating], [detail, correction, dont_say], **PRIVATE)
    save_btn.click(
        save_fn, [picker, rating, correction, dont_say], [rating_note, *rating_lists], **PRIVATE
    )
    promote_btn.click(promote_fn, [picker, rating, target], [rating_note, *rating_lists], **PRIVATE)
    discard_btn.click(lambda: gr.update(visible=True), None, [confirm], **PRIVATE)
    no_btn.click(lambda: gr.update(visible=False), None, [confirm], **PRIVATE)
    yes_btn.click(discard_fn, [picker, rating], [rating_note, confirm, *rating_lists], **PRIVATE)

    # On load and on every switch of workspace: its sets, runs and ratings, and its run if one
    # goes there.
    demo.load(load_fn, [picker], load_outputs, **PRIVATE).then(**follow, **PRIVATE)
    picker.change(lambda ws: ws, [picker], [picked], **PRIVATE)
    picker.change(load_fn, [picker], load_outputs, **PRIVATE).then(**follow, **PRIVATE)
