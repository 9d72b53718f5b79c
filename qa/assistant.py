"""The Python API: ``Assistant(settings).ask(question, history) -> Answer``."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import Runnable

from qa.answer import Answer, IndexReport, Sentence, Shape
from qa.answering.chain import AnswerStream, Guard, build_chain
from qa.answering.decisions import Thresholds
from qa.answering.retrieval import Retriever
from qa.config import Settings
from qa.documents.client import fingerprint, index_lock
from qa.documents.embeddings import make_embeddings
from qa.documents.folder import in_scope, named, read_documents
from qa.documents.ingest import source_path
from qa.documents.store import DocumentInfo, Store
from qa.errors import (
    DocumentNotFoundError,
    IndexNotFoundError,
    QAError,
    UnsupportedFileError,
)
from qa.evaluation.feedback import FeedbackItem, FeedbackStore, Verdict, make_item
from qa.history import ChatHistory
from qa.llm.kvstate import WORTH_SAVING
from qa.llm.models import make_llm
from qa.passages import Hit
from qa.text import clean_question
from qa.trust import calibration
from qa.trust.answerability import Answerability, shipped_answerability
from qa.trust.calibration import Calibration

if TYPE_CHECKING:
    from qa.evaluation.generate import GeneratedGold
    from qa.trust.synthetic import SyntheticCalibration

Message = dict[str, str]

SUMMARY_QUESTION = "What is this document about?"
WARM_UP_QUESTIONS = ("Who is named first?", "When did it happen?")
"""Throwaway questions of :meth:`Assistant.warm_up`; they start with different words."""


class Assistant:
    """Answers questions about the documents in ``settings.seeds_dir``, citing its sources.

    Models load on first use and are then kept warm, so create one Assistant and reuse it.

    Example:
        >>> qa = Assistant(Settings(seeds_dir="seeds", index_dir="index"))
        >>> qa.index()                       # embeds new or changed documents only
        >>> ans = qa.ask("When did the spacecraft launch?")
        >>> ans.text, ans.abstained, ans.citations[0].source
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        embeddings: Embeddings | None = None,
        llm: BaseChatModel | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.on_change: list[Callable[[], None]] = []
        """Called after :meth:`index` or :meth:`remove` changed what is indexed."""
        if embeddings is not None:
            self.embeddings = embeddings
        if llm is not None:
            self.llm = llm

    @cached_property
    def embeddings(self) -> Embeddings:
        """The embedding model (loaded on first use)."""
        return make_embeddings(self.settings)

    @cached_property
    def llm(self) -> BaseChatModel:
        """The chat model (loaded on first use)."""
        return make_llm(self.settings)

    @cached_property
    def store(self) -> Store:
        """The vector store holding the indexed chunks."""
        return Store(self.settings, self.embeddings)

    @cached_property
    def chain(self) -> Runnable:
        """The LCEL answering chain."""
        s = self.settings
        learned = self.decision if s.answerability == "learned" else None
        thresholds = Thresholds(
            s.abstain_threshold,
            s.support_threshold,
            learned,
            s.answer_threshold,
            s.open_support_threshold,
            s.agreement_samples,
            s.agreement_threshold,
        )
        shapes = s.answer_shapes == "auto"
        layers = set(s.guard.split(","))
        guard = Guard(*(name in layers for name in ("neutralize", "withhold", "datamark")))
        return build_chain(
            self.llm,
            self.retrieve,
            thresholds,
            self.retriever.from_index,
            shapes,
            guard,
            yesno_reading=s.yesno_reading == "bearing",
            narrow=s.narrow_passages if s.reading == "progressive" else 0,
        )

    @cached_property
    def decision(self) -> Answerability:
        """The answer decision in effect: one fitted to this very index by
        :meth:`calibrate_synthetic` that passed its check, else the shipped one. A decision
        belongs to its index: an Assistant over another index never reads it."""
        from qa.trust.synthetic import fitted_decision

        path = fitted_decision(self.settings)
        return Answerability.load(path) if path else shipped_answerability()

    def use_decision(self) -> None:
        """Answer from the next question on with the decision now recorded for this index;
        the chain is rebuilt, models and index stay loaded."""
        for name in ("chain", "decision"):  # cached properties, built again on next use
            self.__dict__.pop(name, None)

    def use_answer_threshold(self, value: float) -> None:
        """Answer from the next question on with ``answer_threshold = value``."""
        self.settings = self.settings.model_copy(update={"answer_threshold": value})
        self.use_decision()

    def for_documents(self, docs_dir: Path, index_dir: Path) -> Assistant:
        """A new Assistant over another folder and an embedded index in ``index_dir`` that shares
        this one's models. The index is embedded even when this Assistant uses a Chroma server,
        whose collection must not be overwritten by a temporary corpus."""
        update = {"seeds_dir": docs_dir, "index_dir": index_dir, "chroma_host": None}
        settings = self.settings.model_copy(update=update)
        return Assistant(settings, embeddings=self.embeddings, llm=self.llm)

    def for_workspace(self, name: str) -> Assistant:
        """A new Assistant over the workspace ``name`` (:mod:`qa.workspaces`; ``qa``: the
        project root's) that shares this one's models: its own documents, index, decision,
        gold sets, chats, ratings and ``qa.toml``.

        Raises:
            WorkspaceError: a bad name; WorkspaceNotFoundError: no such workspace.
        """
        from qa.workspaces import Workspace

        return Workspace.open(name, base=self.settings).assistant(self)

    def index(
        self,
        paths: Sequence[Path] | None = None,
        *,
        progress: Callable[[int, int], None] | None = None,
        on_wait: Callable[[str], None] | None = None,
    ) -> IndexReport:
        """Bring the index in step with the documents: embed new chunks, drop stale ones.

        Without ``paths`` the index mirrors ``seeds_dir``. With ``paths`` (files or folders)
        only those documents are added, updated or dropped; the rest stay. Documents outside
        ``seeds_dir`` are named by their absolute path and stay indexed while their file exists.
        Unchanged documents cost nothing; unreadable files are skipped and listed in
        ``IndexReport.skipped``.

        Runs are serialized by a lock (see :func:`qa.documents.client.index_lock`): if another
        process is
        indexing the same index, ``on_wait`` gets a message and this run waits for it. Changes are
        built into a new collection that goes live only when complete, so a run that is killed
        leaves the previous index queryable.
        """
        root = self.settings.seeds_dir
        if paths is None and not root.exists():
            raise IndexNotFoundError(f"No documents folder at {root}/; create it and add files")
        if missing := [str(p) for p in paths or [] if not p.exists()]:
            raise UnsupportedFileError(f"No such file or folder: {', '.join(missing)}")
        with index_lock(self.settings, on_wait):
            t0 = time.perf_counter()
            # Read under the lock: a run that waited sees what the previous run left on disk.
            chunks, skipped = read_documents(self.settings, paths)
            excluded = self.store.excluded()
            # Removed documents stay out until indexed by name again; gone files leave the list.
            keep = {
                s
                for s in excluded
                if source_path(s, root).exists() and not (paths and named(s, root, paths))
            }
            chunks = [c for c in chunks if c.source not in keep]
            scope = {s for s in self.store.sources() if in_scope(s, root, paths)}
            added, removed, unchanged = self.store.sync(
                chunks,
                replace_sources=scope,
                progress=progress,
                excluded=keep if keep != excluded else None,
            )
        if added or removed:
            self._changed()
        return IndexReport(
            files=len({c.source for c in chunks}),
            added=added,
            removed=removed,
            unchanged=unchanged,
            seconds=time.perf_counter() - t0,
            skipped=skipped,
        )

    def _changed(self) -> None:
        for callback in self.on_change:
            callback()

    def documents(self) -> list[DocumentInfo]:
        """Every indexed document: source name, type, chunks, title, when indexed."""
        return self.store.documents()

    def remove(
        self,
        source: str,
        *,
        delete_file: bool = False,
        on_wait: Callable[[str], None] | None = None,
    ) -> IndexReport:
        """Take the document ``source`` (its name in :meth:`documents`) out of the index.

        Its chunks leave the store through the same crash-safe rebuild as :meth:`index`. With
        ``delete_file`` its file is deleted from ``seeds_dir`` too; otherwise the file stays
        and later :meth:`index` runs skip it until it is indexed by name
        (``index([path])``, or uploaded again).

        Raises:
            DocumentNotFoundError: nothing indexed has that name.
        """
        path = source_path(source, self.settings.seeds_dir)
        root = os.path.abspath(self.settings.seeds_dir)
        if delete_file and not Path(os.path.abspath(path)).is_relative_to(root):
            raise DocumentNotFoundError(
                f"{source} is not in {self.settings.seeds_dir}/; qa deletes files only there"
            )
        with index_lock(self.settings, on_wait):
            t0 = time.perf_counter()
            if source not in self.store.sources():
                raise DocumentNotFoundError(
                    f"No indexed document named {source!r}; `qa docs list` shows the names"
                )
            excluded = self.store.excluded() | {source}
            _, removed, _ = self.store.sync([], replace_sources={source}, excluded=excluded)
            if delete_file:  # after the chunks: a crash in between leaves an excluded file
                path.unlink(missing_ok=True)
        self._changed()
        return IndexReport(
            files=1, added=0, removed=removed, unchanged=0, seconds=time.perf_counter() - t0
        )

    @cached_property
    def history(self) -> ChatHistory:
        """Past browser chats: ``settings.history_path``, else ``history.sqlite3`` in the index
        folder (in ``cache_dir`` when a Chroma server holds the index)."""
        s = self.settings
        path = s.history_path or (s.cache_dir if s.chroma_host else s.index_dir) / "history.sqlite3"
        return ChatHistory(path, s.history_max_chats)

    @cached_property
    def feedback_store(self) -> FeedbackStore:
        """The ratings file at ``settings.feedback_path``."""
        return FeedbackStore(self.settings.feedback_path)

    def feedback(
        self,
        answer: Answer,
        verdict: Verdict,
        correction: str | None = None,
        *,
        unanswerable: bool = False,
        user: str | None = None,
    ) -> FeedbackItem:
        """Rate ``answer`` and append it to ``settings.feedback_path`` as a gold item, so
        ``qa eval --gold`` re-runs it (the rules are in :mod:`qa.evaluation.feedback`).

        Args:
            answer: An answer from :meth:`ask` or :meth:`stream`.
            verdict: ``"up"`` (👍) or ``"down"`` (👎).
            correction: For a 👎, what the answer should have been (its names and numbers
                become the facts to check).
            unanswerable: For a 👎, the documents do not answer the question.
            user: Who rated it (the login name when ``QA_AUTH`` is on).

        Raises:
            FeedbackError: a 👎 with neither ``correction`` nor ``unanswerable``.
        """
        try:
            index = {"fingerprint": fingerprint(self.settings), "collection": self.store.live_name}
        except QAError:  # a lost Chroma server must not cost the rating
            index = {"fingerprint": fingerprint(self.settings)}
        item = make_item(
            answer, verdict, correction, unanswerable=unanswerable, index=index, user=user
        )
        self.feedback_store.append(item)
        return item

    @cached_property
    def retriever(self) -> Retriever:
        """Finds the passages for a question (see :mod:`qa.answering.retrieval`)."""
        return Retriever(self.settings, self.store, self._summarize)

    def retrieve(self, question: str, shape: Shape = "short") -> list[Hit]:
        """The chunks the LLM will see for ``question``: the ``top_k`` best, or the whole
        corpus in document order when it fits ``full_context_chars``."""
        return self.retriever.retrieve(question, shape)

    def _summarize(self, hits: list[Hit]) -> list[Sentence]:
        inputs = {"question": SUMMARY_QUESTION, "history": [], "shape": "overview", "hits": hits}
        *_, answer = self.chain.stream(inputs | {"t0": time.perf_counter()})
        return answer.sentences

    def ask(self, question: str, history: list[Message] | None = None) -> Answer:
        """Answer ``question`` (a follow-up if ``history`` is given) from the indexed documents.

        Args:
            question: The user's question.
            history: Earlier turns in OpenAI/Gradio "messages" format.

        Raises:
            InvalidQuestionError: the question is empty or too long.
            IndexNotFoundError: nothing is indexed yet (run ``qa index``).
        """
        stream = self.stream(question, history)
        for _ in stream:
            pass
        assert stream.answer is not None
        return stream.answer

    def stream(self, question: str, history: list[Message] | None = None) -> AnswerStream:
        """Like :meth:`ask`, but yields the answer text as it is generated."""
        question = clean_question(question, self.settings.max_question_chars)
        inputs = {"question": question, "history": history or [], "t0": time.perf_counter()}
        return AnswerStream(self.chain.stream(inputs))

    @property
    def answer_threshold(self) -> float | None:
        """The P(right) below which answers are withheld: the setting, else the shipped
        operating point of the decision this backend allows (None: the decision is off)."""
        s = self.settings
        if s.answerability == "off":
            return None
        if s.answer_threshold is not None:
            return s.answer_threshold
        # The local model and qa's own model server report hidden states; other servers do not.
        name = "hidden-state" if s.llm_backend in ("local", "qa") else "log-probabilities"
        return self.decision.threshold(name)

    def calibrate(
        self,
        gold: Sequence[Path] = (),
        *,
        ratings: bool = True,
        write: bool = True,
        progress: Callable[[int, int], None] | None = None,
    ) -> Calibration:
        """Fit the answer threshold to this user's rated answers (``settings.feedback_path``)
        and ``gold`` sets, asked again: the shipped rule on their risk/coverage curve
        (:func:`qa.trust.calibration.calibrate_assistant`). Unless ``write`` is off, it goes
        into ``qa.toml`` and into this Assistant; ``Calibration.missing`` says how many more
        decided answers it needs when there are too few."""
        return calibration.calibrate_assistant(
            self, gold, ratings=ratings, write=write, progress=progress
        )

    def generate_gold(
        self,
        *,
        count: int = 40,
        seed: int = 0,
        out: Path | None = None,
        progress: Callable[[int, int], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> GeneratedGold:
        """About ``count`` gold items from the indexed documents, written to ``out`` if given
        (:mod:`qa.evaluation.generate`: round-tripped answerable questions, look-alike
        unanswerable ones, yes/no half "no"); seeded. ``progress(kept, count)``; ``cancel()``
        True stops early."""
        from qa.evaluation.generate import generate_gold, write_gold, write_removed

        generated = generate_gold(self, count=count, seed=seed, progress=progress, cancel=cancel)
        if out is not None:
            write_gold(generated.items, out)
            if generated.removed:  # a set of its own: each asked over its passage, answer cut
                write_removed(generated.removed, out)
        return generated

    def calibrate_synthetic(
        self,
        gold: Path | None = None,
        *,
        count: int = 40,
        seed: int = 0,
        ratings: bool = True,
        write: bool = True,
        adopt: bool = True,
        progress: Callable[[int, int], None] | None = None,
        proceed: Callable[[], bool] | None = None,
    ) -> SyntheticCalibration:
        """Fit the answer decision (not only its threshold) to this corpus, without labels
        (:mod:`qa.trust.synthetic`): its generated gold set (``gold``, default
        ``evals/generated/<documents folder>.jsonl``, made if missing) and the rated answers
        are asked, the decision refitted with the shipped fit as the prior. It is used only
        if ``adopt`` is on and it passes a check that reads no label
        (:func:`qa.trust.adapt.adoption_check`); then it is written next to the index and
        answers every later question over that index. Unless ``write`` is off, what was fitted
        on and the check's verdict are recorded there either way. ``proceed()`` runs before
        each item (it may wait for the chat); False stops."""
        from qa.trust.synthetic import calibrate_synthetic

        return calibrate_synthetic(
            self,
            gold,
            count=count,
            seed=seed,
            ratings=ratings,
            write=write,
            adopt=adopt,
            progress=progress,
            proceed=proceed,
        )

    def warm_up(self) -> None:
        """Load the models and the LLM's fixed prompt prefix (with a throwaway question), so
        the first real question is answered at full speed.

        The local LLM loads the prefix from its saved state (``kv_state_files``) when there is
        one. When it had to compute it, a second question, starting with another word, shows
        it which part of the prompt is fixed, and it saves that part for the next start.
        """
        with contextlib.suppress(QAError):  # nothing indexed: the models are loaded anyway
            first = self.ask(WARM_UP_QUESTIONS[0])  # short answers: no document summaries yet
            if first.timings.prompt_eval_tokens > WORTH_SAVING:
                self.ask(WARM_UP_QUESTIONS[1])

    def status(self) -> dict[str, str | int]:
        """What is indexed and which models answer."""
        sources = self.store.sources()
        return {
            "documents": len(sources),
            "chunks": sum(sources.values()),
            "embedding_model": self.settings.embedding_model,
            "llm_model": self.settings.llm_model,
        }
