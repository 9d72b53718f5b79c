"""Chat models for LLM servers: any OpenAI-compatible server, or Ollama.

Both take the same call options as the local :class:`~qa.llm.llamacpp.LlamaCppChat`, so the chain
does not need to know which backend answers. The chain binds ``grammar=<GBNF>`` (llama.cpp's way to
force the ``Answer:`` format); a served model sends it only where the server understands it and
otherwise drops it, leaving the format to the prompt. Servers cannot prefill a reply, so they write
the ``Answer:`` label themselves, which the chain accepts.

Servers report no hidden states, but both APIs report token log-probabilities. When the chain
asks for signals (``hidden_state=True``), a served model requests them and reports what the
local model does from them: ``first_token_probs`` at the answer's first token (after the label)
and ``token_logprobs``, which the answer decision's log-probability variant reads
(:mod:`qa.trust.answerability`). A server that reports none leaves them empty, and the answer says
so. Connection failures, timeouts and refused requests become a
:class:`~qa.errors.BackendError` naming the server.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import ollama
import openai
from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_ollama import ChatOllama
from langchain_openai import ChatOpenAI

from qa.config import Settings
from qa.errors import BackendError

# One retry rides out a dropped connection; more would multiply the wait on a dead server.
_MAX_RETRIES = 1
TOP_LOGPROBS = 20
"""Alternatives asked for at each token: as many as the local model reports at the first."""


@contextmanager
def server_errors(url: str, setting: str, timeout: float) -> Iterator[None]:
    """Turn a server's connection, timeout and HTTP errors into a ``BackendError``."""
    try:
        yield
    except (openai.APITimeoutError, httpx.TimeoutException) as err:
        raise BackendError(
            f"The LLM server at {url} did not answer within {timeout:g}s; check that it is "
            "running and not overloaded, or raise QA_REQUEST_TIMEOUT"
        ) from err
    except (openai.APIConnectionError, ConnectionError, httpx.TransportError) as err:
        raise BackendError(
            f"Cannot reach the LLM server at {url}; start it (see 'Scaling out' in the README) "
            f"or point {setting} at it"
        ) from err
    except (openai.APIStatusError, ollama.ResponseError) as err:
        raise BackendError(
            f"The LLM server at {url} refused the request ({err}); check QA_LLM_MODEL (for "
            "Ollama: `ollama pull <model>`) and, for a hosted API, QA_OPENAI_API_KEY"
        ) from err


def _token_entries(chunk: ChatGenerationChunk) -> list[dict[str, Any]]:
    """The ``{token, logprob, top_logprobs}`` entries a streamed chunk carries (OpenAI nests
    them under ``content``; Ollama gives the list)."""
    raw = (chunk.generation_info or {}).get("logprobs") or chunk.message.response_metadata.get(
        "logprobs"
    )
    if isinstance(raw, dict):
        raw = raw.get("content")
    return [e if isinstance(e, dict) else dict(e) for e in raw or []]


def _in_answer(text: str, label: str) -> bool:
    """Whether ``text`` (the reply so far) has reached the answer: past the ``label`` the
    server wrote itself ("Answer:"), or at its first word when it wrote none."""
    rest = text.lstrip()
    if label and label.lower().startswith(rest.lower()):
        return False
    if label and rest.lower().startswith(label.lower()):
        rest = rest[len(label) :]
    return bool(rest.strip())


