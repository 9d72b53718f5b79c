"""The client of qa's own model server (``qa serve``): a langchain chat model that sends the
chat and the call options to the server and streams back the same pieces, text and metadata,
the in-process :class:`~qa.llm.llamacpp.LlamaCppChat` yields.

Unlike an OpenAI-compatible server, qa's server reports everything the answer decision reads
(first-token probabilities, token log-probabilities, hidden states), so answers from several
workers sharing one model are decided exactly as local ones. Connection failures, timeouts and
refused requests become a :class:`~qa.errors.BackendError` naming the server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult

from qa.errors import BackendError
from qa.llm.llamacpp import chat_result, to_messages
from qa.llm.served import server_errors

_OPTIONS = ("grammar", "prefill", "hidden_state", "max_tokens", "ban")


class QAServerChat(BaseChatModel):
    """Chat model for ``llm_backend="qa"``: generation on the server at ``base_url``.

    ``timeout`` bounds the silence between two pieces; a request waiting in the server's queue
    is kept alive by blank heartbeat lines, so a busy server is not mistaken for a dead one.
    """

    bans_tokens: ClassVar[bool] = True
    """It takes ``ban=[words]`` (the chain draws a candidate other than "none" with it)."""

    base_url: str
    timeout: float = 60.0
    max_tokens: int = 256

    @property
    def _llm_type(self) -> str:
        return "qa-server"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return chat_result(list(self._stream(messages, stop, run_manager, **kwargs)))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        body = {
            "messages": to_messages(messages),
            "stop": stop or [],
            "max_tokens": self.max_tokens,
            **{k: kwargs[k] for k in _OPTIONS if k in kwargs},
        }
        url = self.base_url.rstrip("/")
        with (
            server_errors(url, "QA_LLM_SERVER_URL", self.timeout),
            httpx.stream("POST", f"{url}/v1/generate", json=body, timeout=self.timeout) as reply,
        ):
            if reply.status_code != 200:
                reply.read()
                raise BackendError(f"The qa model server at {url} refused: {reply.text[:300]}")
            for line in reply.iter_lines():
                if not line.strip():
                    continue  # a heartbeat while the request waits for a free sequence
                piece = json.loads(line)
                if "error" in piece:
                    raise BackendError(f"The qa model server at {url} failed: {piece['error']}")
                chunk = ChatGenerationChunk(
                    message=AIMessageChunk(content=piece["text"], response_metadata=piece["meta"])
                )
                if run_manager:
                    run_manager.on_llm_new_token(piece["text"], chunk=chunk)
                yield chunk
