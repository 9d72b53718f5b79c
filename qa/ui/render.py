"""Rendering for the chat UI: answers, sources, index status and document lists as Markdown or
HTML, and the page's styles and the script behind the answers' ``[n]`` markers.

Every piece of document text and model output is HTML-escaped (and Markdown-escaped in the
chat) here, before it reaches the page, so a document cannot inject markup or scripts.

Each answer sentence ends with links ``#qa-<turn>-<sentence>-<n>``; the sources panel holds
every turn's passages (``data-turn``, ``data-n``) with each sentence's quote marked
(``data-s``). :data:`CITE_JS` joins them: a click shows that turn's sources, opens passage
``n`` and emphasizes the quote of that sentence. The link carries all three numbers in its
``href`` because Gradio's chat sanitizer strips ``data-`` attributes (it keeps ``class`` and
``href``); the sources panel (``gr.HTML``) is not sanitized, so it can use them.
"""

from __future__ import annotations

import html
import itertools
import logging
import re
from collections.abc import Sequence
from typing import Any

from qa.answer import Answer, Citation, IndexReport, Sentence
from qa.assistant import Assistant
from qa.documents.store import DocumentInfo
from qa.errors import QAError

log = logging.getLogger(__name__)

Message = dict[str, str]
Turn = dict[str, Any]
"""One question and its reply, as kept in the per-session ``gr.State``:
``question``, ``text`` (plain answer text, what the model sees as history), ``message`` (the
rendered chat bubble), ``sources`` (this answer's rendered sources; '' for errors), ``ok``
(False for errors, which are left out of the history) and ``answer`` (the :class:`Answer` as
a dict, for ratings)."""


EMPTY_SOURCES = '<div class="qa-empty">Sources for each answer appear here.</div>'

CSS = """
.qa-sources details { border: 1px solid var(--border-color-primary); border-radius: 6px;
  padding: 4px 8px; margin: 6px 0; }
.qa-sources summary { cursor: pointer; font-weight: 600; }
.qa-chunk { white-space: pre-wrap; font-size: 0.9em; line-height: 1.45; margin-top: 6px; }
.qa-chunk mark { padding: 0 2px; border-radius: 3px; }
.qa-chunk mark.qa-active { outline: 2px solid var(--color-accent); font-weight: 600; }
a.qa-cite { text-decoration: none; font-size: 0.85em; margin-left: 2px; }
.qa-empty, .qa-note { color: var(--body-text-color-subdued); font-size: 0.9em; }
.qa-reply { border-left: 3px solid; padding-left: 8px; }
.qa-unconfirmed { border-color: #d97706; }
.qa-not-found { border-color: #9ca3af; }
.qa-label { font-weight: 600; font-size: 0.85em; text-transform: uppercase; }
#qa-status table, #qa-documents table { font-size: 0.85em; }
#qa-documents th { white-space: nowrap; }
.qa-flip { border: 1px solid var(--border-color-primary); border-radius: 6px; padding: 6px 10px;
  margin: 8px 0; }
.qa-sides { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
.qa-q { font-weight: 600; margin-top: 4px; }
.qa-passages { font-size: 0.85em; white-space: pre-wrap; margin: 4px 0; }
"""

CITE_JS = """
if (!window.qaCiteClicks) {
  window.qaCiteClicks = true;
  document.addEventListener('click', (event) => {
    const link = event.target.closest('a.qa-cite');
    const found = link && /^#qa-(\\d+)-(\\d+)-(\\d+)$/.exec(link.getAttribute('href'));
    if (!found) return;
    event.preventDefault();
    const [, turn, sentence, n] = found;
    const panel = document.getElementById('qa-sources');
    const section = panel && panel.querySelector(`.qa-turn[data-turn="${turn}"]`);
    if (!section) return;
    panel.querySelectorAll('.qa-turn').forEach((t) => { t.hidden = t !== section; });
    panel.querySelectorAll('mark.qa-active').forEach((m) => m.classList.remove('qa-active'));
    const passage = section.querySelector(`details[data-n="${n}"]`);
    if (!passage) return;
    passage.open = true;
    const marks = passage.querySelectorAll(`mark[data-s~="${sentence}"]`);
    marks.forEach((m) => m.classList.add('qa-active'));
    (marks[0] || passage).scrollIntoView({ block: 'center' });
  });
}
"""
"""Installed once per page (``gr.HTML(js_on_load=...)`` of the sources panel); delegated from
the document so it serves every answer, also those rendered after it was installed."""

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~$^])")
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]*")


# --- formatting -------------------------------------------------------------------------------


