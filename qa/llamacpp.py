"""The local chat model: a GGUF run in-process by llama.cpp, as a langchain chat model with
prefill, grammars, a RAM cache of prompt states, and the confidence signals qa decides on
(first-token odds, token log-probabilities, hidden states)."""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import PrivateAttr

from qa.errors import BackendError


@dataclass(frozen=True)
class _KVState:
    """A saved llama.cpp context (KV cache) and the tokens it holds."""

    tokens: tuple[int, ...]
    data: bytes


class _KVCache:
    """The last few expensive prompt states, kept in RAM (llama.cpp's own state copies also
    carry a ~300 MB logits buffer, which is why this is not ``LlamaRAMCache``)."""

    def __init__(self, slots: int = 3) -> None:
        self.slots = slots
        self._states: list[_KVState] = []

    def save(self, llama: Any, tokens: list[int]) -> None:
        import ctypes

        import llama_cpp

        size = llama_cpp.llama_state_get_size(llama.ctx)
        buf = (ctypes.c_uint8 * size)()
        n = llama_cpp.llama_state_get_data(llama.ctx, buf, size)
        self._states = [*self._states[-(self.slots - 1) :], _KVState(tuple(tokens), bytes(buf)[:n])]

    def restore(self, llama: Any, tokens: list[int]) -> int:
        """Load the state sharing the longest prefix with ``tokens`` if it beats the live one
        by enough to pay for the copy; return the number of prompt tokens already evaluated."""
        import ctypes

        import llama_cpp

        live = llama.longest_token_prefix(llama.input_ids[: llama.n_tokens].tolist(), tokens)
        best = max(
            self._states, key=lambda st: llama.longest_token_prefix(st.tokens, tokens), default=None
        )
        shared = llama.longest_token_prefix(best.tokens, tokens) if best else 0
        if best is None or shared <= live + 64:  # a copy costs about as much as ~64 tokens
            return live
        buf = (ctypes.c_uint8 * len(best.data)).from_buffer_copy(best.data)
        llama_cpp.llama_state_set_data(llama.ctx, buf, len(best.data))
        # One token short, so llama.cpp recomputes the last logits instead of trusting them.
        n = len(best.tokens) - 1
        llama.input_ids[:n] = best.tokens[:n]
        llama.n_tokens = n
        return min(shared, n)


TAPPED_LAYERS = (14, 21)
"""Transformer layers whose output is read besides the final hidden state: answerability is
decoded best from middle-to-late layers (Slobodkin et al., 2023)."""


class _LayerTap:
    """Copies chosen layers' output at the last position of each decode, via llama.cpp's
    graph evaluation callback (``cb_eval``); idle (one name check per node) unless ``on``."""

    def __init__(self, layers: tuple[int, ...]) -> None:
        import ctypes

        import llama_cpp
        from llama_cpp._ggml import libggml

        self.names = {f"l_out-{i}".encode(): f"l{i}" for i in layers}
        self.on = False
        self.latest: dict[str, Any] = {}
        self.n_embd = 0
        self._name = libggml.ggml_get_name
        self._name.restype, self._name.argtypes = ctypes.c_char_p, [ctypes.c_void_p]
        self._numel = libggml.ggml_nelements
        self._numel.restype, self._numel.argtypes = ctypes.c_int64, [ctypes.c_void_p]
        self._data = libggml.ggml_get_data_f32
        self._data.restype = ctypes.POINTER(ctypes.c_float)
        self._data.argtypes = [ctypes.c_void_p]
        self.callback = llama_cpp.ggml_backend_sched_eval_callback(self._observe)

    def _observe(self, tensor: int, ask: bool, _user_data: int) -> bool:
        if ask:  # "do you want this node's result?"
            return self.on and self._name(tensor) in self.names
        import numpy as np

        data = np.ctypeslib.as_array(self._data(tensor), shape=(self._numel(tensor),))
        self.latest[self.names[self._name(tensor)]] = data[-self.n_embd :].copy()
        return True  # False would stop the computation


def _to_openai(messages: list[BaseMessage]) -> list[dict[str, str]]:
    roles = {"human": "user", "ai": "assistant", "system": "system"}
    return [{"role": roles.get(m.type, "user"), "content": str(m.content)} for m in messages]


