"""Browser chat UI (Gradio): streamed, cited answers, sources, 👍/👎 ratings, documents, past
chats.

This module is the wiring; rendering (and all escaping) is in :mod:`qa.ui.render`, the chat's
callbacks in :mod:`qa.ui.chat`, the side panels' in :mod:`qa.ui.panels`. Only formatting and
:class:`~qa.Assistant` calls live here; retrieval and prompting stay in the chain.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import gradio as gr

from qa.assistant import Assistant
from qa.documents.ingest import SUPPORTED_SUFFIXES
from qa.errors import QAError, UnsupportedFileError
from qa.evaluation.runs import EvalPaths
from qa.llm.queue import ChatFirst, ModelQueue
from qa.ui import panels
from qa.ui import workspace_picker as picker
from qa.ui.chat import new_chat, refuse, respond, wait_for, wait_in_line
from qa.ui.eval_jobs import may_administer, refusal
from qa.ui.evaluate import build_evaluate_tab
from qa.ui.render import (
    CITE_JS,
    CSS,  # noqa: F401 - re-exported by qa.ui
    EMPTY_SOURCES,
    Turn,
    md_escape,
)
from qa.ui.startup import Startup, notes_pending, startup_note
from qa.ui.workspace_picker import PageWorkspaces
from qa.workspaces import DEFAULT, Workspaces

if TYPE_CHECKING:
    from qa.trust.refit import BackgroundRefit

log = logging.getLogger(__name__)

DEFAULT_EXAMPLES = [
    "What is this document about?",
    "Who are the main people mentioned?",
    "When and where did the main event take place?",
]
CORRECTION_LABEL = "What should it have said? (the short answer: a name, a number)"
_FORMATS = (".txt", ".md", ".pdf", ".html", ".docx")  # the label's order; .htm = .html
UPLOAD_LABEL = (
    "Add documents ("
    + " ".join([*_FORMATS, *sorted(SUPPORTED_SUFFIXES - {*_FORMATS, ".htm"})])
    + ")"
)

# --- the app ----------------------------------------------------------------------------------


def _user(request: gr.Request | None) -> str:
    """The login name with QA_AUTH, else '' (everyone shares the anonymous history)."""
    return str(getattr(request, "username", None) or "")


def build_app(
    assistant: Assistant,
    examples: Sequence[str] | None = None,
    *,
    evals: EvalPaths | None = None,
    chat_first: ChatFirst | None = None,
    startup: Startup | None = None,
    model_queue: ModelQueue | None = None,
    refit: BackgroundRefit | None = None,
    workspaces: Workspaces | None = None,
) -> gr.Blocks:
    """The Gradio app over ``assistant`` (not served: :func:`qa.api.serve.serve` mounts it
    beside the HTTP API): the chat, and the Evaluate tab over the gold sets and reports in
    ``evals`` (default ``evals/``); chat answers go before evaluation items (``chat_first``, see
    :mod:`qa.ui.eval_jobs`). With ``startup`` the page shows what is still loading, and
    questions wait for it. With ``model_queue`` (shared with the HTTP API, :mod:`qa.llm.queue`)
    questions wait in that line, first come first served with the API's callers, and its
    ``chat_first`` is the one used. With ``refit`` the page shows its progress. The page's
    workspace picker (:mod:`qa.ui.workspace_picker`) takes each workspace's Assistant from
    ``workspaces`` (give the HTTP API's, so both share them; default: one over ``assistant``)."""
    examples = list(examples or DEFAULT_EXAMPLES)
    first = model_queue.chat_first if model_queue else chat_first or ChatFirst()
    pages = PageWorkspaces(workspaces or Workspaces(assistant), first, evals)
    private: dict[str, Any] = {"api_visibility": "private"}
    models: dict[str, Any] = {"concurrency_limit": 1, "concurrency_id": "models", **private}

    def on(ws: str | None) -> Assistant:
        """The picked workspace's Assistant; a one-line message on the page if it is gone."""
        try:
            return pages.get(ws).assistant
        except QAError as err:
            raise gr.Error(str(err), print_exception=False) from err

    def chat_fn(question: str, turns: list[Turn], ws: str | None):
        try:
            asked = pages.get(ws).assistant
        except QAError as err:
            yield from refuse(question, turns, str(err))
            return
        yield from wait_for(startup, question, turns)
        if model_queue is None:
            with first.chat():
                yield from respond(asked, question, turns)
            return
        place = model_queue.enter(limit=False)  # a browser user is never turned away
        try:
            yield from wait_in_line(place, question, turns)
            with place, first.chat():
                yield from respond(asked, question, turns)
        finally:
            place.cancel()  # a closed page leaves the line

    def bar(progress: gr.Progress) -> Callable[[int, int], None]:
        return lambda done, total: progress((done, total), desc="Embedding chunks", unit="chunks")

    def panel(ws: str | None) -> tuple[Any, ...]:
        shown = on(ws)
        p = panels.documents_panel(shown)
        label = f"Delete its file from {shown.settings.seeds_dir.name}/ too"
        return p.status, p.table, gr.update(choices=p.names, value=None), gr.update(label=label)

    def upload_fn(files, ws: str | None, progress=gr.Progress()):  # noqa: B008 - Gradio's idiom
        try:
            report = panels.add_documents(on(ws), files, progress=bar(progress))[0]
        except UnsupportedFileError as err:
            report = f"**Refused:** {md_escape(str(err))}"
        except gr.Error:
            raise
        except Exception:
            log.exception("upload failed")
            report = "**Upload failed** (see the server log)."
        return report, *panel(ws)

    def reindex_fn(ws: str | None, progress=gr.Progress()):  # noqa: B008
        return panels.reindex(on(ws), bar(progress)), *panel(ws)

    def ask_remove_fn(name: str | None, delete_file: bool, ws: str | None):
        question = panels.confirm_removal(on(ws), name, delete_file)
        note = "" if question else "Pick a document to remove."
        return question, gr.update(visible=bool(question)), note

    def remove_fn(name: str | None, delete_file: bool, ws: str | None):
        return (
            panels.remove_document(on(ws), name, delete_file),
            gr.update(visible=False),
            *panel(ws),
        )

    def like_fn(turns: list[Turn], ws: str | None, data: gr.LikeData, request: gr.Request):
        note, pending = panels.rate(on(ws), turns, data.index, data.liked, _user(request))
        return note, gr.update(visible=pending is not None), pending

    def correction_fn(turns, pending, correction, dont_say, ws, request: gr.Request):
        note, still_open = panels.save_correction(
            on(ws), turns, pending, correction, dont_say, _user(request)
        )
        if still_open:
            return note, gr.update(visible=True), pending, correction, dont_say
        return note, gr.update(visible=False), None, "", False

    # A chat's value (the chat_id state, the past chats' values) names its workspace too.
    def chats_update(user: str, chat: str | None) -> Any:
        return gr.update(choices=picker.chat_choices(pages, user), value=chat or None)

    def save_fn(turns: list[Turn], chat: str | None, ws: str | None, request: gr.Request):
        user = _user(request)
        chat_id = panels.save_chat(on(ws), user, picker.split_chat(chat)[1], turns)
        chat = picker.chat_value(ws or DEFAULT, chat_id) if chat_id else ""
        return chat, chats_update(user, chat)

    def open_fn(chat: str | None, request: gr.Request):
        ws, chat_id = picker.split_chat(chat)
        shown, opened, sources, chat_id, note = panels.open_chat(on(ws), _user(request), chat_id)
        chat = picker.chat_value(ws, chat_id) if chat_id else ""
        return shown, opened, sources, chat, note, gr.update(value=ws) if chat_id else gr.update()

    def delete_chat_fn(chat: str | None, request: gr.Request):
        ws, chat_id = picker.split_chat(chat)
        note = panels.delete_chat(on(ws or None), _user(request), chat_id)
        return *new_chat(), "", chats_update(_user(request), None), note

    def switch_fn(ws: str | None, chat: str | None, request: gr.Request):
        """Another workspace picked: its documents, and a new chat unless the chat on screen
        is one of its own (a past chat reopened picks its workspace)."""
        docs = panel(ws)
        if picker.split_chat(chat)[0] == ws:
            return *[gr.update()] * 7, *docs
        return *new_chat(), "", chats_update(_user(request), None), "", *docs

    def create_fn(name: str, request: gr.Request):
        user = _user(request)
        may = may_administer(demo.auth is not None, user, assistant.settings.admins)
        note, made = picker.create_note(pages, name, may, refusal(user))
        if not made:
            return note, gr.update(), gr.update()
        return note, gr.update(choices=pages.names(), value=made), ""

    def load_fn(request: gr.Request):
        names = gr.update(choices=pages.names())
        return names, *panel(DEFAULT), chats_update(_user(request), None)

    with gr.Blocks(title="qa: ask your documents") as demo:
        turns = gr.State([])
        chat_id = gr.State("")
        pending = gr.State(None)
        with gr.Sidebar(open=True, width=280):
            ws_pick = gr.Dropdown(
                choices=pages.names(), value=DEFAULT, label=picker.LABEL, elem_id="qa-workspace"
            )
            with gr.Accordion("New workspace", open=False, elem_id="qa-new-workspace"):
                ws_name = gr.Textbox(
                    show_label=False,
                    placeholder="its name, e.g. manuals",
                    elem_id="qa-ws-name",
                )
                ws_create = gr.Button("Create", size="sm", elem_id="qa-ws-create")
                ws_note = gr.Markdown(elem_id="qa-ws-note")
            gr.Markdown("### Chats")
            clear = gr.Button("New chat", size="sm", elem_id="qa-new-chat")
            chats = gr.Radio(choices=[], label="Past chats", elem_id="qa-chats", show_label=False)
            delete_chat_btn = gr.Button("Delete this chat", size="sm", elem_id="qa-delete-chat")
        with gr.Tabs(elem_id="qa-tabs"):
            with gr.Tab("Chat", elem_id="qa-tab-chat"):
                gr.Markdown(
                    "## Ask your documents\nAnswers come only from the indexed documents, "
                    "with their sources, or an honest *the documents don't say*. "
                    "Rate answers with the thumbs under them: each rating becomes a "
                    "regression test."
                )
                ready_note = gr.Markdown(startup_note(startup, refit), elem_id="qa-startup")
                with gr.Row():
                    with gr.Column(scale=3):
                        chatbot = gr.Chatbot(
                            label="Chat",
                            elem_id="qa-chat",
                            height=480,
                            sanitize_html=True,
                            render_markdown=True,
                            latex_delimiters=[],
                            feedback_options=("Like", "Dislike"),
                            buttons=["copy"],
                            placeholder="Ask a question about the documents.",
                        )
                        feedback_note = gr.Markdown(elem_id="qa-feedback-note")
                        with gr.Group(visible=False, elem_id="qa-correction") as correction_form:
                            correction = gr.Textbox(
                                label=CORRECTION_LABEL,
                                lines=1,
                                elem_id="qa-correction-text",
                            )
                            dont_say = gr.Checkbox(
                                label="The documents don't say", elem_id="qa-dont-say"
                            )
                            save_feedback = gr.Button("Save feedback", elem_id="qa-save-feedback")
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
                        gr.Examples(
                            examples=[[e] for e in examples], inputs=[question], label="Examples"
                        )
                    with gr.Column(scale=2):
                        gr.Markdown("### Sources")
                        sources = gr.HTML(EMPTY_SOURCES, elem_id="qa-sources", js_on_load=CITE_JS)
                        with gr.Accordion("Documents", open=False):
                            status = gr.Markdown(elem_id="qa-status")
                            documents = gr.Markdown(elem_id="qa-documents")
                            pick = gr.Dropdown(choices=[], label="Document", elem_id="qa-doc-pick")
                            delete_file = gr.Checkbox(
                                label="Delete its file too",
                                elem_id="qa-delete-file",
                            )
                            with gr.Row():
                                remove = gr.Button("Remove…", size="sm", elem_id="qa-remove")
                                reindex = gr.Button("Re-index all", size="sm", elem_id="qa-reindex")
                            with gr.Group(visible=False, elem_id="qa-confirm") as confirm:
                                confirm_text = gr.Markdown(elem_id="qa-confirm-text")
                                with gr.Row():
                                    confirm_yes = gr.Button(
                                        "Yes, remove",
                                        variant="stop",
                                        size="sm",
                                        elem_id="qa-confirm-yes",
                                    )
                                    confirm_no = gr.Button(
                                        "Cancel", size="sm", elem_id="qa-confirm-no"
                                    )
                            upload = gr.File(
                                label=UPLOAD_LABEL,
                                file_count="multiple",
                                file_types=sorted(SUPPORTED_SUFFIXES),
                                elem_id="qa-upload",
                            )
                            report = gr.Markdown(elem_id="qa-report")
            with gr.Tab("Evaluate", elem_id="qa-tab-evaluate"):
                build_evaluate_tab(demo, pages, ws_pick)

        doc_panel = [status, documents, pick, delete_file]
        chat_io: dict[str, Any] = {
            "fn": chat_fn,
            "inputs": [question, turns, ws_pick],
            "outputs": [question, chatbot, turns, sources],
            # The LLM decodes up to `parallel` answers together (qa.llm.engine); with a line
            # shared with the API, questions wait in that line instead of Gradio's.
            "concurrency_limit": assistant.settings.parallel
            + (model_queue.max_waiting if model_queue else 0),
            "concurrency_id": "chat",
            # A question sent while an answer streams in is asked after it, with the
            # conversation as it then is (Gradio's default drops it).
            "trigger_mode": "always_last",
        }
        save_io: dict[str, Any] = {
            "fn": save_fn,
            "inputs": [turns, chat_id, ws_pick],
            "outputs": [chat_id, chats],
            **private,
        }
        question.submit(**chat_io, api_name="chat").then(**save_io)
        send.click(**chat_io, api_visibility="private").then(**save_io)
        reset: dict[str, Any] = {
            "fn": lambda: (*new_chat(), "", gr.update(value=None), ""),
            "inputs": None,
            "outputs": [question, chatbot, turns, sources, chat_id, chats, feedback_note],
            **private,
        }
        # Another chat on screen: a pending 👎 form would point at the wrong answer.
        close_form: dict[str, Any] = {
            "fn": lambda: (gr.update(visible=False), None),
            "inputs": None,
            "outputs": [correction_form, pending],
            **private,
        }
        clear.click(**reset).then(**close_form)
        # The chatbot's own trash button must forget the session too.
        chatbot.clear(**reset).then(**close_form)
        chats.input(
            open_fn, [chats], [chatbot, turns, sources, chat_id, feedback_note, ws_pick], **private
        ).then(**close_form)
        delete_chat_btn.click(
            delete_chat_fn,
            [chat_id],
            [question, chatbot, turns, sources, chat_id, chats, feedback_note],
            **private,
        ).then(**close_form)
        chatbot.like(
            like_fn, [turns, ws_pick], [feedback_note, correction_form, pending], **private
        )
        save_feedback.click(
            correction_fn,
            [turns, pending, correction, dont_say, ws_pick],
            [feedback_note, correction_form, pending, correction, dont_say],
            **private,
        )
        uploaded = upload.upload(upload_fn, [upload, ws_pick], [report, *doc_panel], **models)
        uploaded.then(lambda: None, None, [upload], **private)
        reindexed = reindex.click(reindex_fn, [ws_pick], [report, *doc_panel], **models)
        remove.click(
            ask_remove_fn, [pick, delete_file, ws_pick], [confirm_text, confirm, report], **private
        )
        confirm_no.click(lambda: gr.update(visible=False), None, [confirm], **private)
        removed = confirm_yes.click(
            remove_fn, [pick, delete_file, ws_pick], [report, confirm, *doc_panel], **models
        )
        ws_pick.change(
            switch_fn,
            [ws_pick, chat_id],
            [question, chatbot, turns, sources, chat_id, chats, feedback_note, *doc_panel],
            **private,
        ).then(**close_form)
        ws_create.click(create_fn, [ws_name], [ws_note, ws_pick, ws_name], **private)
        demo.load(load_fn, None, [ws_pick, *doc_panel, chats], **private)
        if startup is not None or refit is not None:
            timer = gr.Timer(1.0, active=notes_pending(startup, refit))
            timer.tick(
                lambda: (
                    startup_note(startup, refit),
                    gr.Timer(active=notes_pending(startup, refit)),
                ),
                None,
                [ready_note, timer],
                **private,
            )
            # A change to the documents may start a refit: follow it on the page.
            for changed in (uploaded, reindexed, removed):
                changed.then(lambda: gr.Timer(active=True), None, [timer], **private)
    demo.queue(default_concurrency_limit=1)
    return demo


Login = tuple[str, str]


def auth_from_env(value: str | None = None) -> Login | list[Login] | None:
    """``QA_AUTH=user:pass`` as a (user, password) pair, ``QA_AUTH=ann:pw1,bob:pw2`` as a list
    of pairs (each user then has their own chat history); None when unset. A value whose comma
    parts are not all ``user:pass`` is one user whose password contains commas."""
    value = os.environ.get("QA_AUTH", "") if value is None else value
    if not value:
        return None
    parts = value.split(",")
    if len(parts) > 1 and all(_login(p) for p in parts):
        return [_login(p) for p in parts]  # type: ignore[misc]
    login = _login(value)
    if login is None:
        raise ValueError("QA_AUTH must look like user:password (or ann:pw1,bob:pw2)")
    return login


def _login(value: str) -> Login | None:
    user, sep, password = value.partition(":")
    return (user, password) if sep and user and password else None
