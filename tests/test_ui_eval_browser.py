"""The Evaluate tab in a real browser (Debian chromium via Playwright), over fake models except
the last test: a run with its progress bar, the chat during a run, two runs compared, the
operating point moved, a rating promoted, and a user who may only look."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa import Assistant
from qa.evaluation.runs import EvalPaths

from .conftest import ROOT, serve_ui
from .eval_workspace import fake_assistant, make_workspace
from .test_ui_browser import INPUT, _ask
from .test_ui_eval import _until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword).*"),
    # Gradio's plots call pandas APIs that pandas 3 deprecates; not ours to fix either.
    pytest.mark.filterwarnings("ignore:.*(formatting of datetime|is_categorical_dtype).*"),
]

STATUS = "#qa-eval-status"


def _evaluate(page, url: str, tab: str) -> None:
    page.goto(url)
    page.wait_for_selector(INPUT)
    page.get_by_role("tab", name="Evaluate").click()
    page.get_by_role("tab", name=tab).click()


def _pick(page, dropdown: str, option: str) -> None:
    page.locator(f"{dropdown} input").click()
    page.get_by_role("option", name=option).click()


def _reports(ws) -> list[Path]:
    return sorted(p.parent for p in ws.paths.reports.glob("*/report.json"))


def test_a_run_shows_its_progress_to_the_end_and_its_results(page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    ws = make_workspace(tmp_path)
    for url in serve_ui(fake_assistant(ws.settings, 0.6), evals=ws.paths):
        _evaluate(page, url, "Run")
        _pick(page, "#qa-eval-set", "small.jsonl")
        page.click("#qa-eval-run")
        status = page.locator(STATUS)
        expect(status).to_contain_text("items · about", timeout=60_000)  # the progress bar
        assert page.locator(f"{STATUS} .progress-bar, {STATUS} .progress-level").count() > 0
        expect(status).to_contain_text("Finished small: 4/4 items", timeout=60_000)
        expect(status).to_contain_text("Gate passed")
        expect(status).to_contain_text("pass rate")  # the headline numbers, not only a verdict
        assert len(_reports(ws)) == 3
        page.get_by_role("tab", name="Results").click()
        items = page.locator("#qa-eval-items")
        expect(items).to_contain_text("falsely abstained")  # the fake model has no founder
        page.get_by_label("falsely abstained").check()
        expect(items).not_to_contain_text("opened")
        expect(items).to_contain_text("founder")


def test_a_cancelled_run_leaves_a_partial_report(page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    ws = make_workspace(tmp_path)
    for url in serve_ui(fake_assistant(ws.settings, 1.5), evals=ws.paths):
        _evaluate(page, url, "Run")
        _pick(page, "#qa-eval-set", "small.jsonl")
        page.click("#qa-eval-run")
        expect(page.locator(STATUS)).to_contain_text("1/4 items", timeout=60_000)
        page.click("#qa-eval-cancel")
        expect(page.locator(STATUS)).to_contain_text("Cancelled small after", timeout=60_000)
    partial = json.loads((_reports(ws)[-1] / "report.json").read_text())
    assert partial["config"]["partial"] and len(partial["items"]) < 4


def test_the_chat_answers_while_a_run_goes(page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    ws = make_workspace(tmp_path)
    for url in serve_ui(fake_assistant(ws.settings, 1.0), evals=ws.paths):
        _evaluate(page, url, "Run")
        _pick(page, "#qa-eval-set", "small.jsonl")
        page.click("#qa-eval-run")
        expect(page.locator(STATUS)).to_contain_text("items ·", timeout=60_000)
        page.get_by_role("tab", name="Chat").click()
        assert "400" in _ask(page, "How many loaves, then?", 1)
        assert len(_reports(ws)) == 2  # answered before the run was done
        page.get_by_role("tab", name="Evaluate").click()
        expect(page.locator(STATUS)).to_contain_text("Finished small", timeout=60_000)


def test_two_runs_side_by_side_show_the_flipped_items(page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    ws = make_workspace(tmp_path)
    for url in serve_ui(fake_assistant(ws.settings, 0.0), evals=ws.paths):
        _evaluate(page, url, "Compare")
        flips = page.locator("#qa-eval-flips")
        expect(flips).to_contain_text("loaves: right → wrong")
        flip = page.locator("#qa-eval-flips .qa-flip").first
        expect(flip.locator(".qa-sides > div").first).to_contain_text("about 400 loaves")
        expect(flip.locator(".qa-sides > div").nth(1)).to_contain_text("300 loaves")
        expect(flip).to_contain_text("The shop sells about 400 loaves a day.")  # its passage
        expect(flips).to_contain_text("founder: wrong → right")
        expect(page.locator("#qa-eval-deltas")).to_contain_text("false_abstain_rate")


def test_moving_the_operating_point_changes_the_numbers(page, tmp_path: Path, monkeypatch):
    from playwright.sync_api import expect

    monkeypatch.chdir(tmp_path)
    ws = make_workspace(tmp_path)
    assistant = fake_assistant(ws.settings, 0.0)
    for url in serve_ui(assistant, evals=ws.paths):
        _evaluate(page, url, "Operating point")
        numbers = page.locator("#qa-eval-numbers")
        expect(numbers).to_contain_text("at 0.15")
        expect(page.locator("#qa-eval-risk canvas, #qa-eval-risk svg").first).to_be_visible()
        right = numbers.locator("tr", has_text="answered right")
        expect(right).to_contain_text("0.667")
        box = page.locator("#qa-eval-threshold input[type=number]")
        box.fill("0.5")
        box.press("Enter")
        expect(numbers).to_contain_text("at 0.5")
        expect(right.locator("td").nth(1)).to_have_text("0.333")
        page.click("#qa-eval-apply")
        expect(page.locator("#qa-eval-applied")).to_contain_text("now fitted on")
    assert "answer_threshold = 0.5" in (tmp_path / "qa.toml").read_text()
    assert assistant.settings.answer_threshold == 0.5


def test_a_promoted_rating_lands_in_the_gold_file(page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    ws = make_workspace(tmp_path)
    down = ws.ratings[1]
    for url in serve_ui(fake_assistant(ws.settings, 0.0), evals=ws.paths):
        _evaluate(page, url, "Ratings")
        expect(page.locator("#qa-eval-ratings")).to_contain_text("It was 1997")
        _pick(page, "#qa-eval-rating", f"Down: When did the bakery open? · {down}")
        expect(page.locator("#qa-eval-correction textarea")).to_have_value("It was 1997")
        page.fill("#qa-eval-correction textarea", "It opened in 1998")
        page.click("#qa-eval-save-correction")
        expect(page.locator("#qa-eval-rating-note")).to_contain_text("facts: 1998")
        _pick(page, "#qa-eval-target", "small.jsonl")
        page.click("#qa-eval-promote")
        expect(page.locator("#qa-eval-rating-note")).to_contain_text("Promoted")
        expect(page.locator("#qa-eval-ratings")).to_contain_text("small.jsonl")
    last = json.loads(ws.gold.read_text().splitlines()[-1])
    assert last == {"id": down, "question": "When did the bakery open?", "facts": [["1998"]]}


def _login(browser, url: str, user: str):
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    page = context.new_page()
    page.goto(url)
    page.get_by_label("username").fill(user)
    page.get_by_label("password").fill(f"pw-{user}")
    page.get_by_role("button", name="Login").click()
    page.wait_for_selector(INPUT)
    page.get_by_role("tab", name="Evaluate").click()
    return context, page


def test_a_user_who_is_not_an_admin_cannot_start_a_run(browser, tmp_path: Path) -> None:
    from gradio_client import Client
    from playwright.sync_api import expect

    ws = make_workspace(tmp_path, admins=["ann"])
    logins = [("ann", "pw-ann"), ("bob", "pw-bob")]
    for url in serve_ui(fake_assistant(ws.settings, 0.0), auth=logins, evals=ws.paths):
        context, bob = _login(browser, url, "bob")
        expect(bob.locator("#qa-eval-access")).to_contain_text("bob may only look")
        expect(bob.locator("#qa-eval-run")).to_be_disabled()
        bob.get_by_role("tab", name="Compare").click()  # reading stays open
        expect(bob.locator("#qa-eval-flips")).to_contain_text("loaves: right → wrong")
        context.close()
        # The server itself refuses bob's call, whatever sends it.
        with pytest.raises(Exception, match="QA_ADMINS"):
            Client(url, auth=("bob", "pw-bob"), verbose=False).predict(
                str(ws.gold), 0, False, api_name="/eval_run"
            )
        assert len(_reports(ws)) == 2
        context, ann = _login(browser, url, "ann")
        expect(ann.locator("#qa-eval-run")).to_be_enabled()
        expect(ann.locator("#qa-eval-access")).to_have_text("")
        context.close()
        Client(url, auth=("ann", "pw-ann"), verbose=False).predict(
            str(ws.gold), 0, False, api_name="/eval_run"
        )
        _until(lambda: len(_reports(ws)) == 3)  # ann may


@pytest.mark.slow
def test_real_models_run_a_three_item_set_in_the_browser(
    page, real_assistant: Assistant, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    evals = tmp_path / "evals"
    evals.mkdir()
    gold = [json.loads(line) for line in (ROOT / "evals" / "gold.jsonl").read_text().splitlines()]
    picked = [g for g in gold if g["id"] in ("launch-country", "launch-broadcast", "u-return-date")]
    (evals / "three.jsonl").write_text("".join(json.dumps(g) + "\n" for g in picked))
    for url in serve_ui(real_assistant, evals=EvalPaths(evals)):
        _evaluate(page, url, "Run")
        _pick(page, "#qa-eval-set", "three.jsonl")
        page.click("#qa-eval-run")
        expect(page.locator(STATUS)).to_contain_text("Finished three: 3/3 items", timeout=600_000)
        page.get_by_role("tab", name="Results").click()
        items = page.locator("#qa-eval-items")
        expect(items).to_contain_text("launch-country")
        expect(items).to_contain_text("u-return-date")
    (run,) = evals.glob("reports/*/report.json")
    report = json.loads(run.read_text())
    assert report["metrics"]["n_items"] == 3 and report["metrics"]["errors"] == 0
    assert report["config"]["llm_model"] == real_assistant.settings.llm_model