def md_escape(text: str) -> str:
    """Text that renders verbatim in Gradio's Markdown: HTML-escaped, Markdown punctuation
    backslash-escaped, so neither tags nor Markdown syntax (links, images, emphasis) survive."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(str(text), quote=False))


def quote_span(text: str, quote: str) -> tuple[int, int] | None:
    """Where ``quote`` sits in ``text``: verbatim (ignoring case and spacing), else the sentence
    sharing most of its words (small models paraphrase a little); None if nothing fits."""
    words = quote.split()
    if not words:
        return None
    pattern = r"\s+".join(re.escape(w) for w in words)
    found = re.search(pattern, text, re.IGNORECASE)
    if found:
        return found.start(), found.end()
    wanted = {w.lower().strip(".,;:!?\"'“”‘’()") for w in words}
    best, span = 0.0, None
    for sentence in _SENTENCE.finditer(text):
        have = {w.lower().strip(".,;:!?\"'“”‘’()") for w in sentence.group().split()}
        share = len(wanted & have) / len(wanted)
        if share > best:
            best, span = share, (sentence.start(), sentence.end())
    if span is None or best < 0.6:
        return None
    start, end = span
    while start < end and text[start].isspace():
        start += 1
    return start, end


def verdict_word(verdict: str) -> str:
    """A rating's verdict in words: an emoji thumb is an empty box where no emoji font is
    installed."""
    return "Up" if verdict == "up" else "Down"


def highlight(text: str, quotes: Sequence[tuple[int, str]]) -> str:
    """``text`` HTML-escaped, with each ``(sentence, quote)`` wrapped in ``<mark data-s>``
    naming the answer sentences it backs (where quotes overlap, the overlap names them all)."""
    spans = [(span, s) for s, quote in quotes if quote and (span := quote_span(text, quote))]
    cuts = sorted({0, len(text), *(i for span, _ in spans for i in span)})
    out = []
    for a, b in itertools.pairwise(cuts):
        backs = sorted({s for (x, y), s in spans if x <= a and b <= y})
        piece = html.escape(text[a:b])
        out.append(f'<mark data-s="{" ".join(map(str, backs))}">{piece}</mark>' if backs else piece)
    return "".join(out)


def _quotes(answer: Answer) -> dict[int, list[tuple[int, str]]]:
    """Each cited passage's quotes, by its ``n``: (index of the sentence it backs, quote)."""
    quotes: dict[int, list[tuple[int, str]]] = {}
    for s, sentence in enumerate(answer.sentences):
        for c in sentence.citations:
            quotes.setdefault(c.n, []).append((s, c.quote))
    return quotes


def _source_block(c: Citation, quotes: Sequence[tuple[int, str]], *, open_: bool) -> str:
    label = f"[{c.n}] {c.location}"
    return (
        f'<details data-n="{c.n}"{" open" if open_ else ""}><summary>{html.escape(label)}'
        f' <span class="qa-note">score {c.score:.2f}</span></summary>'
        f'<div class="qa-chunk" style="white-space: pre-wrap">{highlight(c.text, quotes)}</div>'
        "</details>"
    )


def render_sources(answer: Answer) -> str:
    """The sources panel for one answer: its citations (quote highlighted), or, when it
    abstained, the passages that were searched (collapsed)."""
    parts = [f'<div class="qa-sources"><p class="qa-note">Q: {html.escape(answer.question)}</p>']
    if answer.citations:
        quotes = _quotes(answer)
        parts += [
            _source_block(c, quotes.get(c.n) or [(0, c.quote)], open_=True)
            for c in answer.citations
        ]
    else:
        parts.append(
            '<p class="qa-note">No passage supports an answer. Passages searched:</p>'
            if answer.retrieved
            else '<p class="qa-note">No passage supports an answer.</p>'
        )
        parts += [_source_block(c, [], open_=False) for c in answer.retrieved]
    parts.append("</div>")
    return "".join(parts)


def sources_panel(turns: Sequence[Turn]) -> str:
    """The sources panel: every turn's sources (so an earlier answer's ``[n]`` can open its
    own), the latest that has any shown, the others hidden until one of their markers is
    clicked."""
    shown = max((i for i, t in enumerate(turns) if t.get("sources")), default=None)
    if shown is None:
        return EMPTY_SOURCES
    return "".join(
        f'<div class="qa-turn" data-turn="{i}"{"" if i == shown else " hidden"}>'
        f"{t['sources']}</div>"
        for i, t in enumerate(turns)
        if t.get("sources")
    )


def _marker(turn: int, sentence: int, n: int) -> str:
    return f'<a class="qa-cite" href="#qa-{turn}-{sentence}-{n}">{md_escape(f"[{n}]")}</a>'


def _sentence(s: Sentence, index: int, turn: int) -> str:
    markers = "".join(_marker(turn, index, c.n) for c in s.citations)
    return f"{md_escape(' '.join(s.text.split()))} {markers}".rstrip()


