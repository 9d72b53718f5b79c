"""The HTTP API as other programs meet it: a real ``qa api`` process answered by the real local
model, driven by the official ``openai`` package (streaming and not) and by curl from a shell
script (``scripts/api-smoke``); and a small gold set answered alike through the API and through
``Assistant.ask``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from qa import Assistant, Settings
from qa.api.keys import KeyFile

from .conftest import BAKERY, ROOT, free_port

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

GOLD = [
    {"id": "open", "question": "When did the bakery open?", "facts": [["1998"]]},
    {"id": "founder", "question": "Who founded the bakery?", "facts": [["kovacs"]]},
    {"id": "loaves", "question": "How many loaves does the shop sell a day?", "facts": [["400"]]},
    {"id": "walls", "question": "Who painted the walls of the bakery?", "unanswerable": True},
]
"""A small gold set over ``BAKERY`` (evals/README.md's format)."""


class Server:
    def __init__(self, url: str, user_key: str, admin_key: str, docs: Path, log: Path) -> None:
        self.url, self.user_key, self.admin_key = url, user_key, admin_key
        self.docs, self.log = docs, log


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``qa api`` over the bakery document, with a user key (ann) and an admin key (bob)."""
    root = tmp_path_factory.mktemp("api")
    docs = root / "docs"
    docs.mkdir()
    (docs / "bakery.txt").write_text(BAKERY)
    keys = KeyFile(root / "keys.json")
    ann, bob = keys.add("ann", "user"), keys.add("bob", "admin")
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "QA_SEEDS_DIR": str(docs),
        "QA_INDEX_DIR": str(root / "index"),
        "QA_API_KEYS_FILE": str(root / "keys.json"),
        "QA_FEEDBACK_PATH": str(root / "feedback.jsonl"),
    }
    log = root / "server.log"
    cmd = [sys.executable, "-m", "qa", "api", "--port", str(port)]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while True:  # up at once; ready once indexed and warmed up
            if proc.poll() is not None:
                pytest.fail(f"qa api exited:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=2).json()["ready"]:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"qa api not ready after 600 s:\n{log.read_text()[-3000:]}")
            time.sleep(1)
        yield Server(url, ann, bob, docs, log)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_start_up_says_where_the_api_is_and_who_may_call(server: Server) -> None:
    said = server.log.read_text()
    assert f"{server.url.replace('127.0.0.1', 'localhost')}/v1" in said and "/docs" in said
    assert "API keys: 2" in said


def test_the_openai_package_asks_streaming_and_not(server: Server) -> None:
    import openai

    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.user_key, max_retries=0)
    assert [m.id for m in client.models.list()] == ["qa"]
    question = [{"role": "user", "content": "When did the bakery open?"}]
    reply = client.chat.completions.create(
        model="qa", messages=question, temperature=0.7, top_p=0.9, user="someone"
    )
    content = reply.choices[0].message.content
    assert content and "1998" in content and "[1]" in content
    qa = reply.model_extra["qa"]
    assert qa["abstained"] is False and qa["decided_by"] == "hidden-state"
    assert 0 <= qa["answerability"] <= 1 and qa["shape"] == "short"
    assert qa["citations"][0]["source"] == "bakery.txt"

    chunks = list(
        client.chat.completions.create(
            model="qa", messages=question, stream=True, stream_options={"include_usage": True}
        )
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == content
    [last] = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert last.model_extra["qa"]["citations"][0]["source"] == "bakery.txt"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0

    follow_up = [
        *question,
        {"role": "assistant", "content": content},
        {"role": "user", "content": "Who founded it?"},
    ]
    answer = client.chat.completions.create(model="qa", messages=follow_up)
    assert "kovacs" in (answer.choices[0].message.content or "").lower()

    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-wrong", max_retries=0).models.list()
    with pytest.raises(openai.NotFoundError, match="does not exist") as missing:
        client.chat.completions.create(model="gpt-4o", messages=question)
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="qa", messages=question, n=2)


def test_a_rating_by_reply_id_lands_in_the_feedback_file(server: Server) -> None:
    import openai

    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.user_key, max_retries=0)
    reply = client.chat.completions.create(
        model="qa", messages=[{"role": "user", "content": "How many loaves does it sell?"}]
    )
    r = httpx.post(
        f"{server.url}/v1/feedback",
        json={"id": reply.id, "verdict": "down", "correction": "about 450 loaves"},
        headers={"Authorization": f"Bearer {server.user_key}"},
    )
    assert r.status_code == 201, r.text
    feedback = server.docs.parent / "feedback.jsonl"
    [line] = [json.loads(x) for x in feedback.read_text().splitlines()]
    assert line["id"] == r.json()["id"] and line["facts"] == [["450"]]
    assert line["feedback"]["user"] == "ann"


def test_curl_from_a_shell_script_asks_uploads_lists_and_deletes(server: Server) -> None:
    env = {**os.environ, "QUESTION": "When did the bakery open?"}
    with pytest.raises(subprocess.CalledProcessError):  # ann may not upload
        subprocess.run(
            [str(ROOT / "scripts/api-smoke"), server.url, server.user_key],
            check=True,
            capture_output=True,
            env=env,
            timeout=300,
        )
    (server.docs / "smoke-lighthouse.txt").unlink(missing_ok=True)
    done = subprocess.run(
        [str(ROOT / "scripts/api-smoke"), server.url, server.user_key, server.admin_key],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    steps = dict(line.split(": ", 1) for line in done.stdout.splitlines())
    steps = {step: json.loads(body) for step, body in steps.items()}
    assert "1998" in steps["ask"]["choices"][0]["message"]["content"]
    assert steps["upload"]["added"] == ["smoke-lighthouse.txt"]
    listed = [d["name"] for d in steps["list"]["data"]]
    assert listed == ["bakery.txt", "smoke-lighthouse.txt"]
    assert "Ada Quint" in steps["ask-upload"]["choices"][0]["message"]["content"]
    assert steps["ask-upload"]["qa"]["citations"][0]["source"] == "smoke-lighthouse.txt"
    assert steps["delete"]["deleted"] is True
    assert [d["name"] for d in steps["list-after"]["data"]] == ["bakery.txt"]
    assert not (server.docs / "smoke-lighthouse.txt").exists()


def test_a_gold_set_gets_the_same_answers_as_through_the_python_api(
    server: Server, tmp_path: Path
) -> None:
    import openai

    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.user_key, max_retries=0)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bakery.txt").write_text(BAKERY)
    local = Assistant(Settings(seeds_dir=docs, index_dir=tmp_path / "index"))
    local.index()
    for item in GOLD:
        asked = [{"role": "user", "content": item["question"]}]
        over_http = client.chat.completions.create(model="qa", messages=asked)
        in_python = local.ask(item["question"])
        assert over_http.choices[0].message.content == in_python.text, item["id"]
        assert over_http.model_extra["qa"]["abstained"] == in_python.abstained
        if item.get("unanswerable"):
            assert in_python.abstained, item["id"]
        else:
            assert item["facts"][0][0] in in_python.text.lower(), item["id"]
