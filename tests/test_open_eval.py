"""Open-answer metrics (#13): sentence grounding, fact coverage, yes/no, open abstention,
unsupported claims, shape routing, turn accuracy, answer length; and how reports show them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa.answer import ABSTAIN_TEXT, Answer, Citation, Sentence, Shape
from qa.evaluation.evaluate import run_eval
from qa.evaluation.gold import parse_gold_item
from qa.evaluation.reports import Baseline, check_gate, write_reports
from qa.evaluation.scoring import sentence_grounded, shown_sentences

PASSAGE = (
    "The crew will spend 12 days on the station. Shipenko said the schedule was not easy. "
    "Cruise, 59, has not flown yet."
)


def _cite(n: int, text: str = PASSAGE) -> Citation:
    return Citation(n=n, source="doc.txt", chunk_id=f"c{n}", text=text, score=1.0)


def _sentence(text: str, *ns: int) -> Sentence:
    return Sentence(text, [_cite(n) for n in ns])


@pytest.mark.parametrize(
    ("text", "grounded"),
    [
        ("The crew will spend 12 days on the station.", True),
        ("The crew spends twelve days on the station.", True),  # 4 of 5 content tokens
        ("The crew will spend 14 days on the station.", False),  # a number not in the passage
        ("The cheerful crew happily spends days aboard.", False),  # under 80 % of the tokens
        ("Shipenko said the schedule was easy.", True),
        ("The schedule was never easy, Shipenko said.", False),  # "never" is not there
        ("Cruise hasn't flown yet.", True),  # "n't" counts as "not", which is there
    ],
)
def test_sentence_grounding_check(text: str, grounded: bool) -> None:
    assert sentence_grounded(_sentence(text, 1)) is grounded


def test_uncited_sentences_are_ungrounded_and_a_leading_verdict_is_not_a_claim() -> None:
    assert not sentence_grounded(Sentence("The crew will spend 12 days on the station."))
    verdict = _sentence("No, the crew will spend 12 days on the station.", 1)
    assert not sentence_grounded(verdict)  # "no" is a negation the passage lacks
    assert sentence_grounded(verdict, leading_answer=True)


def test_older_backends_are_read_as_one_sentence() -> None:
    ans = Answer("q?", "Twelve days [1].", abstained=False, citations=[_cite(1)])
    assert shown_sentences(ans) == [Sentence("Twelve days.", [_cite(1)])]
    assert shown_sentences(Answer("q?", ABSTAIN_TEXT, abstained=True)) == []


def _answer(question: str, sentences: list[Sentence], shape: Shape = "open", **kw) -> Answer:
    cites = {c.n: c for s in sentences for c in s.citations}
    text = " ".join(f"{s.text} [{', '.join(str(c.n) for c in s.citations)}]" for s in sentences)
    return Answer(
        question, text, False, list(cites.values()), shape=shape, sentences=sentences, **kw
    )


def _abstain(question: str, shape: Shape = "open") -> Answer:
    return Answer(question, ABSTAIN_TEXT, abstained=True, shape=shape)


class Canned:
    """An assistant that returns prepared Answers, keyed by question."""

    def __init__(self, answers: dict[str, Answer]) -> None:
        self.answers = answers

    def ask(self, question: str, history: list[dict] | None = None) -> Answer:
        return self.answers[question]


GOLD = [
    {"id": "stay", "question": "Summarize it.", "shape": "overview", "facts": [["12"], ["crew"]]},
    {"id": "list", "question": "Who?", "shape": "list", "facts": [["shipenko"], ["cruise"]]},
    {"id": "yes", "question": "Did Cruise fly?", "yes": False, "facts": [["not"]]},
    {"id": "yes2", "question": "Is it 12 days?", "yes": True},
    {"id": "why", "question": "Why 12?", "shape": "open", "unanswerable": True},
    {"id": "who", "question": "Who paid?", "unanswerable": True},
    {"id": "fact", "question": "How long?", "facts": [["12"]]},
    {
        "id": "conv",
        "turns": [
            {"question": "Who directs?", "facts": [["shipenko"]]},
            {"question": "Was it easy for him?", "yes": False},
        ],
    },
]

ANSWERS = {
    "Summarize it.": _answer(
        "Summarize it.",
        [
            _sentence("The crew will spend 12 days on the station.", 1),
            _sentence("The cheerful crew loves dancing in zero gravity.", 2),
        ],
        shape="open",
        dropped=["Cruise will fly next week."],
    ),
    "Who?": _answer("Who?", [_sentence("Shipenko", 1), _sentence("Cruise", 1)], shape="list"),
    "Did Cruise fly?": _answer(
        "Did Cruise fly?", [_sentence("No, Cruise has not flown yet.", 1)], shape="yesno"
    ),
    "Is it 12 days?": _answer("Is it 12 days?", [_sentence("No, it is 14 days.", 1)], "yesno"),
    "Why 12?": _answer("Why 12?", [_sentence("Because of the weather.", 1)], shape="open"),
    "Who paid?": _abstain("Who paid?", shape="short"),
    "How long?": Answer("How long?", "12 days [1]", False, [_cite(1)]),
    "Who directs?": _answer("Who directs?", [_sentence("Shipenko", 1)], shape="short"),
    "Was it easy for him?": _answer(
        "Was it easy for him?", [_sentence("Yes, it was easy.", 1)], shape="yesno"
    ),
}


@pytest.fixture
def report():
    return run_eval(Canned(ANSWERS), [parse_gold_item(r) for r in GOLD], name="open")


def test_open_metrics(report) -> None:
    m = report.metrics
    assert {it.id: it.passed for it in report.items} == {
        "stay": True,
        "list": True,
        "yes": True,
        "yes2": False,
        "why": False,
        "who": True,
        "fact": True,
        "conv": False,
    }
    # stay, list, yes (shape yesno), yes2, the second conversation turn: 3 of 5 right.
    assert m["fact_coverage"] == pytest.approx(3 / 5)
    assert m["yesno_acc"] == pytest.approx(1 / 3)
    assert m["open_abstain_acc"] == 0.0  # "why" answered; "who" is a short question
    assert m["unsupported_claims"] == pytest.approx((1 + 0) / 2)
    # Stated or implied shapes: stay (overview, routed open), list, yes, yes2, why, conv turn 2.
    assert m["shape_acc"] == pytest.approx(5 / 6)
    assert m["turn_acc"] == 0.5
    # 10 shown sentences; ungrounded: the dancing crew, "14 days", "the weather". A wrong
    # verdict with a passage's words ("Yes, it was easy") is grounded: yesno_acc catches it.
    assert m["sentence_grounding"] == pytest.approx(7 / 10)
    assert m["answer_sentences"] == pytest.approx(10 / 8)  # over the 8 shown answers
    assert m["answer_words"] == pytest.approx(
        sum(len(s.text.split()) for a in ANSWERS.values() for s in shown_sentences(a)) / 8
    )


def test_turn_records_show_shapes_sentences_and_dropped(report) -> None:
    stay = report.items[0].turns[0]
    assert (stay.gold_shape, stay.shape) == ("overview", "open")
    assert stay.sentences == [
        {"text": "The crew will spend 12 days on the station.", "citations": [1], "grounded": True},
        {
            "text": "The cheerful crew loves dancing in zero gravity.",
            "citations": [2],
            "grounded": False,
        },
    ]
    assert stay.dropped == ["Cruise will fly next week."]
    assert report.items[6].turns[0].sentences == [
        {"text": "12 days", "citations": [1], "grounded": True}
    ]


def test_reports_render_sentences_with_citations(report, tmp_path: Path) -> None:
    write_reports(report, tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "  - shape: yesno (routed: yesno)" in md
    assert "  - No, it is 14 days. [1] — **ungrounded**" in md
    assert "## Ungrounded sentences (3)" in md
    assert (
        "- **stay** Q: Summarize it. | The cheerful crew loves dancing in zero gravity. [2]" in md
    )
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["items"][0]["turns"][0]["dropped"] == ["Cruise will fly next week."]
    page = (tmp_path / "report.html").read_text()
    assert "<li class=fail>No, it is 14 days. <small>[1]</small></li>" in page
    assert "shape: open (routed: open)" in page


def test_gate_on_unsupported_claims_and_length(report) -> None:
    m = report.metrics
    assert check_gate(
        report, Baseline({"unsupported_claims": m["unsupported_claims"] - 0.25}, [])
    ).ok
    rose = check_gate(report, Baseline({"unsupported_claims": m["unsupported_claims"] - 0.3}, []))
    assert not rose.ok and rose.regressions[0].startswith("unsupported_claims")
    assert check_gate(report, Baseline({"unsupported_claims": 2.0}, [])).ok  # fewer is better
    assert check_gate(report, Baseline({"answer_words": 100.0, "answer_sentences": 9.0}, [])).ok
    grounding = Baseline({"sentence_grounding": 0.9}, [])
    assert not check_gate(report, grounding, {"sentence_grounding": 0.05}).ok
    assert check_gate(report, None).ok  # a gold set without a baseline entry is not gated
