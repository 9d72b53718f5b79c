"""Workspaces: several document collections in one install, each with everything that belongs
to its documents.

One install used to answer over one folder, and what belongs to that corpus (its index, the
decision fitted to it, its generated gold set, reports, chats and ratings, its ``qa.toml``) was
found through the working directory, so a second collection read the first one's state. A
:class:`Workspace` names the one place where all of it lives:

=================  ===========================  ===========================================
what               the default workspace (qa)   a named one
=================  ===========================  ===========================================
documents          ``seeds/``                   ``workspaces/<name>/docs/`` (or ``--docs``)
index              ``index/``                   ``workspaces/<name>/index/``; on a Chroma
                                                server the collection ``ws-<name>``
fitted decision    next to the index            next to the index (:mod:`qa.trust.synthetic`)
gold, reports      ``evals/``                   ``workspaces/<name>/evals/``
ratings            ``evals/feedback.jsonl``     ``workspaces/<name>/evals/feedback.jsonl``
chats              ``index/history.sqlite3``    ``workspaces/<name>/history.sqlite3``
settings           ``qa.toml``                  ``workspaces/<name>/qa.toml``
=================  ===========================  ===========================================

The project root stays the default workspace, so commands without ``--workspace`` do what they
always did. The models and servers (:data:`SHARED`) are the process's: a named workspace takes
them from the root's settings and shares the loaded models (:meth:`Workspace.assistant`), so
only the index data grows with the number of workspaces.
"""

from __future__ import annotations

import re
import shutil
import threading
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qa.config import Settings
from qa.errors import QAError

if TYPE_CHECKING:
    from qa.assistant import Assistant

DEFAULT = "qa"
"""The default workspace's name (the project root): the model id ``qa`` of the HTTP API."""
RESERVED = frozenset({DEFAULT, "default"})
"""Names that mean the project root and cannot be created."""
MAX_NAME = 64
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
# Letters, digits, '.', '-', '_' (a Chroma collection name's alphabet), starting and ending with
# a letter or digit; '__' is refused because a store's own collections are '<name>__…'.

SHARED = (
    "embedding_model",
    "llm_backend",
    "llm_model",
    "llm_server_url",
    "openai_base_url",
    "openai_api_key",
    "openai_grammar",
    "ollama_base_url",
    "request_timeout",
    "temperature",
    "max_tokens",
    "n_ctx",
    "threads",
    "parallel",
    "prefill_chunk",
    "kv_state_files",
    "chroma_host",
    "chroma_port",
    "cache_dir",
    "admins",
    "api_keys_file",
    "api_max_queue",
    "api_max_body_mb",
    "workspaces_dir",
)
"""Settings a named workspace takes from the root's (env and ``qa.toml``), not its own
``qa.toml``: what the shared models and the servers are made from."""

CONFIG_HEADER = (
    "# Settings of the qa workspace {name!r}: what answers over its documents (top_k, "
    "thresholds, chunking, ...).\n# Models and servers are the install's (QA_* variables, the "
    "root qa.toml).\n"
)


class WorkspaceError(QAError):
    """A workspace name that cannot be used, or one that already exists."""


class WorkspaceNotFoundError(WorkspaceError):
    """No workspace has the given name."""