class _ServerModel:
    """Runs a chat model's calls inside ``self._errors()`` (see :func:`server_errors`) and
    turns the server's token log-probabilities into the local model's signals."""

    def _errors(self) -> Any:
        raise NotImplementedError

    def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:
        with self._errors():
            return super()._generate(*args, **kwargs)  # type: ignore[misc]

    def _stream(self, *args: Any, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        label = kwargs.get("prefill", "")
        text, first, logprobs = "", False, []
        with self._errors():
            for chunk in super()._stream(*args, **kwargs):  # type: ignore[misc]
                for entry in _token_entries(chunk):
                    text += entry.get("token", "")
                    if not first and _in_answer(text, label):
                        first = True
                        top = entry.get("top_logprobs") or [entry]
                        chunk.message.response_metadata["first_token_probs"] = {
                            dict(t)["token"]: math.exp(dict(t)["logprob"]) for t in top
                        }
                    if first:
                        logprobs.append(float(entry["logprob"]))
                yield chunk
        if logprobs:
            meta = {"token_logprobs": logprobs}
            yield ChatGenerationChunk(message=AIMessageChunk(content="", response_metadata=meta))


class OpenAIServerChat(_ServerModel, ChatOpenAI):
    """ChatOpenAI for any OpenAI-compatible server (llama.cpp server, vLLM, a hosted API).

    ``grammar`` goes into the request body only when ``send_grammar`` is set: llama.cpp's server
    constrains its output with it, other servers reject unknown fields. ``max_tokens`` is sent
    under that name because llama.cpp's server ignores the newer ``max_completion_tokens``.
    """

    send_grammar: bool = False

    def _get_request_payload(self, input_: Any, *, stop: Any = None, **kwargs: Any) -> dict:
        grammar = kwargs.pop("grammar", None)
        kwargs.pop("prefill", None)
        if kwargs.pop("hidden_state", None):
            kwargs |= {"logprobs": True, "top_logprobs": TOP_LOGPROBS}
        payload = super()._get_request_payload(input_, stop=stop, **kwargs)
        if "max_completion_tokens" in payload:
            payload["max_tokens"] = payload.pop("max_completion_tokens")
        if grammar and self.send_grammar:
            payload["extra_body"] = {**(payload.get("extra_body") or {}), "grammar": grammar}
        return payload

    def _errors(self) -> Any:
        return server_errors(
            str(self.openai_api_base), "QA_OPENAI_BASE_URL", float(self.request_timeout or 0)
        )


class OllamaServerChat(_ServerModel, ChatOllama):
    """ChatOllama that maps ``max_tokens`` to Ollama's ``num_predict`` and drops ``grammar``
    (Ollama has no GBNF grammars)."""

    def _chat_params(self, messages: Any, stop: Any = None, **kwargs: Any) -> dict[str, Any]:
        kwargs.pop("grammar", None)
        kwargs.pop("prefill", None)
        if kwargs.pop("hidden_state", None):
            kwargs |= {"logprobs": True, "top_logprobs": TOP_LOGPROBS}
        max_tokens = kwargs.pop("max_tokens", None)
        params = super()._chat_params(messages, stop, **kwargs)
        if max_tokens:
            params["options"] = {**(params["options"] or {}), "num_predict": max_tokens}
        return params

    def _errors(self) -> Any:
        timeout = (self.client_kwargs or {}).get("timeout", 0)
        return server_errors(str(self.base_url), "QA_OLLAMA_BASE_URL", timeout)


def openai_chat(settings: Settings) -> OpenAIServerChat:
    """The chat model for ``llm_backend="openai"``."""
    key = settings.openai_api_key
    return OpenAIServerChat(
        base_url=settings.openai_base_url,
        model=settings.llm_model,
        # Local servers ignore the key, but the OpenAI client refuses to start without one.
        api_key=key.get_secret_value() if key else "unused",
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
        timeout=settings.request_timeout,
        max_retries=_MAX_RETRIES,
        send_grammar=settings.openai_grammar,
    )


def ollama_chat(settings: Settings) -> OllamaServerChat:
    """The chat model for ``llm_backend="ollama"``."""
    return OllamaServerChat(
        base_url=settings.ollama_base_url,
        model=settings.llm_model,
        temperature=settings.temperature,
        num_predict=settings.max_tokens,
        client_kwargs={"timeout": settings.request_timeout},
    )
