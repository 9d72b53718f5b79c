"""The HTTP API over fake models: replies and their ``qa`` field, streaming, every bad input,
the key rules, the line in front of the model, documents and ratings (FastAPI's TestClient,
plus one in-process uvicorn server for a client that hangs up mid-stream)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk

from qa import ABSTAIN_TEXT, Assistant
from qa.api.app import build_api
from qa.api.keys import KeyFile
from qa.llm.queue import ModelQueue, QueueFull

from .conftest import BAKERY, free_port, small_chunks
from .test_ui_browser import RoutedFakeLLM

LOCAL = ("127.0.0.1", 50000)
ASK = {"model": "qa", "messages": [{"role": "user", "content": "When did the bakery open?"}]}


@pytest.fixture
def assistant(tmp_path: Path) -> Assistant:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bakery.txt").write_text(BAKERY)
    settings = small_chunks(docs, tmp_path / "index", feedback_path=tmp_path / "feedback.jsonl")
    a = Assistant(settings, embeddings=DeterministicFakeEmbedding(size=32), llm=RoutedFakeLLM())
    a.index()
    return a


@pytest.fixture
def keys(tmp_path: Path) -> tuple[KeyFile, str, str]:
    """A key file with a user key (ann) and an admin key (bob)."""
    file = KeyFile(tmp_path / "keys.json")
    return file, file.add("ann", "user"), file.add("bob", "admin")


def client(assistant: Assistant, host: tuple[str, int] = LOCAL, **options: Any) -> TestClient:
    return TestClient(build_api(assistant, **options), client=host)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def events(body: str) -> list[Any]:
    """The data of each server-sent event (comments skipped)."""
    out = []
    for line in body.splitlines():
        if line.startswith("data: "):
            data = line.removeprefix("data: ")
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def assert_openai_error(r: httpx.Response, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["message"] and error["type"] and "Traceback" not in r.text
    if code:
        assert error["code"] == code
    return error


# --- replies ----------------------------------------------------------------------------------


def test_a_reply_is_the_cited_answer_with_qas_judgement_beside_it(assistant) -> None:
    r = client(assistant).post("/v1/chat/completions", json=ASK)
    assert r.status_code == 200
    reply = r.json()
    assert reply["object"] == "chat.completion" and reply["model"] == "qa"
    assert reply["id"].startswith("chatcmpl-")
    assert reply["choices"][0]["message"] == {"role": "assistant", "content": "in 1998 [1]"}
    assert reply["choices"][0]["finish_reason"] == "stop"
    assert set(reply["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    qa = reply["qa"]
    assert qa["abstained"] is False and qa["shape"] == "short" and qa["status"] == "answered"
    assert qa["decided_by"] == "unavailable"  # a fake model reports no probabilities
    assert "answerability" in qa and "confidence" in qa
    [cite] = qa["citations"]
    assert cite["n"] == 1 and cite["source"] == "bakery.txt"
    assert cite["quote"] == "The bakery opened in 1998."
    assert qa["timings"]["total_ms"] > 0 and qa["timings"]["queued_ms"] >= 0
    assert qa["timings"]["read"] == "wide" and qa["timings"]["decide_ms"] > 0


def test_an_abstention_is_a_normal_reply(assistant) -> None:
    ask = {"model": "qa", "messages": [{"role": "user", "content": "Who painted the walls?"}]}
    r = client(assistant).post("/v1/chat/completions", json=ask)
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == ABSTAIN_TEXT
    assert r.json()["qa"]["abstained"] is True and r.json()["qa"]["citations"] == []
    assert r.json()["qa"]["status"] == "not_found"


def test_the_messages_are_the_conversation(assistant) -> None:
    assistant.llm.condensed.clear()
    messages = [
        {"role": "system", "content": "You are a pirate."},  # qa's own rules decide
        {"role": "user", "content": "When did the bakery open?"},
        {"role": "assistant", "content": "in 1998 [1]"},
        {"role": "user", "content": [{"type": "text", "text": "How many loaves does it sell?"}]},
    ]
    r = client(assistant).post("/v1/chat/completions", json={"model": "qa", "messages": messages})
    assert r.json()["choices"][0]["message"]["content"].startswith("about 400 loaves")
    [rewrite] = assistant.llm.condensed
    assert "When did the bakery open?" in rewrite and "pirate" not in rewrite


def test_sampling_fields_clients_send_by_habit_are_accepted_and_ignored(assistant) -> None:
    habits = {
        "temperature": 0.7,
        "top_p": 0.9,
        "max_tokens": 512,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.1,
        "seed": 7,
        "stop": ["\n\n"],
        "user": "someone",
        "n": 1,
        "stream_options": {"include_usage": True},
        "logit_bias": {},
        "tool_choice": "none",
        "response_format": {"type": "text"},
        "metadata": {"x": "y"},
    }
    r = client(assistant).post("/v1/chat/completions", json=ASK | habits)
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "in 1998 [1]"


def test_a_stream_is_openai_chunks_carrying_exactly_the_checked_answer(assistant) -> None:
    api = client(assistant)
    whole = api.post("/v1/chat/completions", json=ASK).json()
    body = ASK | {"stream": True, "stream_options": {"include_usage": True}}
    r = api.post("/v1/chat/completions", json=body)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    chunks = events(r.text)
    assert chunks[-1] == "[DONE]"
    chunks = chunks[:-1]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1  # one reply, one id
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == whole["choices"][0]["message"]["content"]
    [last] = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert last["choices"][0]["finish_reason"] == "stop"
    assert last["qa"]["citations"][0]["source"] == "bakery.txt"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] >= 0


def test_models_lists_qa_only(assistant) -> None:
    api = client(assistant)
    assert [m["id"] for m in api.get("/v1/models").json()["data"]] == ["qa"]
    assert api.get("/v1/models/qa").json()["id"] == "qa"
    assert_openai_error(api.get("/v1/models/gpt-4o"), 404, "model_not_found")


def test_the_openapi_page_documents_the_api(assistant) -> None:
    api = client(assistant)
    assert "swagger" in api.get("/docs").text.lower()
    schema = api.get("/openapi.json").json()
    assert {"/v1/chat/completions", "/v1/models", "/v1/documents", "/v1/feedback"} <= set(
        schema["paths"]
    )
    assert "QAExtra" in schema["components"]["schemas"]


# --- bad input --------------------------------------------------------------------------------


def _user(content: Any) -> dict:
    return {"model": "qa", "messages": [{"role": "user", "content": content}]}


@pytest.mark.parametrize(
    ("body", "status", "param_or_code"),
    [
        (b'{"model": "qa", "messages": [', 400, None),
        (b"not json at all", 400, None),
        (_user(""), 400, "invalid_question"),
        (_user("   \n\t "), 400, "invalid_question"),
        (_user("x" * 5000), 400, "invalid_question"),
        (ASK | {"model": "gpt-4o"}, 404, "model_not_found"),
        (ASK | {"n": 3}, 400, "n"),
        (ASK | {"tools": [{"type": "function", "function": {"name": "f"}}]}, 400, "tools"),
        (ASK | {"tool_choice": "required"}, 400, "tool_choice"),
        (ASK | {"response_format": {"type": "json_object"}}, 400, "response_format"),
        ({"model": "qa", "messages": []}, 400, "messages"),
        ({"model": "qa"}, 400, "messages"),
        ({"model": "qa", "messages": [{"role": "assistant", "content": "hi"}]}, 400, "messages"),
        ({"model": "qa", "messages": [{"role": "wizard", "content": "hi"}]}, 400, None),
        (_user([{"type": "image_url", "image_url": {"url": "x"}}]), 400, "messages"),
        ([1, 2, 3], 400, None),
    ],
)
def test_bad_requests_get_a_clear_4xx_in_openais_shape(
    assistant, body: Any, status: int, param_or_code: str | None
) -> None:
    api = client(assistant)
    if isinstance(body, bytes):
        r = api.post(
            "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
        )
    else:
        r = api.post("/v1/chat/completions", json=body)
    error = assert_openai_error(r, status)
    if param_or_code:
        assert param_or_code in (error["param"] or "", error["code"] or "")


def test_a_body_over_the_limit_is_refused_with_413(assistant) -> None:
    small = assistant.settings.model_copy(update={"api_max_body_mb": 0.001})  # 1,000 bytes
    api = client(Assistant(small, embeddings=assistant.embeddings, llm=assistant.llm))
    r = api.post("/v1/chat/completions", json=_user("What? " + "pad " * 400))
    assert_openai_error(r, 413, "body_too_large")

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield json.dumps(_user("What? " + "pad " * 400)).encode()

    r = api.post(
        "/v1/chat/completions", content=chunked(), headers={"content-type": "application/json"}
    )
    assert_openai_error(r, 413, "body_too_large")
    assert api.post("/v1/chat/completions", json=ASK).status_code == 200  # small ones pass


# --- who may call -----------------------------------------------------------------------------


def test_without_keys_only_this_machine_may_call(assistant) -> None:
    assert client(assistant).get("/v1/models").status_code == 200
    error = assert_openai_error(
        client(assistant, host=("192.0.2.7", 50000)).get("/v1/models"), 403, "keys_required"
    )
    assert "127.0.0.1" in error["message"] and "qa api keys add" in error["message"]


def test_with_keys_every_call_needs_one(assistant, keys) -> None:
    file, ann, _ = keys
    api = client(assistant, keys=file)
    for method, path in [
        ("GET", "/v1/models"),
        ("POST", "/v1/chat/completions"),
        ("GET", "/v1/documents"),
        ("POST", "/v1/feedback"),
    ]:
        assert_openai_error(api.request(method, path, json=ASK), 401, "missing_key")
        wrong = api.request(method, path, json=ASK, headers=auth(ann[:-3] + "abc"))
        assert_openai_error(wrong, 401, "invalid_api_key")
    assert_openai_error(api.get("/v1/models", headers=auth("qa-12345678-" + "x" * 40)), 401)
    assert api.post("/v1/chat/completions", json=ASK, headers=auth(ann)).status_code == 200
    # With keys set, callers elsewhere are served too (the key is the check).
    remote = client(assistant, host=("192.0.2.7", 50000), keys=file)
    assert remote.get("/v1/documents", headers=auth(ann)).status_code == 200


def test_changing_documents_takes_an_admin_key(assistant, keys, tmp_path: Path) -> None:
    file, ann, bob = keys
    api = client(assistant, keys=file)
    doc = ("lighthouse.txt", b"The lighthouse keeper is Ada Quint.\n", "text/plain")
    error = assert_openai_error(
        api.post("/v1/documents", files={"file": doc}, headers=auth(ann)), 403, "admin_required"
    )
    assert "ann" in error["message"]
    assert_openai_error(api.delete("/v1/documents/bakery.txt", headers=auth(ann)), 403)
    assert [d["name"] for d in api.get("/v1/documents", headers=auth(ann)).json()["data"]] == [
        "bakery.txt"
    ]
    assert api.post("/v1/documents", files={"file": doc}, headers=auth(bob)).status_code == 201
    assert api.delete("/v1/documents/lighthouse.txt", headers=auth(bob)).status_code == 200
    # The Evaluate tab's admins (QA_ADMINS) are admins here too, whatever their key's role.
    promoted = client(assistant, keys=KeyFile(file.path, admins=["ann"]))
    r = promoted.post("/v1/documents", files={"file": doc}, headers=auth(ann))
    assert r.status_code == 201


def test_keys_are_stored_hashed_and_revoked_at_once(keys) -> None:
    file, ann, bob = keys
    stored = file.path.read_text()
    assert ann not in stored and bob not in stored and "$2b$" in stored
    assert file.path.stat().st_mode & 0o077 == 0  # hashes readable by the owner only
    assert file.check(ann).name == "ann" and not file.check(ann).admin
    assert file.check(bob).admin
    assert file.remove("ann") == 1
    fresh = KeyFile(file.path)
    assert fresh.check(ann) is None and fresh.check(bob) is not None
    assert file.check(ann) is None  # a running server re-reads the changed file


def test_qa_api_keys_add_prints_the_key_once(tmp_path: Path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from qa.cli import app

    path = tmp_path / "keys.json"
    monkeypatch.setenv("QA_API_KEYS_FILE", str(path))
    added = CliRunner().invoke(app, ["api", "keys", "add", "carol", "--role", "admin"])
    assert added.exit_code == 0, added.output
    key = added.stdout.strip().splitlines()[-1]
    assert KeyFile(path).check(key).admin
    listed = CliRunner().invoke(app, ["api", "keys", "list"])
    assert "carol" in listed.stdout and key not in listed.stdout
    assert CliRunner().invoke(app, ["api", "keys", "add", "dave", "--role", "root"]).exit_code == 1
    assert CliRunner().invoke(app, ["api", "keys", "remove", "carol"]).exit_code == 0
    assert KeyFile(path).check(key) is None


# --- the line in front of the model ------------------------------------------------------------


def test_a_full_line_gets_429_with_retry_after(assistant) -> None:
    line = ModelQueue(slots=1, max_waiting=1)
    holder = line.enter()
    assert holder.wait(1)  # answering
    waiter = line.enter()  # waiting: the line is full now
    api = client(assistant, line=line)
    r = api.post("/v1/chat/completions", json=ASK)
    error = assert_openai_error(r, 429, "queue_full")
    assert int(r.headers["Retry-After"]) >= 1 and "retry" in error["message"]
    assert_openai_error(api.post("/v1/chat/completions", json=ASK | {"stream": True}), 429)
    waiter.cancel()
    with holder:
        pass
    assert api.post("/v1/chat/completions", json=ASK).status_code == 200


def test_the_line_is_first_come_first_served_and_a_cancelled_place_leaves_it() -> None:
    line = ModelQueue(slots=1, max_waiting=3)  # room for four: one answering, three waiting
    first, second, third, _ = (line.enter() for _ in range(4))
    with pytest.raises(QueueFull):
        line.enter()
    assert line.enter(limit=False)  # the browser's users are never turned away
    assert first.wait(1) and not third.wait(0.05)
    assert (second.position(), third.position()) == (0, 1)
    second.cancel()  # gave up while waiting
    assert line.waiting == 3 and third.position() == 0
    order: list[str] = []
    waiting = threading.Thread(target=lambda: third.wait(5) and order.append("third"))
    waiting.start()
    time.sleep(0.1)
    assert order == []  # still held by the first
    with first:
        pass
    waiting.join(5)
    assert order == ["third"] and line.running == 1


MADE: list[str] = []
LONG_REPLY = "Answer: " + "a very long reply " * 20


class SlowLLM(RoutedFakeLLM):
    """Replies one character every 50 ms, noting each in ``MADE``."""

    def _stream(
        self, messages: list[BaseMessage], *args: Any, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        for ch in LONG_REPLY:
            time.sleep(0.05)
            MADE.append(ch)
            yield ChatGenerationChunk(message=AIMessageChunk(content=ch))


def test_a_client_that_hangs_up_frees_its_place(assistant) -> None:
    import uvicorn

    slow = Assistant(assistant.settings, embeddings=assistant.embeddings, llm=SlowLLM())
    line = ModelQueue(slots=1, max_waiting=4)
    server = uvicorn.Server(
        uvicorn.Config(build_api(slow, line=line), port=free_port(), log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.config.port}/v1/chat/completions"
    try:
        while not server.started:
            time.sleep(0.05)
        body = _user("Tell me everything about the walls.") | {"stream": True}
        with httpx.Client(timeout=10) as http:
            with http.stream("POST", url, json=body) as answering:
                answering_lines = answering.iter_lines()  # kept: dropping it closes the stream
                next(answering_lines)  # the first event: it is being answered
                with http.stream("POST", url, json=body) as waiting:
                    waiting_lines = waiting.iter_lines()
                    next(waiting_lines)
                    deadline = time.monotonic() + 5
                    while (line.running, line.waiting) != (1, 1) and time.monotonic() < deadline:
                        time.sleep(0.05)
                    assert (line.running, line.waiting) == (1, 1)
                # the waiting client hung up
                deadline = time.monotonic() + 5
                while line.waiting and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert line.waiting == 0
            # the answering one too: its answer stops at the next token
            deadline = time.monotonic() + 5
            while line.running and time.monotonic() < deadline:
                time.sleep(0.05)
            assert line.running == 0
            made = len(MADE)
            time.sleep(0.5)
            assert len(MADE) == made < len(LONG_REPLY)
    finally:
        server.should_exit = True
        thread.join(10)


# --- documents and ratings --------------------------------------------------------------------


def test_upload_ask_list_and_delete_round_trip(assistant) -> None:
    api = client(assistant)
    doc = ("lighthouse.txt", b"The lighthouse keeper is Ada Quint.\n", "text/plain")
    r = api.post("/v1/documents", files=[("file", doc)])
    assert r.status_code == 201 and r.json()["added"] == ["lighthouse.txt"]
    assert r.json()["chunks_added"] >= 1
    assert (assistant.settings.seeds_dir / "lighthouse.txt").exists()
    names = [d["name"] for d in api.get("/v1/documents").json()["data"]]
    assert names == ["bakery.txt", "lighthouse.txt"]
    ask = _user("Who is the lighthouse keeper?")
    assert (
        "Ada Quint"
        in api.post("/v1/chat/completions", json=ask).json()["choices"][0]["message"]["content"]
    )
    r = api.delete("/v1/documents/lighthouse.txt")
    assert r.status_code == 200 and r.json()["chunks_removed"] >= 1
    assert [d["name"] for d in api.get("/v1/documents").json()["data"]] == ["bakery.txt"]
    assert (assistant.settings.seeds_dir / "lighthouse.txt").exists()  # the file stays
    assert_openai_error(api.delete("/v1/documents/lighthouse.txt"), 404, "document_not_found")
    assert api.delete("/v1/documents/bakery.txt?delete_file=true").status_code == 200
    assert not (assistant.settings.seeds_dir / "bakery.txt").exists()


def test_uploads_get_the_browsers_checks(assistant) -> None:
    api = client(assistant)
    bad = [
        ("file", ("tool.exe", b"MZ\x00\x01", "application/octet-stream")),
        ("file", ("empty.txt", b"", "text/plain")),
        ("file", (".hidden.md", b"# Hidden\n\nText.\n", "text/markdown")),
    ]
    error = assert_openai_error(api.post("/v1/documents", files=bad), 415, "unsupported_file")
    assert "tool.exe" in error["message"] and "empty.txt" in error["message"]
    mixed = [*bad[:1], ("file", ("bakery.txt", b"Another bakery opened in 2001.\n", "text/plain"))]
    r = api.post("/v1/documents", files=mixed)
    assert r.status_code == 201
    assert r.json()["added"] == ["bakery-1.txt (renamed from bakery.txt)"]
    assert len(r.json()["refused"]) == 1 and "tool.exe" in r.json()["refused"][0]
    assert not list(assistant.settings.seeds_dir.glob("tool*"))
    assert_openai_error(api.post("/v1/documents"), 400)  # no file at all


def test_a_rating_by_reply_id_lands_in_the_feedback_file(assistant, keys) -> None:
    file, ann, bob = keys
    api = client(assistant, keys=file)
    reply = api.post("/v1/chat/completions", json=ASK, headers=auth(ann)).json()
    r = api.post("/v1/feedback", json={"id": reply["id"], "verdict": "up"}, headers=auth(ann))
    assert r.status_code == 201 and r.json()["id"].startswith("fb-")
    assert r.json()["expectation"] == "facts: 1998"
    down = {"id": reply["id"], "verdict": "down", "correction": "in 1999"}
    assert api.post("/v1/feedback", json=down, headers=auth(ann)).status_code == 201
    lines = [json.loads(x) for x in assistant.settings.feedback_path.read_text().splitlines()]
    assert [x["question"] for x in lines] == ["When did the bakery open?"] * 2
    assert [x["feedback"]["verdict"] for x in lines] == ["up", "down"]
    assert {x["feedback"]["user"] for x in lines} == {"ann"}
    assert lines[1]["facts"] == [["1999"]]
    # A thumbs down that says nothing to check, an unknown id, another caller's reply.
    vague = {"id": reply["id"], "verdict": "down"}
    assert_openai_error(api.post("/v1/feedback", json=vague, headers=auth(ann)), 400)
    unknown = {"id": "chatcmpl-nope", "verdict": "up"}
    assert_openai_error(api.post("/v1/feedback", json=unknown, headers=auth(ann)), 404)
    theirs = {"id": reply["id"], "verdict": "up"}
    assert_openai_error(api.post("/v1/feedback", json=theirs, headers=auth(bob)), 404)
    bad = {"id": reply["id"], "verdict": "meh"}
    assert_openai_error(api.post("/v1/feedback", json=bad, headers=auth(ann)), 400)
    assert len(assistant.settings.feedback_path.read_text().splitlines()) == 2


def test_the_ui_is_mounted_beside_the_api_on_one_server(assistant) -> None:
    from qa.api.serve import build_server

    app = build_server(assistant, ui=True, index=False)
    with TestClient(app, client=LOCAL) as both:
        page = both.get("/")
        assert page.status_code == 200 and "gradio" in page.text.lower()
        assert both.get("/v1/models").json()["data"][0]["id"] == "qa"
        r = both.post("/v1/chat/completions", json=ASK)
        assert r.json()["choices"][0]["message"]["content"] == "in 1998 [1]"


def test_without_keys_qa_api_listens_on_127_0_0_1_and_says_so(assistant, keys, monkeypatch) -> None:
    import uvicorn

    from qa.api.serve import serve

    bound: list[str] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **_: bound.append(host))
    said: list[str] = []
    serve(assistant, host="0.0.0.0", port=8000, ui=False, index=False, say=said.append)
    assert bound == ["127.0.0.1"]
    assert any("127.0.0.1 only" in line and "0.0.0.0" in line for line in said)
    assert any("localhost:8000/v1" in line and "/docs" in line for line in said)
    file, _, _ = keys
    with_keys = assistant.settings.model_copy(update={"api_keys_file": file.path})
    served = Assistant(with_keys, embeddings=assistant.embeddings, llm=assistant.llm)
    said.clear()
    serve(served, host="0.0.0.0", port=8000, ui=False, index=False, say=said.append)
    assert bound[-1] == "0.0.0.0" and any("API keys: 2" in line for line in said)


@pytest.mark.e2e  # a real server and Gradio's client: ~20 s
# Gradio's queue calls pandas APIs that pandas 3 deprecates; not ours to fix.
@pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword).*")
def test_browser_and_api_users_share_one_line_on_one_server(assistant) -> None:
    import uvicorn
    from gradio_client import Client

    from qa.api.serve import build_server

    app = build_server(assistant, ui=True, index=False)
    line = app.state.line
    server = uvicorn.Server(uvicorn.Config(app, port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        url = f"http://127.0.0.1:{server.config.port}"
        holder = line.enter()  # an API caller holds the model
        assert holder.wait(1)
        answers: list[str] = []

        def browser_user() -> None:
            ui = Client(f"{url}/", verbose=False)
            _, chat, _ = ui.predict("When did the bakery open?", api_name="/chat")
            answers.append(str(chat[-1]["content"]))

        user = threading.Thread(target=browser_user)
        user.start()
        deadline = time.monotonic() + 20
        while not line.waiting and time.monotonic() < deadline:
            time.sleep(0.05)
        assert line.waiting == 1 and answers == []  # the browser's question waits its turn
        with holder:
            pass
        user.join(30)
        assert answers and "1998" in answers[0]
        api = httpx.post(f"{url}/v1/chat/completions", json=ASK, timeout=30)
        assert api.json()["choices"][0]["message"]["content"] == "in 1998 [1]"
    finally:
        server.should_exit = True
        thread.join(10)


def test_health_says_what_the_background_refit_is_doing(assistant: Assistant) -> None:
    from qa.llm.queue import ChatFirst
    from qa.trust.refit import BackgroundRefit

    refit = BackgroundRefit(assistant, ChatFirst())
    refit.status = "Checking answers on questions made from your documents (3 of 40)…"
    state = client(assistant, refit=refit).get("/health").json()
    assert state["refit"] == {"running": False, "note": refit.status, "error": ""}
    assert "refit" not in client(assistant).get("/health").json()
