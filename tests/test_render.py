"""Open answers in the chat: each sentence with its clickable ``[n]`` markers, and the sources
panel those markers point into (per-sentence quotes, one section per turn), all escaped."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from qa.answer import Answer, Citation, Sentence
from qa.ui.render import (
    EMPTY_SOURCES,
    highlight,
    md_escape,
    render_answer,
    render_sources,
    sources_panel,
)

BAKERY = "The bakery opened in 1998. Its founder, Marta Kovacs, bakes every morning."
FERRY = "The ferry crosses the river every 20 minutes. It carries bikes for free."
HOSTILE = 'Chef <script>alert(1)</script> says "hi" & <img src=x onerror=alert(2)>.'


def _cite(n: int, text: str, quote: str, source: str = "doc.txt") -> Citation:
    return Citation(n=n, source=source, chunk_id=f"c{n}", text=text, score=0.5, quote=quote)


def _answer(sentences: list[Sentence], shape: str = "open") -> Answer:
    unique = {c.n: c for s in sentences for c in s.citations}
    return Answer(
        question="What is this about?",
        text=" ".join(s.text for s in sentences),
        abstained=False,
        citations=[unique[n] for n in sorted(unique)],
        shape=shape,  # type: ignore[arg-type]
        sentences=sentences,
    )


OPEN = _answer(
    [
        Sentence("The bakery opened in 1998.", [_cite(1, BAKERY, "The bakery opened in 1998.")]),
        Sentence(
            "Marta Kovacs founded it.",
            [_cite(1, BAKERY, "Its founder, Marta Kovacs, bakes every morning.")],
        ),
        Sentence(
            "A ferry runs every 20 minutes and takes bikes.",
            [
                _cite(2, FERRY, "The ferry crosses the river every 20 minutes.", "ferry.md"),
                _cite(1, BAKERY, "The bakery opened in 1998."),
            ],
        ),
    ]
)


class _Tags(HTMLParser):
    """Every start tag of an HTML string, with its attributes."""

    def __init__(self, markup: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(markup)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _markers(message: str) -> list[tuple[int, ...]]:
    """(turn, sentence, n) of each ``[n]`` link in a chat bubble, in order."""
    hrefs = [a["href"] or "" for tag, a in _Tags(message).tags if tag == "a"]
    assert all(re.fullmatch(r"#qa-\d+-\d+-\d+", h) for h in hrefs), hrefs
    return [tuple(int(x) for x in h.removeprefix("#qa-").split("-")) for h in hrefs]


def _marks(sources: str) -> dict[int, list[str]]:
    """The ``data-s`` of the marks inside each passage, by the passage's ``n``."""
    out: dict[int, list[str]] = {}
    n = 0
    for tag, attrs in _Tags(sources).tags:
        if tag == "details":
            n = int(attrs["data-n"] or 0)
            out[n] = []
        elif tag == "mark":
            out[n].append(attrs["data-s"] or "")
    return out


def test_each_sentence_is_followed_by_markers_for_its_own_passages() -> None:
    message = render_answer(OPEN, turn=3)
    assert _markers(message) == [(3, 0, 1), (3, 1, 1), (3, 2, 2), (3, 2, 1)]
    first, rest = message.split("\n\n", 1)
    assert first.startswith(md_escape("The bakery opened in 1998.") + ' <a class="qa-cite"')
    assert md_escape("Marta Kovacs founded it.") in first and "\n" not in first  # one paragraph
    assert rest.startswith(f"<small>Sources: {md_escape('[1] doc.txt · [2] ferry.md')}</small>")


def test_every_marker_finds_its_sentences_quote_in_its_passage() -> None:
    marks = _marks(render_sources(OPEN))
    for _, sentence, n in _markers(render_answer(OPEN)):
        assert any(str(sentence) in s.split() for s in marks[n]), (sentence, n)
    # Passage 1 backs sentences 0 and 2 with the same quote and sentence 1 with another.
    assert marks == {1: ["0 2", "1"], 2: ["2"]}


def test_overlapping_quotes_are_split_so_each_part_names_its_sentences() -> None:
    text = "one two three four"
    out = highlight(text, [(0, "one two three"), (1, "two three four")])
    assert out == (
        '<mark data-s="0">one </mark><mark data-s="0 1">two three</mark>'
        '<mark data-s="1"> four</mark>'
    )


def test_list_answers_are_a_markdown_list_with_markers_per_item() -> None:
    answer = _answer(
        [
            Sentence("Marta Kovacs", [_cite(1, BAKERY, "Its founder, Marta Kovacs, bakes")]),
            Sentence("the ferry", [_cite(2, FERRY, "The ferry crosses the river")]),
        ],
        shape="list",
    )
    items = render_answer(answer).split("\n\n")[0].split("\n")
    assert [i.split(" <a")[0] for i in items] == ["- Marta Kovacs", "- the ferry"]
    assert _markers(render_answer(answer)) == [(0, 0, 1), (0, 1, 2)]


def test_yes_no_answers_show_the_verdict_and_the_passage_that_settles_it() -> None:
    answer = _answer(
        [Sentence("No, it opened in 1998.", [_cite(1, BAKERY, "The bakery opened in 1998.")])],
        shape="yesno",
    )
    message = render_answer(answer)
    assert message.startswith(md_escape("No, it opened in 1998.") + " <a")
    assert _markers(message) == [(0, 0, 1)]
    assert _marks(render_sources(answer)) == {1: ["0"]}


def test_hostile_sentences_and_quotes_stay_text() -> None:
    answer = _answer([Sentence(HOSTILE, [_cite(1, HOSTILE + " [x](javascript:1)", HOSTILE)])])
    message, sources = render_answer(answer), render_sources(answer)
    assert [t for t, _ in _Tags(message).tags] == ["a", "small", "span", "small"]
    assert {t for t, _ in _Tags(sources).tags} == {"div", "p", "details", "summary", "span", "mark"}
    assert "&lt;script&gt;" in message and "&lt;script&gt;" in sources
    assert _marks(sources) == {1: ["0"]}


def test_the_panel_holds_every_turn_and_shows_the_latest_with_sources() -> None:
    assert sources_panel([]) == EMPTY_SOURCES
    assert sources_panel([{"sources": ""}]) == EMPTY_SOURCES
    turns = [{"sources": "<p>A</p>"}, {"sources": "<p>B</p>"}, {"sources": ""}]  # then an error
    assert sources_panel(turns) == (
        '<div class="qa-turn" data-turn="0" hidden><p>A</p></div>'
        '<div class="qa-turn" data-turn="1"><p>B</p></div>'
    )