def render_answer(answer: Answer, turn: int = 0) -> str:
    """The chat bubble for a verified answer of chat turn ``turn``: each sentence (a list item
    for list answers) escaped and followed by its clickable ``[n]`` markers, then the source
    files and timings."""
    t = answer.timings
    timing = (
        f'<span class="qa-note"><small>first token {t.first_token_ms / 1000:.1f} s · '
        f"total {t.total_ms / 1000:.1f} s</small></span>"
    )
    if answer.abstained:
        return f"{_not_asserted(answer, turn)}\n\n{timing}"
    shown = [_sentence(s, i, turn) for i, s in enumerate(answer.sentences)]
    if not shown:  # an answer without per-sentence citations: its text as it is
        text = md_escape(answer.text)
    elif answer.shape == "list":
        text = "\n".join(f"- {item}" for item in shown)
    else:
        text = " ".join(shown)
    sources = " · ".join(f"[{c.n}] {c.location}" for c in answer.citations)
    return f"{text}\n\n<small>Sources: {md_escape(sources)}</small> {timing}"


_MARKS = re.compile(r"\s*\[(\d+)\]")


def _not_asserted(answer: Answer, turn: int) -> str:
    """The bubble of a reply qa does not assert: *unconfirmed* (the candidate and the sentence
    it came from, its ``[n]`` clickable) or *not found*. Plain HTML, escaped as such: inside an
    HTML block Markdown escapes would show as backslashes."""
    if answer.status == "unconfirmed":
        text = _MARKS.sub("", answer.text)
        links = "".join(
            f' <a class="qa-cite" href="#qa-{turn}-0-{n}">[{n}]</a>'
            for n in dict.fromkeys(_MARKS.findall(answer.text))
        )
        label = "Withheld" if answer.planted else "Unconfirmed"
        return (
            f'<div class="qa-reply qa-unconfirmed"><span class="qa-label">{label}</span><br>'
            f"{html.escape(text)}{links}</div>"
        )
    return (
        '<div class="qa-reply qa-not-found"><span class="qa-label">Not found</span><br>'
        f"{html.escape(answer.text)}<br>"
        '<span class="qa-note">Try rephrasing, or upload a document that covers it.</span></div>'
    )


def render_error(message: str) -> str:
    """A friendly chat bubble for an error."""
    return f"⚠️ {md_escape(message)}"


def chat_messages(turns: Sequence[Turn]) -> list[Message]:
    """The Chatbot value (messages format) for the conversation so far."""
    out: list[Message] = []
    for turn in turns:
        if turn["question"]:
            out.append({"role": "user", "content": md_escape(turn["question"])})
        out.append({"role": "assistant", "content": turn["message"]})
    return out


def model_history(turns: Sequence[Turn]) -> list[Message]:
    """Earlier turns as plain OpenAI-format messages (no markup; errors left out)."""
    out: list[Message] = []
    for turn in turns:
        if turn.get("ok"):
            out += [
                {"role": "user", "content": turn["question"]},
                {"role": "assistant", "content": turn["text"]},
            ]
    return out


def render_status(assistant: Assistant) -> str:
    """The index status panel (Markdown)."""
    try:
        s = assistant.status()
    except QAError as err:
        return f"**Index:** {md_escape(str(err))}"
    except Exception:
        log.exception("status failed")
        return "**Index:** status unavailable (see the server log)"
    rows = [
        ("Documents", s.get("documents", 0)),
        ("Chunks", s.get("chunks", 0)),
        ("Embedding model", s.get("embedding_model", "")),
        ("LLM", s.get("llm_model", "")),
    ]
    return "| Index | |\n|---|---|\n" + "\n".join(f"| {k} | {md_escape(str(v))} |" for k, v in rows)


def render_report(report: IndexReport, added_files: Sequence[str], refused: Sequence[str]) -> str:
    """What an upload changed (Markdown)."""
    lines = []
    if added_files:
        lines.append("**Added:** " + ", ".join(md_escape(n) for n in added_files))
    lines.append(
        f"Indexed {report.files} file(s): {report.added} chunks added, {report.removed} removed, "
        f"{report.unchanged} unchanged in {report.seconds:.1f} s."
    )
    lines += [f"- Refused: {md_escape(r)}" for r in refused]
    lines += [f"- Skipped: {md_escape(r)}" for r in report.skipped]
    return "\n\n".join(lines)


def render_documents(docs: Sequence[DocumentInfo]) -> str:
    """The indexed documents as a Markdown table: name, type, chunks, when indexed (UTC)."""
    if not docs:
        return "*No documents indexed yet. Add some below.*"
    rows = ["| Document | Type | Chunks | Indexed (UTC) |", "|---|---|---|---|"]
    for d in docs:
        when = d.indexed_at.replace("T", " ").removesuffix("+00:00")[:16] or "–"
        rows.append(f"| {md_escape(d.source)} | {md_escape(d.type)} | {d.chunks} | {when} |")
    return "\n".join(rows)
