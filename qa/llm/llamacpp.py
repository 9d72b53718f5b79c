"""The local chat model: a GGUF run in-process by llama.cpp, as a langchain chat model with
prefill, grammars, prompt states kept in RAM and on disk, several requests decoded together
(:mod:`qa.llm.engine`), and the confidence signals qa decides on (first-token odds, token
log-probabilities, hidden states)."""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import PrivateAttr

from qa.errors import BackendError
from qa.llm.engine import CLOSED, Engine
from qa.llm.jobs import Job, Ticket
from qa.llm.kvstate import StateStore, build_identity, file_sha256
from qa.llm.tap import TAPPED_LAYERS, LayerTap

__all__ = ["TAPPED_LAYERS", "LlamaCppChat", "chat_result", "kv_cells", "to_messages"]


def kv_cells(n_ctx: int, parallel: int) -> int:
    """KV cache cells for ``parallel`` sequences of up to ``n_ctx`` tokens: two whole windows
    (one request and the prompts kept for later ones), and half a window more per two
    sequences beyond four (answers share the prompt prefix, and a request waits when the
    cells it may need are taken)."""
    return n_ctx * max(2, (parallel + 1) // 2)


def to_messages(messages: list[BaseMessage]) -> list[dict[str, str]]:
    """Langchain messages as OpenAI-style ``{"role", "content"}`` dicts."""
    roles = {"human": "user", "ai": "assistant", "system": "system"}
    return [{"role": roles.get(m.type, "user"), "content": str(m.content)} for m in messages]


def chat_result(chunks: list[ChatGenerationChunk]) -> ChatResult:
    """Streamed pieces as one reply: their text joined, the first piece's metadata (where
    the signals of the answer's first token are)."""
    text = "".join(str(c.message.content) for c in chunks)
    meta = chunks[0].message.response_metadata if chunks else {}
    return ChatResult(
        generations=[ChatGeneration(message=AIMessage(content=text, response_metadata=meta))]
    )


class LlamaCppChat(BaseChatModel):
    """A langchain chat model over an in-process llama.cpp model.

    One model instance serves all callers: its :class:`~qa.llm.engine.Engine` decodes up to
    ``parallel`` requests together in one context, and reuses KV caches: the prompt prefix a
    request shares with an earlier prompt is not computed again. With ``state_dir``
    such prefixes are also saved to disk (:class:`qa.llm.kvstate.StateStore`), so the next start,
    or another worker, loads them instead of computing them.

    Extra call options (e.g. via ``.bind``): ``grammar=<GBNF>`` constrains the output;
    ``prefill=<text>`` starts the assistant's reply with that text (the grammar applies to what
    follows it); ``hidden_state=True`` also reports hidden states; ``ban=["none"]`` never
    generates those words' tokens (as a word of their own, either case; their probabilities are
    still reported). The first chunk's
    ``response_metadata`` carries ``first_token_probs`` (the most likely first tokens and their
    probabilities) and, if asked, ``hidden_states`` (``{"final": [...], "l14": [...], ...}``,
    the final and ``TAPPED_LAYERS`` states at the position predicting the first token); the
    last one ``usage``, ``token_logprobs`` (the log-probability of each generated token) and,
    if asked, ``hidden_states_end`` (the same at the last output token, which predicted the
    end). These are confidence signals for the caller.
    """

    bans_tokens: ClassVar[bool] = True
    """It takes ``ban=[words]`` (the chain draws a candidate other than "none" with it)."""

    model_path: str
    n_ctx: int = 4096
    n_threads: int | None = None
    temperature: float = 0.0
    max_tokens: int = 256
    parallel: int = 1
    """Requests decoded together (one llama.cpp sequence each)."""
    prefill_chunk: int = 64
    """Prompt tokens read per step while other requests are answering (see qa.llm.engine)."""
    state_dir: str | None = None
    """Folder of saved prompt-prefix states (None: RAM only)."""
    state_files: int = 4
    """Saved states kept in ``state_dir`` (the most recently used)."""
    model_sha256: str | None = None
    """The model file's sha256 (computed from the file when not given)."""

    _llama: Any = PrivateAttr(default=None)
    _formatter: Any = PrivateAttr(default=None)
    _engine: Engine | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "llama-cpp"

    @property
    def llama(self) -> Any:
        """The loaded llama.cpp model (loaded on first use)."""
        self._load()
        return self._llama

    @property
    def engine(self) -> Engine:
        """The decoding engine over the model (started on first use)."""
        self._load()
        assert self._engine is not None
        return self._engine

    def _load(self) -> None:
        with self._lock:
            if self._llama is not None:
                return
            import llama_cpp.llama_cpp as bindings
            from llama_cpp import Llama
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            tap = LayerTap(TAPPED_LAYERS)
            defaults = bindings.llama_context_default_params

            def with_tap() -> Any:  # Llama() offers no cb_eval argument
                params = defaults()
                params.cb_eval = tap.callback
                # One KV cache shared by all sequences, so they can share prefix cells.
                params.n_seq_max, params.kv_unified = Engine.sequences(self.parallel), True
                return params

            bindings.llama_context_default_params = with_tap
            threads = self.n_threads or os.cpu_count() or 2
            try:
                llama = Llama(
                    model_path=self.model_path,
                    n_ctx=kv_cells(self.n_ctx, self.parallel),
                    n_threads=threads,
                    # Else llama-cpp-python gives prompt processing every core, whatever the
                    # setting: oversubscribed next to other work, its threads spin on barriers.
                    n_threads_batch=threads,
                    n_batch=512,
                    verbose=False,
                )
            finally:
                bindings.llama_context_default_params = defaults
            tap.n_embd = llama.n_embd()
            self._formatter = Jinja2ChatFormatter(
                template=llama.metadata["tokenizer.chat_template"],
                eos_token=llama.detokenize([llama.token_eos()], special=True).decode(),
                bos_token="",
            )
            store = None
            if self.state_dir:
                sha = self.model_sha256 or file_sha256(Path(self.model_path))
                store = StateStore(Path(self.state_dir), build_identity(sha), self.state_files)
            self._engine = Engine(
                llama,
                tap,
                parallel=self.parallel,
                n_ctx=self.n_ctx,
                kv_cells=kv_cells(self.n_ctx, self.parallel),
                prefill_chunk=self.prefill_chunk,
                store=store,
            )
            self._llama = llama
            # The engine's thread holds the model: free it when this chat model goes away,
            # but not at exit, where the thread may be frozen mid-step (the OS frees it then).
            weakref.finalize(self, self._engine.close).atexit = False

    def close(self) -> None:
        """Free the model and its context now, not when this object is collected; asking
        afterwards raises :class:`BackendError`."""
        if self._engine is not None:
            self._engine.close()

    def wait_for_saves(self) -> None:
        """Block until prompt states being written to ``state_dir`` are on disk."""
        if self._engine is not None:
            self._engine.wait_for_saves()

    def submit(
        self, messages: list[dict[str, str]], stop: list[str] | None = None, **options: Any
    ) -> Ticket:
        """Queue a chat (OpenAI-style ``{"role", "content"}`` messages) for generation with
        the call options of this class; iterate the ticket for ``(text, metadata)`` pieces.

        Raises:
            BackendError: the prompt does not fit the context window.
        """
        llama = self.llama  # loads the model and its chat template
        if self.engine.closed:  # its model is freed: tokenizing would crash the process
            raise BackendError(CLOSED)
        prompt = self._formatter(messages=messages).prompt + options.get("prefill", "")
        job = Job(
            tokens=llama.tokenize(prompt.encode(), add_bos=False, special=True),
            max_tokens=options.get("max_tokens") or self.max_tokens,
            grammar=options.get("grammar"),
            hidden=bool(options.get("hidden_state")),
            stop=tuple(stop or ()),
            temperature=options.get("temperature", self.temperature),
            ban=self._token_ids(tuple(options.get("ban") or ())),
        )
        return self.engine.submit(job)

    def _token_ids(self, words: tuple[str, ...]) -> tuple[int, ...]:
        """The tokens that spell each of ``words`` alone, with or without a leading space, in
        lower case and capitalized."""
        ids = set()
        for word in words:
            for form in (word, word.capitalize()):
                for spelled in (form, " " + form):
                    tokens = self.llama.tokenize(spelled.encode(), add_bos=False, special=False)
                    if len(tokens) == 1:
                        ids.add(tokens[0])
        return tuple(sorted(ids))

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
        ticket = self.submit(to_messages(messages), stop, **kwargs)
        try:
            for text, meta in ticket:
                chunk = ChatGenerationChunk(
                    message=AIMessageChunk(content=text, response_metadata=meta)
                )
                if run_manager:
                    run_manager.on_llm_new_token(text, chunk=chunk)
                yield chunk
        finally:
            ticket.cancel()  # a caller that stops reading frees the sequence
