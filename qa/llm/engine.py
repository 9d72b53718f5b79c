"""Continuous batching for the local model: the answers of several users decoded together in
one llama.cpp context, one sequence per request.

Why: on a small CPU, generating a token is bound by memory bandwidth (all weights are read once
per step), so a step that extends N answers costs little more than one that extends a single
answer. One llama.cpp context answering everyone in turn made the 20th user wait for 19 whole
answers.

What it guards:

* **Every signal the answer decision reads, per request**: first-token probabilities, each
  generated token's log-probability, hidden states (``final`` and the tapped layers of
  :mod:`qa.llm.tap`) at the position predicting the first answer token and at the last one, the
  prefill and the grammar. Hidden states come from the graph callback, one row per sequence,
  so no request needs the context's embedding mode (which would make every prompt token an
  output).
* **Fairness**: each step gives every answering sequence one token, and reads at most
  ``prefill_chunk`` prompt tokens in all, shared equally among the prompts being read. A long
  question therefore delays the others by one chunk per token and cannot block them; with
  nobody answering, a prompt is read ``n_batch`` tokens at a time, as fast as before.
* **KV cells**: a request starts only when its new prompt tokens plus ``max_tokens`` fit the
  cells no one else holds (reserved up front), so a step never fails for lack of cache.
* **Shared prefixes**: in a unified KV cache a sequence can share another's cells without a
  copy (``llama_memory_seq_cp``). Prompts read are kept as pinned prefix sequences; a new
  request starts from the longest one it extends, or from a state saved on disk
  (:class:`qa.llm.kvstate.StateStore`), and pays only for its new tokens.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from qa.errors import BackendError
from qa.llm.jobs import Job, Ticket
from qa.llm.kvstate import WORTH_SAVING, KVState, StateStore, common_prefix, read_sequence
from qa.llm.tap import LayerTap

log = logging.getLogger(__name__)

PREFIX_SLOTS = 3
"""Prompts kept in the KV cache for later requests (the most recently used)."""
PIN_MIN_NEW = 16
"""A read prompt is kept when it computed at least this many new tokens: the next question
on the same passages (MultiRC asks several per paragraph) then reads only its own words."""


CLOSED = "The local LLM was closed; make a new one to ask again."


@dataclass
class _Prefix:
    """A pinned sequence holding the KV cache of a prompt prefix."""

    seq_id: int
    tokens: tuple[int, ...] = ()
    users: int = 0
    used: float = 0.0


@dataclass
class _Seq:
    """A running request."""

    ticket: Ticket
    seq_id: int
    sampler: Any
    pending: list[int]
    pos: int
    shared: int
    source: _Prefix | None
    cells: int
    admitted: float
    next_token: int | None = None
    first_at: float | None = None
    out: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    sent: str = ""
    meta: dict = field(default_factory=dict)
    end_states: dict = field(default_factory=dict)

    @property
    def read(self) -> int:
        """Prompt tokens in this sequence's KV cache so far."""
        return min(self.pos, len(self.ticket.job.tokens))


@dataclass(frozen=True)
class _Source:
    """Where a new request's prompt prefix comes from: a sequence holding it."""

    seq_id: int
    shared: int
    pinned: _Prefix | None  # None: a running request (its cells are not pinned)


