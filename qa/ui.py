"""Browser chat UI (Gradio): streamed, cited answers, sources, document upload, index status.

Only formatting and :class:`~qa.Assistant` calls live here; retrieval and prompting stay in the
chain. Every piece of document text and model output is HTML-escaped (and Markdown-escaped in
the chat) before it reaches the page, so a document cannot inject markup or scripts.
"""

from __future__ import annotations

import filecmp
import html
import logging
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import gradio as gr

from qa.answer import Answer, Citation, IndexReport
from qa.assistant import Assistant
from qa.errors import QAError, UnsupportedFileError
from qa.ingest import SUPPORTED_SUFFIXES, read_text

log = logging.getLogger(__name__)

Message = dict[str, str]
Turn = dict[str, Any]
"""One question and its reply, as kept in the per-session ``gr.State``:
``question``, ``text`` (plain answer text, what the model sees as history), ``message`` (the
rendered chat bubble), ``sources`` (rendered sources panel) and ``ok`` (False for errors, which
are left out of the history)."""

DEFAULT_EXAMPLES = [
    "What is this document about?",
    "Who are the main people mentioned?",
    "When and where did the main event take place?",
]
GENERIC_ERROR = "Something went wrong while answering. Please try again; details are in the log."
EMPTY_SOURCES = '<div class="qa-empty">Sources for each answer appear here.</div>'
CURSOR = " ▍"

CSS = """
.qa-sources details { border: 1px solid var(--border-color-primary); border-radius: 6px;
  padding: 4px 8px; margin: 6px 0; }
.qa-sources summary { cursor: pointer; font-weight: 600; }
.qa-chunk { white-space: pre-wrap; font-size: 0.9em; line-height: 1.45; margin-top: 6px; }
.qa-chunk mark { padding: 0 2px; border-radius: 3px; }
.qa-empty, .qa-note { color: var(--body-text-color-subdued); font-size: 0.9em; }
.qa-abstain { border-left: 3px solid #d97706; padding-left: 8px; }
#qa-status table { font-size: 0.9em; }
"""

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


# --- callbacks (plain functions, testable without a server) -----------------------------------


def respond(
    assistant: Assistant, question: str, turns: list[Turn] | None
) -> Iterator[tuple[str, list[Message], list[Turn], str]]:
    """Answer ``question`` as a follow-up of ``turns``, yielding
    (textbox, chatbot, turns, sources) as the answer streams in."""
    turns = list(turns or [])
    history = model_history(turns)
    # Lone surrogates (invalid unicode) cannot be sent to the browser as UTF-8.
    question = str(question or "").encode("utf-8", "replace").decode("utf-8")
    turn: Turn = {"question": question.strip(), "text": "", "message": CURSOR, "ok": False}
    turn["sources"] = turns[-1]["sources"] if turns else EMPTY_SOURCES
    turns.append(turn)
    yield "", chat_messages(turns), turns, turn["sources"]
    try:
        stream = assistant.stream(question, history)
        text = ""
        for token in stream:
            text += token
            turn["message"] = md_escape(text) + CURSOR
            yield "", chat_messages(turns), turns, turn["sources"]
        answer = stream.answer
        if answer is None:
            raise RuntimeError("the answer stream ended without an answer")
        turn.update(
            text=answer.text,
            message=render_answer(answer),
            sources=render_sources(answer),
            ok=True,
        )
    except QAError as err:
        turn["message"] = render_error(str(err))
    except Exception:
        log.exception("answering %r failed", question[:200])
        turn["message"] = render_error(GENERIC_ERROR)
    yield "", chat_messages(turns), turns, turn["sources"]


def new_chat() -> tuple[str, list[Message], list[Turn], str]:
    """Forget the conversation of this browser session."""
    return "", [], [], EMPTY_SOURCES


def _free_name(folder: Path, name: str) -> Path:
    dest = folder / name
    stem, suffix = dest.stem, dest.suffix
    n = 1
    while dest.exists():
        dest = folder / f"{stem}-{n}{suffix}"
        n += 1
    return dest


