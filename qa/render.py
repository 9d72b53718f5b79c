"""Rendering for the chat UI: answers, sources, index status and document lists as Markdown or
HTML.

Every piece of document text and model output is HTML-escaped (and Markdown-escaped in the
chat) here, before it reaches the page, so a document cannot inject markup or scripts.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Sequence
from typing import Any

from qa.answer import Answer, Citation, IndexReport
from qa.assistant import Assistant
from qa.errors import QAError
from qa.store import DocumentInfo

log = logging.getLogger(__name__)

Message = dict[str, str]
Turn = dict[str, Any]
"""One question and its reply, as kept in the per-session ``gr.State``:
``question``, ``text`` (plain answer text, what the model sees as history), ``message`` (the
rendered chat bubble), ``sources`` (rendered sources panel), ``ok`` (False for errors, which
are left out of the history) and ``answer`` (the :class:`Answer` as a dict, for ratings)."""


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


def highlight(text: str, quote: str) -> str:
    """``text`` HTML-escaped, with ``quote`` wrapped in ``<mark>``."""
    span = quote_span(text, quote) if quote else None
    if span is None:
        return html.escape(text)
    a, b = span
    return f"{html.escape(text[:a])}<mark>{html.escape(text[a:b])}</mark>{html.escape(text[b:])}"


def _source_block(c: Citation, *, open_: bool) -> str:
    label = f"[{c.n}] {c.location}"
    return (
        f"<details{' open' if open_ else ''}><summary>{html.escape(label)}"
        f' <span class="qa-note">score {c.score:.2f}</span></summary>'
        f'<div class="qa-chunk" style="white-space: pre-wrap">{highlight(c.text, c.quote)}</div>'
        "</details>"
    )


def render_sources(answer: Answer) -> str:
    """The sources panel for one answer: its citations (quote highlighted), or, when it
    abstained, the passages that were searched (collapsed)."""
    parts = [f'<div class="qa-sources"><p class="qa-note">Q: {html.escape(answer.question)}</p>']
    if answer.citations:
        parts += [_source_block(c, open_=True) for c in answer.citations]
    else:
        parts.append(
            '<p class="qa-note">No passage supports an answer. Passages searched:</p>'
            if answer.retrieved
            else '<p class="qa-note">No passage supports an answer.</p>'
        )
        parts += [_source_block(c, open_=False) for c in answer.retrieved]
    parts.append("</div>")
    return "".join(parts)


def render_answer(answer: Answer) -> str:
    """The chat bubble for a verified answer: escaped text, source files, timings."""
    t = answer.timings
    timing = (
        f'<span class="qa-note"><small>first token {t.first_token_ms / 1000:.1f} s · '
        f"total {t.total_ms / 1000:.1f} s</small></span>"
    )
    if answer.abstained:
        body = (
            f'<div class="qa-abstain">🤷 <em>{md_escape(answer.text)}</em><br>'
            '<span class="qa-note">The documents don\'t say; try rephrasing or upload a '
            "document that covers it.</span></div>"
        )
        return f"{body}\n\n{timing}"
    sources = " · ".join(f"[{c.n}] {c.location}" for c in answer.citations)
    return f"{md_escape(answer.text)}\n\n<small>Sources: {md_escape(sources)}</small> {timing}"


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
