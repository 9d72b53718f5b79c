"""The corpus's questions made and asked in the background when the documents change (#26, #33),
over the scripted models of tests/test_synthetic.py: when it runs and when not, that it never
changes the decision users get, the chat first, a stop that writes nothing, a set made from
other documents kept aside, and the page's status line."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import pytest

from qa import Assistant
from qa.errors import QAError
from qa.llm.queue import ChatFirst
from qa.trust.answerability import shipped_answerability
from qa.trust.refit import BackgroundRefit
from qa.trust.synthetic import decision_path, fitted_corpus, record_path
from qa.ui.startup import notes_pending, startup_note
from tests.test_synthetic import DOCS, scripted_assistant

COUNT = 24


@pytest.fixture
def assistant(tmp_path: Path, fake_embeddings, monkeypatch: pytest.MonkeyPatch) -> Assistant:
    monkeypatch.chdir(tmp_path)  # qa.toml and evals/generated/ are written here
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text)
    return scripted_assistant(docs, tmp_path, fake_embeddings, auto_calibrate=True)


def _refit(assistant: Assistant, first: ChatFirst | None = None) -> BackgroundRefit:
    refit = BackgroundRefit(assistant, first or ChatFirst(), count=COUNT)
    assistant.on_change.append(refit.start)
    return refit


def _settle(refit: BackgroundRefit) -> None:
    while refit.busy:
        time.sleep(0.02)


def test_it_refits_when_the_documents_change_and_only_then(assistant: Assistant) -> None:
    refit = _refit(assistant)
    refit.start()
    _settle(refit)
    assert refit.fitted == 1 and not refit.error and refit.status == ""
    assert fitted_corpus(assistant.settings) == assistant.store.signature()
    assert not Path("qa.toml").exists()
    refit.start()  # nothing changed: nothing to do
    _settle(refit)
    assert refit.fitted == 1
    # A new document starts a refit, which reuses the set: its passages are all still there.
    (assistant.settings.seeds_dir / "mill.txt").write_text(
        "The old mill was built in 1871 by the miller Anna Weiss.\n"
    )
    assistant.index()
    _settle(refit)
    assert refit.fitted == 2
    assert fitted_corpus(assistant.settings) == assistant.store.signature()
    assert not Path("evals/generated/docs.stale.jsonl").exists()
    # A removed document takes passages of the set with it: the set is kept aside, a new one made.
    assistant.remove("bakery.txt")
    _settle(refit)
    assert refit.fitted == 3
    assert Path("evals/generated/docs.stale.jsonl").exists()
    made_from = [
        json.loads(line)["generated"]["chunk_id"]
        for line in Path("evals/generated/docs.jsonl").read_text().splitlines()
    ]
    assert set(made_from) <= {c.id for c in assistant.store.all_chunks()}


def test_the_chat_goes_first(assistant: Assistant) -> None:
    first = ChatFirst(patience=30)
    refit = _refit(assistant, first)
    released = threading.Event()

    def chat() -> None:
        with first.chat():
            released.wait(10)

    talker = threading.Thread(target=chat)
    talker.start()
    time.sleep(0.05)
    refit.start()
    time.sleep(0.5)
    # Not one item asked while the chat answers: still at the start, still waiting.
    assert refit.busy and refit.fitted == 0 and not re.search(r"\d+ of \d+", refit.status)
    released.set()
    talker.join()
    _settle(refit)
    assert refit.fitted == 1


def test_a_stopped_refit_writes_nothing(assistant: Assistant) -> None:
    first = ChatFirst(patience=30)
    refit = _refit(assistant, first)
    with first.chat():
        refit.start()
        time.sleep(0.2)
        refit._stop.set()
    refit.stop(timeout=10)
    assert refit.fitted == 0 and not record_path(assistant.settings).exists()
    assert not Path("evals/generated/docs.jsonl").exists()
    assert "nothing was written" in refit.error


def test_the_setting_turns_it_off(assistant: Assistant) -> None:
    assistant.settings = assistant.settings.model_copy(update={"auto_calibrate": False})
    refit = _refit(assistant)
    refit.start()
    assert not refit.busy and refit.fitted == 0


def test_a_failed_refit_says_why_and_keeps_the_decision(
    assistant: Assistant, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(**_: object) -> None:
        raise QAError("the model server is gone")

    monkeypatch.setattr(assistant, "calibrate_synthetic", fail)
    refit = _refit(assistant)
    refit.start()
    _settle(refit)
    assert refit.error == "the model server is gone"
    assert assistant.decision is shipped_answerability()
    assert "Checking questions made from your documents failed: the model server is gone" in (
        startup_note(None, refit)
    )
    assert not notes_pending(None, refit)


def test_it_never_changes_the_decision_users_get(
    assistant: Assistant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On by default, so tested on: even a fit that would pass its check is only recorded (a
    fit on generated questions halved the seed's right answers when it was used, #33)."""
    from dataclasses import replace

    from qa.trust.adapt import AdoptionCheck, fit_corpus_decision

    def passing(rows, base, provenance=""):
        fitted = fit_corpus_decision(rows, base, provenance=provenance)
        return replace(fitted, check=AdoptionCheck(True, (), 0.0, 10))

    monkeypatch.setattr("qa.trust.synthetic.fit_corpus_decision", passing)
    refit = _refit(assistant)
    refit.start()
    _settle(refit)
    assert refit.fitted == 1 and not refit.error
    assert assistant.decision is shipped_answerability()
    assert not decision_path(assistant.settings).exists()
    assert json.loads(record_path(assistant.settings).read_text())["check"] == "passed"
    # Nor after a restart: a new Assistant over the index answers with the shipped decision.
    again = Assistant(assistant.settings, embeddings=assistant.embeddings, llm=assistant.llm)
    assert again.decision is shipped_answerability()