class LlamaCppChat(BaseChatModel):
    """A langchain chat model over an in-process llama.cpp model.

    One model instance serves all callers; a lock serializes generation because a llama.cpp
    context is not thread-safe. The KV cache of the previous prompt is reused token by token,
    and the state after an expensive prompt is kept in RAM, so prompts sharing a long fixed
    prefix (system prompt, examples, a whole small corpus) only pay for their new tokens.

    Extra call options (e.g. via ``.bind``): ``grammar=<GBNF>`` constrains the output;
    ``prefill=<text>`` starts the assistant's reply with that text (the grammar applies to what
    follows it); ``hidden_state=True`` also reports hidden states. The first chunk's
    ``response_metadata`` carries ``first_token_probs`` (the most likely first tokens and their
    probabilities) and, if asked, ``hidden_states`` (``{"final": [...], "l14": [...], ...}``,
    the final and ``TAPPED_LAYERS`` states at the position predicting the first token); the
    last one ``usage``, ``token_logprobs`` (the log-probability of each generated token) and,
    if asked, ``hidden_states_end`` (the same at the last output token, which predicted the
    end). These are confidence signals for the caller.
    """

    model_path: str
    n_ctx: int = 4096
    n_threads: int | None = None
    temperature: float = 0.0
    max_tokens: int = 256

    _llama: Any = PrivateAttr(default=None)
    _formatter: Any = PrivateAttr(default=None)
    _cache: _KVCache = PrivateAttr(default_factory=_KVCache)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _grammars: dict[str, Any] = PrivateAttr(default_factory=dict)
    _tap: Any = PrivateAttr(default=None)

    @property
    def _llm_type(self) -> str:
        return "llama-cpp"

    @property
    def llama(self) -> Any:
        """The loaded llama.cpp model (loaded on first use)."""
        if self._llama is None:
            import llama_cpp.llama_cpp as bindings
            from llama_cpp import Llama
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            tap = _LayerTap(TAPPED_LAYERS)
            defaults = bindings.llama_context_default_params

            def with_tap() -> Any:  # Llama() offers no cb_eval argument
                params = defaults()
                params.cb_eval = tap.callback
                return params

            bindings.llama_context_default_params = with_tap
            threads = self.n_threads or os.cpu_count() or 2
            try:
                llama = Llama(
                    model_path=self.model_path,
                    n_ctx=self.n_ctx,
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
            self._tap = tap
            self._formatter = Jinja2ChatFormatter(
                template=llama.metadata["tokenizer.chat_template"],
                eos_token=llama.detokenize([llama.token_eos()], special=True).decode(),
                bos_token="",
            )
            self._llama = llama
        return self._llama

    def _grammar(self, gbnf: str | None) -> Any:
        if gbnf is None:
            return None
        if gbnf not in self._grammars:
            from llama_cpp import LlamaGrammar

            self._grammars[gbnf] = LlamaGrammar.from_string(gbnf, verbose=False)
        return self._grammars[gbnf]

    def _tokenize(self, messages: list[BaseMessage], prefill: str) -> list[int]:
        llama = self.llama  # loads the model and its chat template
        prompt = self._formatter(messages=_to_openai(messages)).prompt + prefill
        return llama.tokenize(prompt.encode(), add_bos=False, special=True)

    def _next_token_probs(self) -> Any:
        """Softmax of the logits at the last evaluated position (a numpy array)."""
        import llama_cpp
        import numpy as np

        llama = self.llama
        last = llama_cpp.llama_get_logits_ith(llama.ctx, -1)
        logits = np.ctypeslib.as_array(last, shape=(llama.n_vocab(),))
        probs = np.exp(logits - logits.max())
        return probs / probs.sum()

    def _top_tokens(self, probs: Any, top: int = 20) -> dict[str, float]:
        import numpy as np

        best = np.argpartition(probs, -top)[-top:]
        decode = self.llama.detokenize
        return {decode([int(i)]).decode(errors="replace"): float(probs[i]) for i in best}

    def _hidden_states(self) -> dict[str, Any]:
        """Hidden states at the last evaluated position (numpy copies): ``final`` (after the
        last layer's norm) and the tapped layers (``l14``, ...)."""
        import llama_cpp
        import numpy as np

        llama = self.llama
        row = llama_cpp.llama_get_embeddings_ith(llama.ctx, -1)
        final = np.ctypeslib.as_array(row, shape=(llama.n_embd(),)).copy()
        return {"final": final, **self._tap.latest}

    def _eval_all_but_last(self, tokens: list[int]) -> None:
        """Evaluate the prompt except its last token, reusing the KV cache, so that
        ``generate`` evaluates only the last one (with embeddings switched on)."""
        llama = self.llama
        head = tokens[:-1]
        done = llama.longest_token_prefix(llama.input_ids[: llama.n_tokens].tolist(), head)
        llama.n_tokens = done
        llama.eval(head[done:])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        chunks = list(self._stream(messages, stop, run_manager, **kwargs))
        text = "".join(str(c.message.content) for c in chunks)
        meta = chunks[0].message.response_metadata if chunks else {}
        message = AIMessage(content=text, response_metadata=meta)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        with self._lock:
            tokens = self._tokenize(messages, kwargs.get("prefill", ""))
            if len(tokens) + max_tokens > self.n_ctx:
                raise BackendError(
                    f"The prompt ({len(tokens)} tokens) does not fit the local LLM's context "
                    f"window ({self.n_ctx}); lower QA_TOP_K or QA_CHUNK_SIZE, or raise QA_N_CTX"
                )
            for text, meta in self._generate_text(tokens, max_tokens, stop or [], kwargs):
                chunk = ChatGenerationChunk(
                    message=AIMessageChunk(content=text, response_metadata=meta)
                )
                if run_manager:
                    run_manager.on_llm_new_token(text, chunk=chunk)
                yield chunk

    def _generate_text(
        self, tokens: list[int], max_tokens: int, stop: list[str], kwargs: dict
    ) -> Iterator[tuple[str, dict]]:
        """Greedy (or sampled) decoding; yields (new text, metadata) pieces. The first piece
        carries ``first_token_probs``, the last one ``usage`` (token counts and timings)."""
        import llama_cpp

        llama = self.llama
        vocab = llama_cpp.llama_model_get_vocab(llama.model)
        t0 = time.perf_counter()
        missed = len(tokens) - self._cache.restore(llama, tokens)
        hidden = bool(kwargs.get("hidden_state"))
        if hidden:
            # Embeddings cost an extra output row per evaluated token: the prompt's last token
            # and the generated ones pay, not the whole prompt.
            self._eval_all_but_last(tokens)
            llama_cpp.llama_set_embeddings(llama.ctx, True)
            self._tap.on, self._tap.latest = True, {}
        out: list[int] = []
        logprobs: list[float] = []
        end: dict[str, Any] = {}
        sent = ""
        meta: dict[str, Any] = {}
        t_first = None
        try:
            for token in llama.generate(
                tokens, temp=self.temperature, grammar=self._grammar(kwargs.get("grammar"))
            ):
                probs = self._next_token_probs()
                # The states at the position that predicted this token: at the end of the loop,
                # the answer's last token (which predicted the stop).
                end = self._hidden_states() if hidden else {}
                if t_first is None:
                    t_first = time.perf_counter()
                    meta = {"first_token_probs": self._top_tokens(probs)}
                    if hidden:
                        meta["hidden_states"] = {k: v.tolist() for k, v in end.items()}
                    if missed > 256:  # keep the expensive prompt's state for later prompts
                        self._cache.save(llama, tokens)
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    break
                logprobs.append(float(math.log(max(probs[token], 1e-12))))
                out.append(token)
                text = llama.detokenize(out).decode(errors="ignore")
                cut = min((i for s in stop if (i := text.find(s)) >= 0), default=-1)
                if cut >= 0:
                    text = text[:cut]
                if len(text) > len(sent):
                    yield text[len(sent) :], meta
                    sent, meta = text, {}
                if cut >= 0 or len(out) >= max_tokens:
                    break
        finally:
            if hidden:
                llama_cpp.llama_set_embeddings(llama.ctx, False)
                self._tap.on = False
        t_end = time.perf_counter()
        t_first = t_first or t_end
        usage = {
            "prompt_tokens": len(tokens),
            "prompt_eval_tokens": missed,
            "generated_tokens": len(out),
            "prompt_eval_ms": (t_first - t0) * 1000,
            "generation_ms": (t_end - t_first) * 1000,
        }
        last = (
            {"hidden_states_end": {k: v.tolist() for k, v in end.items()}} if hidden and out else {}
        )
        yield "", {**meta, "usage": usage, "token_logprobs": logprobs, **last}