class Engine:
    """Decodes submitted jobs together, in one background thread that owns the context.

    Sequence ids: ``0 .. parallel-1`` for requests, then ``PREFIX_SLOTS`` pinned prefixes,
    then one scratch sequence used to copy a prefix out for saving.
    """

    def __init__(
        self,
        llama: Any,
        tap: LayerTap,
        *,
        parallel: int,
        n_ctx: int,
        kv_cells: int,
        prefill_chunk: int,
        store: StateStore | None = None,
    ) -> None:
        import llama_cpp

        self.llama = llama
        self.tap = tap
        self.parallel = parallel
        self.n_ctx = n_ctx
        self.kv_cells = kv_cells
        self.n_batch = llama.n_batch
        self.prefill_chunk = min(prefill_chunk, self.n_batch - parallel)
        self.store = store
        self._ctx = llama.ctx
        self._mem = llama_cpp.llama_get_memory(self._ctx)
        self._vocab = llama_cpp.llama_model_get_vocab(llama.model)
        self._n_vocab = llama.n_vocab()
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self._prefixes = [_Prefix(parallel + i) for i in range(PREFIX_SLOTS)]
        self._scratch = parallel + PREFIX_SLOTS
        self._free = list(range(parallel))
        self._running: list[_Seq] = []
        self._waiting: list[Ticket] = []
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._wake = threading.Event()
        self._saved_whole = False
        self._saving: list[threading.Thread] = []
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="qa-engine", daemon=True)
        self._thread.start()

    @staticmethod
    def sequences(parallel: int) -> int:
        """Sequence ids a context needs for ``parallel`` requests (see the class docstring)."""
        return parallel + PREFIX_SLOTS + 1

    def submit(self, job: Job) -> Ticket:
        """Queue ``job``; iterate the returned ticket for its output."""
        if self._closed:
            raise BackendError(CLOSED)
        if len(job.tokens) + job.max_tokens > self.n_ctx:
            raise BackendError(
                f"The prompt ({len(job.tokens)} tokens) does not fit the local LLM's context "
                f"window ({self.n_ctx}); lower QA_TOP_K or QA_CHUNK_SIZE, or raise QA_N_CTX"
            )
        ticket = Ticket(job)
        self._inbox.put(ticket)
        self._wake.set()
        return ticket

    def wait_for_saves(self) -> None:
        """Block until prompt states being written to disk are written."""
        for thread in list(self._saving):
            thread.join()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called: the model is freed or about to be."""
        return self._closed

    def close(self) -> None:
        """Stop the decoding thread and free the model and its context (once the step in
        progress ends; requests not finished get a :class:`BackendError`). Without it the
        thread, which holds the engine, would keep a model's memory alive for good."""
        self._closed = True
        self._wake.set()

    # --- the loop (engine thread only) ---------------------------------------------------

    def _loop(self) -> None:
        while not self._closed:
            if not self._running and not self._waiting:
                self._wake.wait()
                if self._closed:
                    break
            self._wake.clear()
            while not self._inbox.empty():
                self._waiting.append(self._inbox.get())
            try:
                self._admit()
                if self._running:
                    self._step()
            except Exception as err:  # never leave a caller waiting forever
                log.exception("the decoding loop failed")
                # A waiting job may be what failed (its saved state, its grammar): retrying it
                # would fail again and again.
                self._fail_all(BackendError(f"The local LLM failed: {err}"))

        self._release()

    def _fail_all(self, error: BackendError) -> None:
        """End every running and waiting request with ``error``."""
        for seq in list(self._running):
            self._finish(seq, error=error)
        for ticket in self._waiting:
            ticket.put(error)
            ticket.finish()
        self._waiting = []

    def _release(self) -> None:
        """Fail what is left and free the batch, the context and the model (engine thread)."""
        import llama_cpp

        while not self._inbox.empty():
            self._waiting.append(self._inbox.get())
        self._fail_all(BackendError(CLOSED))
        self.wait_for_saves()
        llama_cpp.llama_batch_free(self._batch)
        self.llama.close()

    def _admit(self) -> None:
        """Start waiting jobs, oldest first, while a slot and their KV cells are free. A job
        whose prompt prefix another request is reading right now waits for it to be read,
        then shares it, instead of computing it a second time."""
        self._waiting = [t for t in self._waiting if not self._drop_cancelled(t)]
        for ticket in list(self._waiting):
            if not self._free:
                return
            tokens = ticket.job.tokens
            source = self._best_source(tokens)
            if self._in_flight(tokens) >= source.shared + WORTH_SAVING:
                continue
            if self.store and len(tokens) - source.shared > WORTH_SAVING:
                source = self._load_saved(tokens, source)
            # Cells shared with a running request are counted as new: it may end first.
            owned = source.shared if source.pinned else 0
            cells = len(tokens) - owned + ticket.job.max_tokens
            if not self._make_room(cells, keep=source.pinned):
                return  # first come, first served: later jobs wait too
            self._waiting.remove(ticket)
            try:
                sampler = self._sampler(ticket.job)
            except BackendError as err:
                ticket.put(err)
                ticket.finish()
                continue
            self._start(ticket, sampler, source, cells)

    def _drop_cancelled(self, ticket: Ticket) -> bool:
        if ticket.cancelled.is_set():
            ticket.finish()
        return ticket.cancelled.is_set()

    def _best_source(self, tokens: list[int]) -> _Source:
        """The pinned prefix or running request holding most of ``tokens``' prefix (at least
        the last prompt token is always evaluated: it gives the logits)."""
        best = _Source(-1, 0, None)
        limit = len(tokens) - 1
        for p in self._prefixes:
            n = min(common_prefix(p.tokens, tokens), limit)
            if n > best.shared:
                best = _Source(p.seq_id, n, p)
        for seq in self._running:
            prompt = seq.ticket.job.tokens[: seq.read]
            n = min(common_prefix(prompt, tokens), limit)
            if n > best.shared:
                best = _Source(seq.seq_id, n, None)
        return best

    def _in_flight(self, tokens: list[int]) -> int:
        """The longest prefix of ``tokens`` a running request will have read once done."""
        reading = [s.ticket.job.tokens for s in self._running if s.pending]
        return max((common_prefix(t, tokens) for t in reading), default=0)

    def _load_saved(self, tokens: list[int], source: _Source) -> _Source:
        """Load the longest saved state ``tokens`` start with into a free prefix slot."""
        from qa.llm.kvstate import write_sequence

        assert self.store is not None
        found = self.store.find(tokens, longer_than=source.shared)
        if found is None:
            return source
        slot = self._idle_prefix(exclude=source.pinned)
        if slot is None:
            return source
        if not write_sequence(self._ctx, slot.seq_id, found.data):
            log.warning("llama.cpp refused a saved prompt state; computing the prompt instead")
            self.store.discard(self.store.path_for(found.tokens))
            slot.tokens = ()
            return source
        slot.tokens, slot.used = found.tokens, time.monotonic()
        return _Source(slot.seq_id, min(len(found.tokens), len(tokens) - 1), slot)

    def _idle_prefix(self, exclude: _Prefix | None = None) -> _Prefix | None:
        """An empty prefix slot, else the least recently used one nobody is reading (cleared)."""
        idle = [p for p in self._prefixes if p.users == 0 and p is not exclude]
        if not idle:
            return None
        slot = min(idle, key=lambda p: (bool(p.tokens), p.used))
        self._evict(slot)
        return slot

    def _evict(self, prefix: _Prefix) -> None:
        """Unpin ``prefix`` (cells still shared by running sequences stay theirs)."""
        import llama_cpp

        llama_cpp.llama_memory_seq_rm(self._mem, prefix.seq_id, -1, -1)
        prefix.tokens = ()

    def _trim(self, prefix: _Prefix, keep: int) -> None:
        """Unpin what a new request did not reuse of ``prefix`` past its first ``keep`` tokens:
        on the retrieval path a kept prompt's passages and question are rarely asked again, and
        every decode attends over every cell held, so whole kept prompts made answers 10-30 %
        slower. What the requests share (instructions, a passage asked about twice) stays."""
        import llama_cpp

        if len(prefix.tokens) - keep >= PIN_MIN_NEW:
            llama_cpp.llama_memory_seq_rm(self._mem, prefix.seq_id, keep, -1)
            prefix.tokens = prefix.tokens[:keep]

    def _make_room(self, need: int, keep: _Prefix | None) -> bool:
        """Whether ``need`` more cells fit, dropping idle prefixes (oldest first) if needed."""
        while self._used_cells() + need > self.kv_cells:
            held = [p for p in self._prefixes if p.tokens and p.users == 0 and p is not keep]
            if not held:
                return False
            self._evict(min(held, key=lambda p: p.used))
        return True

    def _used_cells(self) -> int:
        """An upper bound of the KV cells held: pinned prefixes plus running reservations."""
        pinned = sum(len(p.tokens) for p in self._prefixes)
        return pinned + sum(s.cells for s in self._running)

    def _start(self, ticket: Ticket, sampler: Any, source: _Source, cells: int) -> None:
        import llama_cpp

        seq_id = self._free.pop(0)
        llama_cpp.llama_memory_seq_rm(self._mem, seq_id, -1, -1)
        if source.shared:
            llama_cpp.llama_memory_seq_cp(self._mem, source.seq_id, seq_id, 0, source.shared)
        if source.pinned is not None:
            source.pinned.users += 1
            source.pinned.used = time.monotonic()
            self._trim(source.pinned, source.shared)
        tokens = ticket.job.tokens
        seq = _Seq(
            ticket=ticket,
            seq_id=seq_id,
            sampler=sampler,
            pending=list(tokens[source.shared :]),
            pos=source.shared,
            shared=source.shared,
            source=source.pinned,
            cells=cells,
            admitted=time.perf_counter(),
        )
        self._running.append(seq)

    def _sampler(self, job: Job) -> Any:
        """A llama.cpp sampler chain for one request: its banned tokens, its grammar, then
        greedy or sampled."""
        import llama_cpp

        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        if job.ban:
            biases = (llama_cpp.llama_logit_bias * len(job.ban))(
                *(llama_cpp.llama_logit_bias(token, -math.inf) for token in job.ban)
            )
            llama_cpp.llama_sampler_chain_add(
                chain, llama_cpp.llama_sampler_init_logit_bias(self._n_vocab, len(job.ban), biases)
            )
        if job.grammar:
            grammar = llama_cpp.llama_sampler_init_grammar(
                self._vocab, job.grammar.encode(), b"root"
            )
            if not grammar:
                llama_cpp.llama_sampler_free(chain)
                raise BackendError("The LLM grammar does not parse; check the GBNF")
            llama_cpp.llama_sampler_chain_add(chain, grammar)
        if job.temperature > 0:
            for sampler in (
                llama_cpp.llama_sampler_init_top_k(40),
                llama_cpp.llama_sampler_init_top_p(0.95, 1),
                llama_cpp.llama_sampler_init_min_p(0.05, 1),
                llama_cpp.llama_sampler_init_temp(job.temperature),
                llama_cpp.llama_sampler_init_dist(llama_cpp.LLAMA_DEFAULT_SEED),
            ):
                llama_cpp.llama_sampler_chain_add(chain, sampler)
        else:
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
        return chain

    def _step(self) -> None:
        """One decode: prompt chunks (no outputs) plus one output token per ready sequence."""
        import llama_cpp

        for seq in [s for s in self._running if s.ticket.cancelled.is_set()]:
            self._finish(seq, silent=True)
        rows: list[tuple[int, _Seq]] = []  # (batch index, sequence) of the output tokens
        batch = self._batch
        batch.n_tokens = 0

        def add(token: int, seq: _Seq, output: bool) -> None:
            i = batch.n_tokens
            batch.token[i], batch.pos[i], batch.logits[i] = token, seq.pos, output
            batch.seq_id[i][0], batch.n_seq_id[i] = seq.seq_id, 1
            batch.n_tokens += 1
            seq.pos += 1
            if output:
                rows.append((i, seq))

        reading = [s for s in self._running if len(s.pending) > 1]
        answering = len(self._running) - len(reading)
        budget = self.prefill_chunk if answering else self.n_batch - len(self._running)
        share = max(16, budget // max(1, len(reading)))
        for seq in reading:
            take = min(len(seq.pending) - 1, share, budget)
            for token in seq.pending[:take]:
                add(token, seq, False)
            seq.pending, budget = seq.pending[take:], budget - take
        for seq in self._running:
            if len(seq.pending) == 1:
                add(seq.pending.pop(), seq, True)
            elif not seq.pending and seq.next_token is not None:
                add(seq.next_token, seq, True)
        if batch.n_tokens == 0:
            return
        self.tap.on, self.tap.latest = any(s.ticket.job.hidden for _, s in rows), {}
        try:
            code = llama_cpp.llama_decode(self._ctx, batch)
        finally:
            self.tap.on = False
        if code != 0:
            raise RuntimeError(f"llama_decode returned {code}")
        for k, (i, seq) in enumerate(rows):
            self._advance(seq, i, k)

    def _states(self, i: int, k: int) -> dict[str, Any]:
        """Hidden states of batch token ``i``, the ``k``-th output: layer rows by batch index,
        the final norm's rows by output index."""
        return {name: rows[k if name == "final" else i] for name, rows in self.tap.latest.items()}

    def _advance(self, seq: _Seq, i: int, k: int) -> None:
        """Read the output of batch token ``i`` for ``seq``: signals, the next token, text."""
        import llama_cpp
        import numpy as np

        job = seq.ticket.job
        logits = np.ctypeslib.as_array(
            llama_cpp.llama_get_logits_ith(self._ctx, i), shape=(self._n_vocab,)
        )
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        # The states at the position that predicted this token: at the end, the answer's last
        # token (which predicted the stop).
        seq.end_states = self._states(i, k) if job.hidden else {}
        if seq.first_at is None:
            seq.first_at = time.perf_counter()
            seq.meta = {"first_token_probs": self._top_tokens(probs)}
            if job.hidden:
                seq.meta["hidden_states"] = {n: v.tolist() for n, v in seq.end_states.items()}
            self._keep(seq)
        token = llama_cpp.llama_sampler_sample(seq.sampler, self._ctx, i)
        if llama_cpp.llama_vocab_is_eog(self._vocab, token):
            self._finish(seq)
            return
        seq.logprobs.append(float(math.log(max(probs[token], 1e-12))))
        seq.out.append(token)
        text = self.llama.detokenize(seq.out).decode(errors="ignore")
        cut = min((j for s in job.stop if (j := text.find(s)) >= 0), default=-1)
        if cut >= 0:
            text = text[:cut]
        if len(text) > len(seq.sent):
            seq.ticket.put((text[len(seq.sent) :], seq.meta))
            seq.sent, seq.meta = text, {}
        if cut >= 0 or len(seq.out) >= job.max_tokens:
            self._finish(seq)
        else:
            seq.next_token = token

    def _top_tokens(self, probs: Any, top: int = 20) -> dict[str, float]:
        import numpy as np

        best = np.argpartition(probs, -top)[-top:]
        decode = self.llama.detokenize
        return {decode([int(i)]).decode(errors="replace"): float(probs[i]) for i in best}

    def _keep(self, seq: _Seq) -> None:
        """After a prompt is read: pin it unless it was nearly all cached, and save to disk the
        prefix it shares with an earlier prompt (the fixed part: system prompt, examples, a
        small corpus), or the whole prompt if it is this process's first expensive one."""
        import llama_cpp

        tokens = seq.ticket.job.tokens
        missed = len(tokens) - seq.shared
        others = [common_prefix(p.tokens, tokens) for p in self._prefixes if p.tokens]
        shared = max([n for n in others if n < len(tokens)], default=0)
        if missed >= PIN_MIN_NEW and (slot := self._idle_prefix(exclude=seq.source)):
            llama_cpp.llama_memory_seq_cp(self._mem, seq.seq_id, slot.seq_id, 0, len(tokens))
            slot.tokens, slot.used = tuple(tokens), time.monotonic()
        if self.store is None:
            return
        shared = max(shared, self.store.shared_with_others(tokens))
        whole = missed > WORTH_SAVING and not self._saved_whole
        n = shared if shared >= WORTH_SAVING else len(tokens) if whole else 0
        if not n or self.store.covers(tokens[:n]):
            return
        self._saved_whole |= n == len(tokens)
        state = self._copy_out(seq.seq_id, tokens, n)
        self._saving = [t for t in self._saving if t.is_alive()]
        thread = threading.Thread(target=self.store.save, args=(state,), name="qa-kv-save")
        thread.start()  # not a daemon: an exit waits for the file instead of cutting it short
        self._saving.append(thread)

    def _copy_out(self, seq_id: int, tokens: list[int], n: int) -> KVState:
        """The state of the first ``n`` tokens of ``seq_id`` (via the scratch sequence)."""
        import llama_cpp

        llama_cpp.llama_memory_seq_rm(self._mem, self._scratch, -1, -1)
        llama_cpp.llama_memory_seq_cp(self._mem, seq_id, self._scratch, 0, n)
        try:
            return KVState(tuple(tokens[:n]), read_sequence(self._ctx, self._scratch))
        finally:
            llama_cpp.llama_memory_seq_rm(self._mem, self._scratch, -1, -1)

    def _finish(
        self, seq: _Seq, *, silent: bool = False, error: BaseException | None = None
    ) -> None:
        """Free ``seq``'s slot and cells; send its last piece (usage, log-probabilities, end
        states) unless it was cancelled or failed."""
        import llama_cpp

        self._running.remove(seq)
        llama_cpp.llama_memory_seq_rm(self._mem, seq.seq_id, -1, -1)
        llama_cpp.llama_sampler_free(seq.sampler)
        self._free.append(seq.seq_id)
        if seq.source is not None:
            seq.source.users -= 1
        if error is not None:
            seq.ticket.put(error)
        elif not silent:
            seq.ticket.put(("", self._last_meta(seq)))
        seq.ticket.finish()

    def _last_meta(self, seq: _Seq) -> dict:
        job = seq.ticket.job
        end = time.perf_counter()
        first = seq.first_at or end
        usage = {
            "prompt_tokens": len(job.tokens),
            "prompt_eval_tokens": len(job.tokens) - seq.shared,
            "generated_tokens": len(seq.out),
            "prompt_eval_ms": (first - seq.ticket.submitted) * 1000,
            "generation_ms": (end - first) * 1000,
        }
        last = {}
        if job.hidden and seq.out:
            last = {"hidden_states_end": {n: v.tolist() for n, v in seq.end_states.items()}}
        return {**seq.meta, "usage": usage, "token_logprobs": seq.logprobs, **last}