def add_documents(
    assistant: Assistant,
    files: Sequence[str | Path] | str | Path | None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[str, str]:
    """Copy uploaded .txt/.md files into the documents folder and index them.

    Returns (report markdown, status markdown). Refuses what the indexer would skip (type,
    size, empty, binary) before copying anything; an existing different file with the same
    name is kept and the upload gets a ``-1`` suffix. If indexing fails, the copied files are
    removed again.
    """
    if files is None:
        files = []
    elif isinstance(files, str | Path):
        files = [files]
    folder = assistant.settings.seeds_dir
    max_bytes = int(assistant.settings.max_file_mb * 1e6)
    copied: list[Path] = []
    added: list[str] = []
    refused: list[str] = []
    for item in files:
        src = Path(getattr(item, "name", item))
        name = src.name  # the base name only: an upload cannot land outside the folder
        if name.startswith("."):
            refused.append(f"{name}: hidden files are not indexed; rename it without the dot")
            continue
        try:  # the indexer's own check: type, size, empty, binary
            read_text(src, max_bytes=max_bytes)
        except UnsupportedFileError as err:
            refused.append(str(err))
            continue
        folder.mkdir(parents=True, exist_ok=True)
        existing = folder / name
        if existing.exists() and filecmp.cmp(src, existing, shallow=False):
            added.append(f"{name} (already there)")
            continue
        dest = _free_name(folder, name)
        shutil.copyfile(src, dest)
        copied.append(dest)
        added.append(dest.name if dest.name == name else f"{dest.name} (renamed from {name})")
    if not copied and not added:
        msg = "\n\n".join(f"**Refused:** {md_escape(r)}" for r in refused) or "No file given."
        return msg, render_status(assistant)
    try:
        report = assistant.index(progress=progress, on_wait=log.warning)
    except Exception as err:
        for path in copied:
            path.unlink(missing_ok=True)
        if isinstance(err, QAError):
            reason = str(err)
        else:
            log.exception("indexing uploaded files failed")
            reason = "unexpected error (see the server log)"
        msg = f"**Indexing failed, the upload was not added:** {md_escape(reason)}"
        return msg, render_status(assistant)
    return render_report(report, added, refused), render_status(assistant)


# --- the app ----------------------------------------------------------------------------------


def build_app(assistant: Assistant, examples: Sequence[str] | None = None) -> gr.Blocks:
    """The Gradio app over ``assistant`` (not launched; see :func:`launch`)."""
    examples = list(examples or DEFAULT_EXAMPLES)

    def chat_fn(question: str, turns: list[Turn]):
        yield from respond(assistant, question, turns)

    def upload_fn(files, progress=gr.Progress()):  # noqa: B008 - Gradio's injection idiom
        def report(done: int, total: int) -> None:
            progress((done, total), desc="Embedding chunks", unit="chunks")

        try:
            return add_documents(assistant, files, progress=report)
        except UnsupportedFileError as err:
            return f"**Refused:** {md_escape(str(err))}", render_status(assistant)
        except Exception:
            log.exception("upload failed")
            return "**Upload failed** (see the server log).", render_status(assistant)

    with gr.Blocks(title="qa: ask your documents") as demo:
        gr.Markdown(
            "## Ask your documents\nAnswers come only from the indexed documents, "
            "with their sources, or an honest *the documents don't say*."
        )
        turns = gr.State([])
        with gr.Row():
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(
                    label="Chat",
                    elem_id="qa-chat",
                    height=480,
                    sanitize_html=True,
                    render_markdown=True,
                    latex_delimiters=[],
                    feedback_options=None,
                    buttons=["copy"],
                    placeholder="Ask a question about the documents.",
                )
                with gr.Row():
                    question = gr.Textbox(
                        show_label=False,
                        placeholder="Ask a question and press Enter",
                        lines=1,
                        max_lines=4,
                        scale=5,
                        elem_id="qa-question",
                        autofocus=True,
                    )
                    send = gr.Button("Ask", variant="primary", scale=1, elem_id="qa-send")
                with gr.Row():
                    gr.Examples(
                        examples=[[e] for e in examples], inputs=[question], label="Examples"
                    )
                    clear = gr.Button("New chat", size="sm", elem_id="qa-new-chat")
            with gr.Column(scale=2):
                gr.Markdown("### Sources")
                sources = gr.HTML(EMPTY_SOURCES, elem_id="qa-sources")
                with gr.Accordion("Documents", open=False):
                    status = gr.Markdown(elem_id="qa-status")
                    upload = gr.File(
                        label="Add documents (.txt, .md)",
                        file_count="multiple",
                        file_types=sorted(SUPPORTED_SUFFIXES),
                        elem_id="qa-upload",
                    )
                    report = gr.Markdown(elem_id="qa-report")

        chat_io: dict[str, Any] = {
            "fn": chat_fn,
            "inputs": [question, turns],
            "outputs": [question, chatbot, turns, sources],
            "concurrency_limit": 1,
            "concurrency_id": "models",
        }
        question.submit(**chat_io, api_name="chat")
        send.click(**chat_io, api_visibility="private")
        reset: dict[str, Any] = {
            "fn": new_chat,
            "inputs": None,
            "outputs": [question, chatbot, turns, sources],
            "api_visibility": "private",
        }
        clear.click(**reset)
        chatbot.clear(**reset)  # the chatbot's own trash button must forget the session too
        upload.upload(
            upload_fn,
            [upload],
            [report, status],
            concurrency_limit=1,
            concurrency_id="models",
            api_visibility="private",
        ).then(lambda: None, None, [upload], api_visibility="private")
        demo.load(lambda: render_status(assistant), None, [status], api_visibility="private")
    demo.queue(default_concurrency_limit=1)
    return demo


def auth_from_env(value: str | None = None) -> tuple[str, str] | None:
    """``QA_AUTH=user:pass`` as a (user, password) pair; None when unset."""
    value = os.environ.get("QA_AUTH", "") if value is None else value
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise ValueError("QA_AUTH must look like user:password")
    return user, password


def launch(
    assistant: Assistant,
    host: str = "127.0.0.1",
    port: int = 7860,
    auth: tuple[str, str] | None = None,
) -> None:
    """Serve the UI until interrupted (local only unless ``host`` says otherwise)."""
    demo = build_app(assistant)
    # The UI is up at once; the first question waits for the warm-up instead of paying for it.
    threading.Thread(target=assistant.warm_up, daemon=True).start()
    demo.launch(
        server_name=host,
        server_port=port,
        auth=auth or auth_from_env(),
        share=False,
        ssr_mode=False,
        show_error=False,
        css=CSS,
        theme=gr.themes.Soft(),
    )