def check_name(name: str) -> str:
    """``name`` if a workspace may be called that, else a :class:`WorkspaceError` saying why."""
    if not name:
        raise WorkspaceError("A workspace needs a name, e.g. `qa workspace create manuals`")
    if len(name) > MAX_NAME:
        raise WorkspaceError(f"Workspace names are at most {MAX_NAME} characters: {name[:20]}…")
    if "/" in name or "\\" in name or ".." in name:
        raise WorkspaceError(f"{name!r} is not a workspace name: no '/', '\\' or '..'")
    if name.lower() in RESERVED:
        raise WorkspaceError(
            f"{name!r} is reserved: it names the project root's workspace; choose another name"
        )
    if not _NAME.fullmatch(name) or "__" in name:
        raise WorkspaceError(
            f"{name!r} is not a workspace name: use letters, digits, '.', '-' and single '_', "
            "starting and ending with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class WorkspaceInfo:
    """One workspace as ``qa workspace list`` shows it: documents and chunks indexed, when the
    newest was indexed (ISO time, "" if never) and which decision answers (``fitted`` to its
    index, or ``shipped``)."""

    name: str
    documents: int
    chunks: int
    indexed_at: str
    decision: str


@dataclass(frozen=True)
class Workspace:
    """One document collection and everything that belongs to it (see the module docstring).

    Example:
        >>> manuals = Workspace.create("manuals", docs=Path("~/manuals").expanduser())
        >>> qa = manuals.assistant()            # or Assistant().for_workspace("manuals")
        >>> qa.index(); qa.ask("How do I reset the pump?")
    """

    name: str
    root: Path
    """The workspace's folder; ``.`` (the project root) for the default workspace."""

    @classmethod
    def default(cls) -> Workspace:
        """The project root's workspace: ``seeds/``, ``index/``, ``evals/``, ``qa.toml``."""
        return cls(DEFAULT, Path("."))

    @classmethod
    def open(cls, name: str | None, *, base: Settings | None = None) -> Workspace:
        """The workspace ``name`` (None, ``qa`` or ``default``: the project root's).

        Raises:
            WorkspaceError: the name is not a workspace name.
            WorkspaceNotFoundError: no workspace has that name.
        """
        if name is None or name.lower() in RESERVED:
            return cls.default()
        found = cls(check_name(name), _root(base) / name)
        if not found.exists():
            raise WorkspaceNotFoundError(
                f"No workspace {name!r}; `qa workspace list` shows them, "
                f"`qa workspace create {name}` makes it"
            )
        return found

    @classmethod
    def create(
        cls, name: str, *, docs: Path | None = None, base: Settings | None = None
    ) -> Workspace:
        """Make the workspace ``name``: its folders and its ``qa.toml``. With ``docs`` it
        answers over that folder where it is (its files are never moved or deleted by
        removing the workspace), else over its own ``docs/``.

        Raises:
            WorkspaceError: a bad or reserved name, a name in use, or ``docs`` is no folder.
        """
        made = cls(check_name(name), _root(base) / name)
        if made.exists():
            raise WorkspaceError(f"A workspace {name!r} exists; `qa workspace remove {name}` first")
        if docs is not None and not docs.is_dir():
            raise WorkspaceError(f"No folder {docs}/ to take the documents from")
        for folder in ("docs", "index", "evals"):
            (made.root / folder).mkdir(parents=True, exist_ok=True)
        text = CONFIG_HEADER.format(name=name)
        if docs is not None:
            text += f"seeds_dir = {_toml_string(str(docs.resolve()))}\n"
        made.config_file.write_text(text, encoding="utf-8")
        return made

    @property
    def is_default(self) -> bool:
        """Whether this is the project root's workspace."""
        return self.name == DEFAULT

    @property
    def config_file(self) -> Path:
        """Its settings file."""
        return self.root / "qa.toml"

    def exists(self) -> bool:
        """Whether it has been created (its ``qa.toml`` is there)."""
        return self.is_default or self.config_file.is_file()

    @property
    def docs_dir(self) -> Path:
        """Its documents folder: ``docs/``, or the folder its ``qa.toml`` names as
        ``seeds_dir`` (relative to the workspace)."""
        try:
            named = tomllib.loads(self.config_file.read_text(encoding="utf-8")).get("seeds_dir")
        except (OSError, tomllib.TOMLDecodeError):
            named = None
        return self.root / (named or "docs")

    def settings(self, base: Settings | None = None, **overrides: Any) -> Settings:
        """Its settings: the shared ones (:data:`SHARED`) from ``base`` (default: the root's),
        its folders, its ``qa.toml``, then ``overrides``. The default workspace's are
        ``Settings(**overrides)``, as before workspaces."""
        if self.is_default:
            return Settings(**overrides)
        base = base or Settings()
        own = {
            "config_file": self.config_file,
            "seeds_dir": self.docs_dir,
            "index_dir": self.root / "index",
            "evals_dir": self.root / "evals",
            "feedback_path": self.root / "evals" / "feedback.jsonl",
            "history_path": self.root / "history.sqlite3",
            "collection": f"ws-{self.name}",
        }
        shared = {name: getattr(base, name) for name in SHARED}
        return Settings(**(shared | own | overrides))

    def assistant(self, models: Assistant | None = None, **overrides: Any) -> Assistant:
        """An Assistant over this workspace. With ``models`` (an Assistant), it shares that
        one's embedding model and LLM, and takes the shared settings from it; without, it
        loads its own on first use."""
        from qa.assistant import Assistant

        if models is None:
            return Assistant(self.settings(**overrides))
        settings = self.settings(models.settings, **overrides)
        return Assistant(settings, embeddings=models.embeddings, llm=models.llm)

    def info(self, assistant: Assistant | None = None) -> WorkspaceInfo:
        """What is indexed in it and which decision answers (through ``assistant`` if given,
        else one that loads no model to tell)."""
        from qa.trust.synthetic import fitted_decision

        assistant = assistant or self.assistant()
        found = assistant.documents()
        newest = max((d.indexed_at for d in found), default="")
        decision = "fitted" if fitted_decision(assistant.settings) else "shipped"
        return WorkspaceInfo(self.name, len(found), sum(d.chunks for d in found), newest, decision)

    def remove(self, base: Settings | None = None) -> None:
        """Delete it: its Chroma collections (on a server), what is kept for its index in
        ``cache_dir``, and its folder. A documents folder outside it (``--docs``) is kept.

        Raises:
            WorkspaceError: it is the project root's workspace.
        """
        from qa.documents.client import index_lock, lock_path, open_client
        from qa.trust.synthetic import bound_folder

        if self.is_default:
            raise WorkspaceError("The project root's workspace (qa) cannot be removed")
        settings = self.settings(base)
        with index_lock(settings):  # an index run of this workspace finishes first
            if settings.chroma_host:
                client = open_client(settings)
                prefix = f"{settings.collection}__"
                for collection in client.list_collections():
                    name = collection.name
                    if name == settings.collection or name.startswith(prefix):
                        client.delete_collection(name)
                shutil.rmtree(bound_folder(settings), ignore_errors=True)
                (settings.cache_dir / f"summaries-{settings.collection}.json").unlink(
                    missing_ok=True
                )
            else:
                _forget_client(settings.index_dir)
            shutil.rmtree(self.root, ignore_errors=True)
        if settings.chroma_host:
            lock_path(settings).unlink(missing_ok=True)


def workspaces(base: Settings | None = None) -> list[Workspace]:
    """Every workspace: the default one first, then the named ones by name."""
    root = _root(base)
    named = sorted(p.parent.name for p in root.glob("*/qa.toml"))
    return [Workspace.default(), *(Workspace(name, root / name) for name in named)]


class Workspaces:
    """The Assistants of every workspace one process serves, made on first use from ``base``
    (the default workspace's Assistant) and sharing its models: what the HTTP API picks by a
    request's ``model`` and the page by its workspace picker (one instance for both when they
    are served together, :func:`qa.api.serve.build_server`)."""

    def __init__(self, base: Assistant) -> None:
        self.base = base
        self._made: dict[str, Assistant] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        """Every workspace's name, ``qa`` first."""
        return [w.name for w in workspaces(self.base.settings)]

    def get(self, name: str) -> Assistant:
        """The Assistant of workspace ``name`` (``qa``: the base).

        Raises:
            WorkspaceError, WorkspaceNotFoundError: see :meth:`Workspace.open`.
        """
        if name.lower() in RESERVED:
            return self.base
        try:
            workspace = Workspace.open(name, base=self.base.settings)
        except WorkspaceNotFoundError:
            self._made.pop(name, None)  # removed: one made again under its name starts afresh
            raise
        with self._lock:
            made = self._made.get(name)
            if made is None:
                made = self._made[name] = workspace.assistant(self.base)
            return made


def _root(base: Settings | None) -> Path:
    return (base or Settings()).workspaces_dir


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _forget_client(index_dir: Path) -> None:
    """Drop chromadb's cached client of an embedded index about to be deleted: a later client
    on the same path (a workspace made again under that name) must not reuse its state."""
    from chromadb.api.shared_system_client import SharedSystemClient

    key = str(index_dir)
    system = SharedSystemClient._identifier_to_system.pop(key, None)
    if system is not None:
        system.stop()
