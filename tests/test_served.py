"""LLM server backends without a server: request shape (httpx MockTransport) and failures."""

from __future__ import annotations

import json
import math
import time

import httpx
import pytest

from qa import Settings
from qa.answering.prompts import GRAMMAR
from qa.errors import BackendError
from qa.llm.models import make_llm
from qa.llm.served import OllamaServerChat, OpenAIServerChat

from .conftest import free_port, silent_server


def _recorder(requests: list[dict], response: dict) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(json.loads(request.content))
        return httpx.Response(200, json=response)

    return httpx.MockTransport(handle)


OPENAI_REPLY = {
    "id": "1",
    "object": "chat.completion",
    "created": 0,
    "model": "m",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}
    ],
}


@pytest.mark.parametrize("send_grammar", [True, False])
def test_openai_backend_sends_the_grammar_only_when_configured(send_grammar: bool) -> None:
    requests: list[dict] = []
    llm = OpenAIServerChat(
        model="m",
        api_key="k",
        max_tokens=160,
        send_grammar=send_grammar,
        http_client=httpx.Client(transport=_recorder(requests, OPENAI_REPLY)),
    )
    assert (
        llm.bind(grammar=GRAMMAR, prefill="Answer:", max_tokens=48).invoke("hello").content == "Hi"
    )
    (body,) = requests
    assert body["max_tokens"] == 48 and "max_completion_tokens" not in body
    assert "prefill" not in json.dumps(body)
    assert body.get("grammar") == (GRAMMAR if send_grammar else None)


def test_ollama_backend_maps_max_tokens_and_drops_the_grammar() -> None:
    requests: list[dict] = []
    reply = {"model": "m", "message": {"role": "assistant", "content": "Hi"}, "done": True}
    llm = OllamaServerChat(
        model="m", client_kwargs={"transport": _recorder(requests, reply)}, num_predict=160
    )
    assert (
        llm.bind(grammar=GRAMMAR, prefill="Answer:", max_tokens=48).invoke("hello").content == "Hi"
    )
    (body,) = requests
    assert body["options"]["num_predict"] == 48 and "grammar" not in json.dumps(body)
    assert "prefill" not in json.dumps(body)


def test_backend_setting_picks_the_served_chat_model() -> None:
    assert isinstance(make_llm(Settings(llm_backend="openai")), OpenAIServerChat)
    ollama = make_llm(Settings(llm_backend="ollama", llm_model="qwen2.5-coder:1.5b"))
    assert isinstance(ollama, OllamaServerChat) and ollama.model == "qwen2.5-coder:1.5b"


@pytest.mark.parametrize(
    ("backend", "setting"), [("openai", "QA_OPENAI_BASE_URL"), ("ollama", "QA_OLLAMA_BASE_URL")]
)
def test_a_server_that_is_down_gives_an_actionable_error(backend: str, setting: str) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    llm = make_llm(Settings(llm_backend=backend, openai_base_url=url, ollama_base_url=url))
    t0 = time.perf_counter()
    with pytest.raises(BackendError, match=f"Cannot reach the LLM server at {url}.*{setting}"):
        list(llm.stream("hello"))
    assert time.perf_counter() - t0 < 5


@pytest.mark.parametrize("backend", ["openai", "ollama"])
def test_a_server_that_hangs_fails_within_the_timeout(backend: str) -> None:
    with silent_server() as port:
        url = f"http://127.0.0.1:{port}"
        settings = Settings(
            llm_backend=backend, openai_base_url=url, ollama_base_url=url, request_timeout=0.5
        )
        t0 = time.perf_counter()
        with pytest.raises(BackendError, match="did not answer within 0.5s"):
            make_llm(settings).invoke("hello")
        assert time.perf_counter() - t0 < 5  # one retry at most


def _entry(token: str, logprob: float, alternatives: dict[str, float]) -> dict:
    top = [{"token": t, "logprob": lp} for t, lp in alternatives.items()]
    return {"token": token, "logprob": logprob, "top_logprobs": top}


# The server writes the label itself: "Answer:" then " Osaka", then the end of the line.
TOKENS = [
    _entry("Answer", -0.01, {"Answer": -0.01}),
    _entry(":", -0.01, {":": -0.01}),
    _entry(" Osaka", -0.2, {" Osaka": -0.2, " none": -1.9, " Tokyo": -3.0}),
    _entry("\n", -0.1, {"\n": -0.1}),
]


def _openai_stream(requests: list[dict]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(json.loads(request.content))
        lines = []
        for entry in TOKENS:
            delta = {"index": 0, "delta": {"content": entry["token"]}}
            delta["logprobs"] = {"content": [entry]}
            chunk = {"id": "1", "object": "chat.completion.chunk", "created": 0, "model": "m"}
            lines.append("data: " + json.dumps(chunk | {"choices": [delta]}))
        lines.append("data: [DONE]")
        return httpx.Response(200, text="\n\n".join(lines) + "\n\n")

    return httpx.MockTransport(handle)


def _ollama_stream(requests: list[dict]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(json.loads(request.content))
        lines = [
            {
                "model": "m",
                "message": {"role": "assistant", "content": e["token"]},
                "done": False,
                "logprobs": [e],
            }
            for e in TOKENS
        ]
        lines.append({"model": "m", "message": {"role": "assistant", "content": ""}, "done": True})
        return httpx.Response(200, text="\n".join(json.dumps(x) for x in lines) + "\n")

    return httpx.MockTransport(handle)


@pytest.mark.parametrize("backend", ["openai", "ollama"])
def test_served_log_probabilities_become_the_answer_signals(backend: str) -> None:
    requests: list[dict] = []
    if backend == "openai":
        transport = _openai_stream(requests)
        llm = OpenAIServerChat(
            model="m", api_key="k", http_client=httpx.Client(transport=transport)
        )
    else:
        llm = OllamaServerChat(model="m", client_kwargs={"transport": _ollama_stream(requests)})
    chunks = list(llm.bind(prefill="Answer:", hidden_state=True).stream("q"))
    (body,) = requests
    assert body["logprobs"] is True and body["top_logprobs"] == 20
    firsts = [
        c.response_metadata["first_token_probs"]
        for c in chunks
        if "first_token_probs" in c.response_metadata
    ]
    assert len(firsts) == 1  # at the answer's first token, after the label
    assert firsts[0][" Osaka"] == pytest.approx(math.exp(-0.2))
    assert firsts[0][" none"] == pytest.approx(math.exp(-1.9))
    (logprobs,) = [
        c.response_metadata["token_logprobs"]
        for c in chunks
        if c.response_metadata.get("token_logprobs")
    ]
    assert logprobs == [-0.2, -0.1]  # the answer's tokens, not the label's


def test_served_models_ask_for_log_probabilities_only_when_signals_are_wanted() -> None:
    requests: list[dict] = []
    llm = OpenAIServerChat(
        model="m",
        api_key="k",
        http_client=httpx.Client(transport=_recorder(requests, OPENAI_REPLY)),
    )
    llm.invoke("hello")
    assert "logprobs" not in requests[0]
