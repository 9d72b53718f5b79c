"""A small evaluation workspace for the Evaluate tab's tests: documents, a gold set, a baseline,
two saved runs of that set that differ, and ratings; plus a fake model slow enough to watch."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from langchain_core.embeddings import DeterministicFakeEmbedding

from qa import ABSTAIN_TEXT, Answer, Assistant, Citation, Settings
from qa.evaluation.evaluate import run_eval
from qa.evaluation.feedback import FeedbackStore, make_item
from qa.evaluation.gold import load_gold
from qa.evaluation.reports import update_baseline, write_reports
from qa.evaluation.runs import EvalPaths

from .conftest import BAKERY, small_chunks
from .test_ui_browser import RoutedFakeLLM

SMALL = [
    {"id": "opened", "question": "When did the bakery open?", "facts": [["1998"]]},
    {"id": "loaves", "question": "How many loaves does it sell?", "facts": [["400"]]},
    {"id": "founder", "question": "Who is the founder?", "facts": [["marta"]]},
    {"id": "keeper", "question": "Who is the lighthouse keeper?", "unanswerable": True},
]
CHUNK = Citation(n=1, source="bakery.txt", chunk_id="c1", text=BAKERY, score=1.0)
# (text shown or ABSTAIN_TEXT, P(right), withheld answer) per question, for two saved runs.
RUN_A = {
    "When did the bakery open?": ("in 1998 [1]", 0.9, ""),
    "How many loaves does it sell?": ("about 400 loaves [1]", 0.6, ""),
    "Who is the founder?": (ABSTAIN_TEXT, 0.1, "Marta Kovacs [1]"),
    "Who is the lighthouse keeper?": (ABSTAIN_TEXT, 0.05, "Ada Quint [1]"),
}
RUN_B = {
    **RUN_A,
    "How many loaves does it sell?": ("300 loaves [1]", 0.4, ""),
    "Who is the founder?": ("Marta Kovacs [1]", 0.2, ""),
}


class SlowLLM(RoutedFakeLLM):
    """The routed fake model, ``delay`` seconds per call; logs (question, start, end)."""

    delay: float = 0.3
    log: list[tuple[str, float, float]] = []

    def _reply(self, messages) -> str:
        start = time.monotonic()
        time.sleep(self.delay)
        reply = super()._reply(messages)
        question = str(messages[-1].content).rsplit("Question:", 1)[-1].strip()
        self.log.append((question, start, time.monotonic()))
        return reply


class ScriptedAsker:
    """Answers as a script says, with P(right) and withheld answers (what real runs record)."""

    def __init__(self, script: dict[str, tuple[str, float, str]]) -> None:
        self.script = script

    def ask(self, question: str, history: list[dict] | None = None) -> Answer:
        text, p, withheld = self.script[question]
        abstained = text == ABSTAIN_TEXT
        return Answer(
            question=question,
            text=text,
            abstained=abstained,
            citations=[] if abstained else [CHUNK],
            retrieved=[CHUNK],
            answerability=p,
            withheld=withheld,
        )


@dataclass
class Workspace:
    settings: Settings
    paths: EvalPaths
    gold: Path
    runs: list[Path]
    ratings: list[str]


def _save_run(paths: EvalPaths, gold: Path, script: dict, when: str) -> Path:
    report = run_eval(ScriptedAsker(script), load_gold(gold), name="small")
    report.config |= {"gold": str(gold), "timestamp": when, "answer_threshold": 0.15}
    out = paths.reports / f"{when[:10].replace('-', '')}-small"
    write_reports(report, out)
    return out


def make_workspace(root: Path, *, admins: list[str] | None = None) -> Workspace:
    """Documents, ``evals/small.jsonl`` (4 items) with a baseline, two runs of it a day apart
    (run B: loaves right -> wrong, founder abstained -> right) and two ratings."""
    docs = root / "docs"
    docs.mkdir(parents=True)
    (docs / "bakery.txt").write_text(BAKERY)
    paths = EvalPaths(root / "evals")
    paths.root.mkdir()
    gold = paths.root / "small.jsonl"
    gold.write_text("".join(json.dumps(r) + "\n" for r in SMALL))
    (paths.root / "other.jsonl").write_text(json.dumps(SMALL[0]) + "\n")
    runs = [
        _save_run(paths, gold, RUN_A, "2025-01-01T10:00:00+00:00"),
        _save_run(paths, gold, RUN_B, "2025-01-02T10:00:00+00:00"),
    ]
    baseline = run_eval(ScriptedAsker(RUN_A), load_gold(gold), name="small")
    update_baseline(paths.baseline, "small", baseline)
    settings = small_chunks(
        docs, root / "index", feedback_path=paths.root / "feedback.jsonl", admins=admins or []
    )
    store = FeedbackStore(settings.feedback_path)
    answer = ScriptedAsker(RUN_B).ask("When did the bakery open?")
    ratings = [make_item(answer, "up", user="ann"), make_item(answer, "down", "It was 1997")]
    for item in ratings:
        store.append(item)
    return Workspace(settings, paths, gold, runs, [r.id for r in ratings])


def fake_assistant(settings: Settings, delay: float = 0.3) -> Assistant:
    """An indexed assistant over the workspace's documents with a :class:`SlowLLM`."""
    llm = SlowLLM(delay=delay, log=[])
    assistant = Assistant(settings, embeddings=DeterministicFakeEmbedding(size=32), llm=llm)
    assistant.index()
    return assistant


def in_thread(target, *args) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread
