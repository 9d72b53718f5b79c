"""Chat models for LLM servers: any OpenAI-compatible server, or Ollama.

Both take the same call options as the local :class:`~qa.llamacpp.LlamaCppChat`, so the chain does
not need to know which backend answers. The chain binds ``grammar=<GBNF>`` (llama.cpp's way to
force the ``Answer:``/``Quote:`` format); a served model sends it only where the server
understands it and otherwise drops it, leaving the format to the prompt. The ``prefill`` option
is dropped: servers write the ``Answer:`` label themselves, which the chain accepts, and report
no first-token probabilities, so answers from a server carry no confidence. Connection failures,
timeouts and refused requests become a :class:`~qa.errors.BackendError` naming the server.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import ollama
import openai
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_ollama import ChatOllama
from langchain_openai import ChatOpenAI

from qa.config import Settings
from qa.errors import BackendError

# One retry rides out a dropped connection; more would multiply the wait on a dead server.
_MAX_RETRIES = 1


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


class _ServerErrors:
    """Runs a chat model's calls inside ``self._errors()`` (see :func:`server_errors`)."""

    def _errors(self) -> Any:
        raise NotImplementedError

    def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:
        with self._errors():
            return super()._generate(*args, **kwargs)  # type: ignore[misc]

    def _stream(self, *args: Any, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        with self._errors():
            yield from super()._stream(*args, **kwargs)  # type: ignore[misc]


class OpenAIServerChat(_ServerErrors, ChatOpenAI):
    """ChatOpenAI for any OpenAI-compatible server (llama.cpp server, vLLM, a hosted API).

    ``grammar`` goes into the request body only when ``send_grammar`` is set: llama.cpp's server
    constrains its output with it, other servers reject unknown fields. ``max_tokens`` is sent
    under that name because llama.cpp's server ignores the newer ``max_completion_tokens``.
    """

    send_grammar: bool = False

    def _get_request_payload(self, input_: Any, *, stop: Any = None, **kwargs: Any) -> dict:
        grammar = kwargs.pop("grammar", None)
        kwargs.pop("prefill", None)
        kwargs.pop("hidden_state", None)
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


class OllamaServerChat(_ServerErrors, ChatOllama):
    """ChatOllama that maps ``max_tokens`` to Ollama's ``num_predict`` and drops ``grammar``
    (Ollama has no GBNF grammars)."""

    def _chat_params(self, messages: Any, stop: Any = None, **kwargs: Any) -> dict[str, Any]:
        kwargs.pop("grammar", None)
        kwargs.pop("prefill", None)
        kwargs.pop("hidden_state", None)
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
