"""Clicking an answer sentence's ``[n]`` in a real browser (Debian chromium via Playwright):
the right turn's passage opens with that sentence's quote emphasized.

Most tests here give fixed multi-sentence answers (the chain is not under test); the last one
asks the real models.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langchain_core.language_models import FakeListChatModel

from qa import Assistant
from qa.answer import Answer, Citation, Sentence

from .conftest import serve_ui
from .test_ui_browser import BOT, _ask, _open

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword).*"),
]

BAKERY = "The bakery opened in 1998. Its founder, Marta Kovacs, bakes every morning."
FERRY = "The ferry crosses the river every 20 minutes. It carries bikes for free."
HOSTILE = "Its sign reads <img src=x onerror=window.__xss=1>."
ACTIVE = "#qa-sources mark.qa-active"


def _cite(n: int, text: str, quote: str) -> Citation:
    return Citation(n=n, source=f"doc{n}.txt", chunk_id=f"c{n}", text=text, score=0.5, quote=quote)


def _answer(question: str, shape: str, sentences: list[Sentence]) -> Answer:
    unique = {c.n: c for s in sentences for c in s.citations}
    return Answer(
        question=question,
        text=" ".join(s.text for s in sentences),
        abstained=False,
        citations=[unique[n] for n in sorted(unique)],
        shape=shape,  # type: ignore[arg-type]
        sentences=sentences,
    )


ABOUT = _answer(
    "What is this about?",
    "open",
    [
        Sentence("The bakery opened in 1998.", [_cite(1, BAKERY, "The bakery opened in 1998.")]),
        Sentence(
            "Marta Kovacs founded it.",
            [_cite(1, BAKERY, "Its founder, Marta Kovacs, bakes every morning.")],
        ),
        Sentence(
            "A ferry runs every 20 minutes.",
            [_cite(2, FERRY, "The ferry crosses the river every 20 minutes.")],
        ),
    ],
)
# Its passage [1] is not the first answer's [1]: a marker must open its own answer's passage.
LIST = _answer(
    "List what the ferry offers.",
    "list",
    [
        Sentence("free bikes", [_cite(1, FERRY, "It carries bikes for free.")]),
        Sentence(HOSTILE, [_cite(2, BAKERY + " " + HOSTILE, HOSTILE)]),
    ],
)


class FixedStream:
    """What :meth:`Assistant.stream` returns: the text word by word, then ``.answer``."""

    def __init__(self, answer: Answer) -> None:
        self._answer = answer
        self.answer: Answer | None = None

    def __iter__(self) -> Iterator[str]:
        for word in self._answer.text.split(" "):
            yield word + " "
        self.answer = self._answer


@pytest.fixture
def fixed_url(settings, fake_embeddings) -> Iterator[str]:
    """The UI over an assistant that answers "about" questions with ABOUT, others with LIST."""
    assistant = Assistant(settings, embeddings=fake_embeddings, llm=FakeListChatModel(responses=[]))
    assistant.index()
    assistant.stream = lambda q, history=None: FixedStream(ABOUT if "about" in q else LIST)  # type: ignore[method-assign]
    yield from serve_ui(assistant)


def _marker(page, reply: int, index: int):
    return page.locator(BOT).nth(reply - 1).locator("a.qa-cite").nth(index)


def _turn(page, turn: int):
    return page.locator(f'#qa-sources .qa-turn[data-turn="{turn}"]')


def test_each_marker_opens_its_passage_with_its_sentences_quote(page, fixed_url) -> None:
    from playwright.sync_api import expect

    _open(page, fixed_url)
    reply = _ask(page, "What is this about?", 1)
    assert "The bakery opened in 1998. [1] Marta Kovacs founded it. [1]" in reply
    expect(page.locator(BOT).first.locator("a.qa-cite")).to_have_count(3)
    passage = page.locator('#qa-sources details[data-n="1"]')
    passage.locator("summary").click()  # collapse it, so that the click has to open it
    expect(passage).not_to_have_attribute("open", "")

    _marker(page, 1, 1).click()  # "Marta Kovacs founded it. [1]"
    expect(passage).to_have_attribute("open", "")
    expect(page.locator(ACTIVE)).to_have_text(["Its founder, Marta Kovacs, bakes every morning."])
    expect(page.locator(ACTIVE)).to_be_in_viewport()
    _marker(page, 1, 0).click()  # the same passage, another sentence: another quote
    expect(page.locator(ACTIVE)).to_have_text(["The bakery opened in 1998."])
    assert page.url == fixed_url  # the page handled the link; no navigation


def test_markers_of_an_earlier_answer_open_that_answers_sources(page, fixed_url) -> None:
    from playwright.sync_api import expect

    _open(page, fixed_url)
    _ask(page, "What is this about?", 1)
    reply = _ask(page, "List what the ferry offers.", 2)
    assert "<img src=x onerror=window.__xss=1>" in reply  # shown as text
    expect(page.locator(BOT).nth(1).locator("li")).to_have_count(2)
    expect(_turn(page, 0)).to_be_hidden()
    expect(_turn(page, 1)).to_be_visible()

    _marker(page, 1, 2).click()  # answer 1: "A ferry runs every 20 minutes. [2]"
    expect(_turn(page, 0)).to_be_visible()
    expect(_turn(page, 1)).to_be_hidden()
    expect(page.locator(ACTIVE)).to_have_text(["The ferry crosses the river every 20 minutes."])

    _marker(page, 2, 0).click()  # answer 2: "free bikes [1]", where [1] is the ferry passage
    expect(_turn(page, 1)).to_be_visible()
    expect(_turn(page, 0)).to_be_hidden()
    expect(page.locator(ACTIVE)).to_have_text(["It carries bikes for free."])
    _marker(page, 2, 1).click()
    expect(page.locator(ACTIVE)).to_have_text([HOSTILE])
    assert page.evaluate("typeof window.__xss") == "undefined"


@pytest.mark.slow
def test_real_models_answer_what_the_document_is_about_in_cited_sentences(
    page, real_assistant: Assistant
) -> None:
    from playwright.sync_api import expect

    for url in serve_ui(real_assistant):
        _open(page, url)
        _ask(page, "What is this document about?", 1, timeout=300_000)
        markers = page.locator(BOT).first.locator("a.qa-cite")
        hrefs = [markers.nth(i).get_attribute("href") or "" for i in range(markers.count())]
        sentences = {h.split("-")[2] for h in hrefs}
        assert len(sentences) >= 2, hrefs  # several sentences, each with its own [n]
        n = hrefs[0].rsplit("-", 1)[1]
        passage = page.locator(f'#qa-sources details[data-n="{n}"]')
        passage.locator("summary").click()
        expect(passage).not_to_have_attribute("open", "")
        markers.first.click()
        expect(passage).to_have_attribute("open", "")
        expect(passage.locator("mark.qa-active").first).to_be_in_viewport()
