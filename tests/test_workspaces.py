"""Workspaces (qa.workspaces): each collection keeps its own documents, index, decision, gold
sets, chats and ratings; nothing of one reaches a question asked in another."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.language_models import FakeListChatModel
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk

from qa import Assistant, Settings
from qa.workspaces import (
    DEFAULT,
    Workspace,
    WorkspaceError,
    WorkspaceNotFoundError,
    Workspaces,
    workspaces,
)

LIGHT = "# Lighthouse\n\nThe Quillon lighthouse was first lit in 1874 by Odile Vantongeren.\n"
FERRY = "# Ferry\n\nThe ferry crosses the river every 20 minutes. It was built in 1961.\n"
SMALL = {"chunk_size": 120, "chunk_overlap": 0, "top_k": 20, "support_threshold": 0}


class RecordingLLM(FakeListChatModel):
    """Says "none" to everything and keeps every prompt it was shown."""

    responses: list[str] = []
    prompts: list[str] = []

    def _call(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> str:
        self.prompts.append("\n".join(str(m.content) for m in messages))
        return "Answer: none\nQuote: none"

    def _stream(
        self, messages: list[BaseMessage], *args: Any, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        yield ChatGenerationChunk(message=AIMessageChunk(content=self._call(messages)))


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project root (the working directory) with seeds/ holding the lighthouse."""
    from chromadb.api.shared_system_client import SharedSystemClient

    # chromadb caches embedded clients by path as given: relative paths ("index") name another
    # folder in each test's working directory.
    SharedSystemClient.clear_system_cache()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "seeds").mkdir()
    (tmp_path / "seeds" / "light.md").write_text(LIGHT)
    yield tmp_path
    SharedSystemClient.clear_system_cache()


@pytest.fixture
def base(project: Path) -> Assistant:
    """The default workspace's Assistant over fake models, indexed."""
    llm = RecordingLLM(prompts=[])
    a = Assistant(Settings(**SMALL), embeddings=DeterministicFakeEmbedding(size=32), llm=llm)
    a.index()
    return a


def ferry_workspace(name: str = "ferries") -> Workspace:
    made = Workspace.create(name)
    (made.docs_dir / "ferry.md").write_text(FERRY)
    append(made.config_file, "chunk_size = 120\nchunk_overlap = 0\ntop_k = 20\n")
    return made


def append(path: Path, text: str) -> None:
    with path.open("a") as file:
        file.write(text)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "needs a name"),
        ("a/b", "no '/'"),
        ("a\\b", "no '/'"),
        ("..", "no '/'"),
        ("x..y", "no '/'"),
        ("n" * 65, "at most 64"),
        ("qa", "reserved"),
        ("Default", "reserved"),
        ("-x", "letters, digits"),
        ("a b", "letters, digits"),
        ("a__b", "letters, digits"),
    ],
)
def test_bad_names_are_refused_with_one_line(project: Path, name: str, why: str) -> None:
    with pytest.raises(WorkspaceError, match=why) as err:
        Workspace.create(name)
    assert "\n" not in str(err.value)
    assert not (project / "workspaces").exists() or not any((project / "workspaces").iterdir())


def test_the_project_root_is_the_default_workspace(project: Path) -> None:
    default = Workspace.open(None)
    assert default.name == DEFAULT and Workspace.open("qa") == default
    assert default.settings(top_k=3) == Settings(top_k=3)  # exactly as before workspaces
    s = default.settings()
    assert (s.seeds_dir, s.index_dir, s.evals_dir, s.config_file) == (
        Path("seeds"),
        Path("index"),
        Path("evals"),
        Path("qa.toml"),
    )


def test_a_named_workspace_keeps_everything_in_its_folder(project: Path) -> None:
    (project / "qa.toml").write_text("top_k = 7\nanswer_threshold = 0.9\n")
    made = Workspace.create("manuals")
    append(made.config_file, "top_k = 3\n")
    s = made.settings()
    root = Path("workspaces/manuals")
    assert s.seeds_dir == root / "docs" and s.index_dir == root / "index"
    assert s.evals_dir == root / "evals" and s.feedback_path == root / "evals/feedback.jsonl"
    assert s.history_path == root / "history.sqlite3" and s.config_file == root / "qa.toml"
    assert s.collection == "ws-manuals"
    # Its own qa.toml, not the root's (whose threshold was fitted to the root's documents).
    assert s.top_k == 3 and s.answer_threshold is None
    with pytest.raises(WorkspaceError, match="exists"):
        Workspace.create("manuals")
    with pytest.raises(WorkspaceNotFoundError, match="qa workspace create other"):
        Workspace.open("other")
    assert [w.name for w in workspaces()] == ["qa", "manuals"]


def test_docs_elsewhere_are_answered_in_place(project: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "contracts"
    elsewhere.mkdir()
    made = Workspace.create("contracts", docs=elsewhere)
    assert made.settings().seeds_dir == elsewhere.resolve()
    with pytest.raises(WorkspaceError, match="No folder"):
        Workspace.create("x", docs=tmp_path / "missing")


def test_a_question_never_sees_another_workspace(base: Assistant, project: Path) -> None:
    ferry_workspace()
    ferries = base.for_workspace("ferries")
    assert ferries.embeddings is base.embeddings and ferries.llm is base.llm  # loaded once
    ferries.index()
    assert [d.source for d in ferries.documents()] == ["ferry.md"]
    assert [d.source for d in base.documents()] == ["light.md"]
    # Dense and BM25 both: every passage retrieved is the workspace's own.
    for question in ("When was the lighthouse first lit?", "How often does the ferry cross?"):
        assert {h.chunk.source for h in ferries.store.hybrid_search(question, 10)} == {"ferry.md"}
        assert {h.chunk.source for h in ferries.store.search(question, 10)} == {"ferry.md"}
        assert {h.chunk.source for h in base.store.hybrid_search(question, 10)} == {"light.md"}
    llm = base.llm
    assert isinstance(llm, RecordingLLM)
    llm.prompts.clear()
    ferries.ask("When was the lighthouse first lit?")
    assert llm.prompts and not any("Vantongeren" in p for p in llm.prompts)
    llm.prompts.clear()
    base.ask("When was the ferry built?")
    assert llm.prompts and not any("1961" in p for p in llm.prompts)


def test_history_ratings_gold_and_decision_stay_in_their_workspace(
    base: Assistant, project: Path
) -> None:
    from qa.trust.synthetic import decision_path, gold_path, record_path

    ferry_workspace()
    ferries = base.for_workspace("ferries")
    ferries.index()
    answer = ferries.ask("How often does the ferry cross?")
    ferries.feedback(answer, "down", unanswerable=True)
    ferries.history.save("ann", None, [{"role": "user", "content": "ferry?"}])
    fs, bs = ferries.settings, base.settings
    assert fs.feedback_path.exists() and not bs.feedback_path.exists()
    assert base.history.list("ann") == [] and ferries.history.list("ann")
    assert gold_path(fs) == Path("workspaces/ferries/evals/generated/docs.jsonl")
    assert gold_path(bs) == Path("evals/generated/seeds.jsonl")
    assert decision_path(fs).parent == fs.index_dir != decision_path(bs).parent
    # A decision fitted and adopted in one workspace answers there only.
    decision = Path(__file__).parents[1] / "qa/data/decision.json"
    decision_path(fs).write_text(decision.read_text())
    record_path(fs).write_text('{"adopted": true}\n')
    assert Workspace.open("ferries").info(ferries).decision == "fitted"
    assert Workspace.default().info(base).decision == "shipped"


def test_calibrating_writes_the_workspaces_own_settings(base: Assistant, project: Path) -> None:
    from qa.trust.calibration import write_threshold

    ferry_workspace()
    ferries = base.for_workspace("ferries")
    written = write_threshold(0.4, source="test", path=ferries.settings.config_file)
    assert written == Path("workspaces/ferries/qa.toml")
    assert base.for_workspace("ferries").settings.answer_threshold == 0.4
    assert not (project / "qa.toml").exists()


def test_remove_leaves_nothing_behind(base: Assistant, project: Path) -> None:
    ferry_workspace()
    ferries = base.for_workspace("ferries")
    ferries.index()
    Workspace.open("ferries").remove()
    assert not (project / "workspaces" / "ferries").exists()
    with pytest.raises(WorkspaceNotFoundError):
        base.for_workspace("ferries")
    assert [d.source for d in base.documents()] == ["light.md"]  # the others are untouched
    with pytest.raises(WorkspaceError, match="cannot be removed"):
        Workspace.default().remove()
    # The same name made again starts empty.
    again = ferry_workspace().assistant(base)
    assert again.documents() == []


def test_two_indexes_into_two_workspaces_at_once_both_land(base: Assistant, project: Path) -> None:
    from qa.uploads import add_uploads

    names = ("north", "south")
    made = {name: ferry_workspace(name).assistant(base) for name in names}
    files = {}
    for name in names:
        path = project / f"{name}.md"
        path.write_text(f"# {name}\n\nThe {name} pier opened in 19{len(name)}0.\n")
        files[name] = path
    errors: list[BaseException] = []

    def upload(name: str) -> None:
        try:
            add_uploads(made[name], [files[name]], None, lambda _: None)
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=upload, args=(name,)) for name in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    for name in names:
        assert {d.source for d in made[name].documents()} == {f"{name}.md"}
        made[name].index()
        assert {d.source for d in made[name].documents()} == {f"{name}.md", "ferry.md"}


class GatedLLM(RecordingLLM):
    """Holds every prompt that mentions ``hold`` until ``gate`` is set (``held`` tells when one
    is held): a question still being answered."""

    hold: str = "How often does the ferry cross"
    gate: threading.Event = threading.Event()
    held: threading.Event = threading.Event()

    def _call(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> str:
        if any(self.hold in str(m.content) for m in messages):
            self.held.set()
            assert self.gate.wait(30), "the test never let the held question go on"
        return super()._call(messages, *args, **kwargs)


def test_removing_a_workspace_while_it_is_asked_loses_nothing_elsewhere(project: Path) -> None:
    from qa.errors import QAError

    llm = GatedLLM(prompts=[], gate=threading.Event(), held=threading.Event())
    root = Assistant(Settings(**SMALL), embeddings=DeterministicFakeEmbedding(size=32), llm=llm)
    root.index()
    ferry_workspace("a")
    piers = Workspace.create("b")
    (piers.docs_dir / "pier.md").write_text("# Pier\n\nThe pier opened in 1911 at Quillon.\n")
    append(piers.config_file, "chunk_size = 120\nchunk_overlap = 0\ntop_k = 20\n")
    shelf = Workspaces(root)
    a, b = shelf.get("a"), shelf.get("b")
    a.index()
    b.index()
    outcome: list[object] = []

    def ask_a() -> None:
        try:
            outcome.append(a.ask("How often does the ferry cross?"))
        except Exception as err:  # judged below: only a QAError may end it
            outcome.append(err)

    asking = threading.Thread(target=ask_a)
    asking.start()
    try:
        assert llm.held.wait(30), "the question in a never reached the model"
        Workspace.open("a", base=root.settings).remove()
        assert not (project / "workspaces/a").exists()
        # b and the root answer from their own chunks while a's question is still open.
        llm.prompts.clear()
        b.ask("When did the pier open?")
        assert any("1911" in p for p in llm.prompts)
        assert not any("1961" in p for p in llm.prompts)
        llm.prompts.clear()
        root.ask("When was the lighthouse first lit?")
        assert any("Vantongeren" in p for p in llm.prompts)
    finally:
        llm.gate.set()
        asking.join(30)
    assert not asking.is_alive()
    [result] = outcome
    assert not isinstance(result, Exception) or isinstance(result, QAError), repr(result)
    if isinstance(result, QAError):
        assert "\n" not in str(result)
    # Nothing of b or the root was lost; a is gone for good.
    assert [d.source for d in b.documents()] == ["pier.md"]
    assert [d.source for d in root.documents()] == ["light.md"]
    assert (project / "workspaces/b/docs/pier.md").exists()
    assert shelf.names() == ["qa", "b"]
    with pytest.raises(WorkspaceNotFoundError):
        shelf.get("a")


def test_workspaces_made_on_demand_share_the_models(base: Assistant, project: Path) -> None:
    ferry_workspace()
    shelf = Workspaces(base)
    assert shelf.names() == ["qa", "ferries"]
    assert shelf.get("qa") is base
    assert shelf.get("ferries") is shelf.get("ferries")
    assert shelf.get("ferries").llm is base.llm
    with pytest.raises(WorkspaceNotFoundError):
        shelf.get("nope")
    first = shelf.get("ferries")
    Workspace.open("ferries").remove()
    with pytest.raises(WorkspaceNotFoundError):
        shelf.get("ferries")
    ferry_workspace()
    assert shelf.get("ferries") is not first  # made again: a fresh Assistant


def test_cli_creates_lists_uses_and_removes_workspaces(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    import qa.assistant
    from qa.cli import app

    embeddings = DeterministicFakeEmbedding(size=32)
    monkeypatch.setattr(qa.assistant, "make_embeddings", lambda settings: embeddings)
    monkeypatch.delenv("QA_WORKSPACE", raising=False)
    run = CliRunner().invoke
    elsewhere = project / "piers"
    elsewhere.mkdir()
    (elsewhere / "pier.md").write_text("# Pier\n\nThe pier opened in 1911.\n")
    assert run(app, ["workspace", "create", "piers", "--docs", str(elsewhere)]).exit_code == 0
    assert run(app, ["workspace", "create", "ferries"]).exit_code == 0
    (project / "workspaces/ferries/docs/ferry.md").write_text(FERRY)
    assert run(app, ["index"]).exit_code == 0  # the project root, as before
    assert run(app, ["-w", "piers", "index"]).exit_code == 0
    env = {"QA_WORKSPACE": "ferries"}
    assert run(app, ["index"], env=env).exit_code == 0
    listed = run(app, ["-w", "ferries", "docs", "list"]).output
    assert "ferry.md" in listed and "pier.md" not in listed and "light.md" not in listed
    assert "pier.md" in run(app, ["docs", "list"], env={"QA_WORKSPACE": "piers"}).output
    assert "light.md" in run(app, ["docs", "list"]).output  # -w does not outlive its call
    table = run(app, ["workspace", "list"], terminal_width=200).output
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in table.splitlines()]
    rows = {row[0]: row[1:] for row in cells if row}
    assert all(rows[name][0] == "1" for name in ("qa", "piers", "ferries"))
    assert "shipped" in table
    bad = run(app, ["-w", "../x", "docs", "list"])
    assert bad.exit_code == 1 and "not a workspace name" in bad.output
    assert len(bad.output.strip().splitlines()) == 1
    assert run(app, ["-w", "nope", "ask", "hi"]).exit_code == 1
    assert run(app, ["workspace", "remove", "piers"], input="n\n").exit_code == 1
    assert (project / "workspaces/piers").exists()
    assert run(app, ["workspace", "remove", "piers", "--yes"]).exit_code == 0
    assert not (project / "workspaces/piers").exists()
    assert (elsewhere / "pier.md").exists()  # documents kept where they were
    assert run(app, ["workspace", "remove", "qa", "--yes"]).exit_code == 1


def test_the_api_picks_the_workspace_by_model(base: Assistant, project: Path) -> None:
    from fastapi.testclient import TestClient

    from qa.api.app import build_api

    ferry_workspace()
    api = TestClient(build_api(base), client=("127.0.0.1", 50000))
    listed = api.get("/v1/models").json()["data"]
    assert [m["id"] for m in listed] == ["qa", "ferries"]
    assert api.get("/v1/models/ferries").status_code == 200
    ask = {"messages": [{"role": "user", "content": "How often does the ferry cross?"}]}
    llm = base.llm
    assert isinstance(llm, RecordingLLM)
    api.post("/v1/documents?workspace=ferries", files={"file": ("f.md", FERRY.encode())})
    llm.prompts.clear()
    reply = api.post("/v1/chat/completions", json=ask | {"model": "ferries"})
    assert reply.status_code == 200 and reply.json()["model"] == "ferries"
    assert any("1961" in p for p in llm.prompts)
    assert not any("Vantongeren" in p for p in llm.prompts)
    rated = api.post("/v1/feedback", json={"id": reply.json()["id"], "verdict": "up"})
    assert rated.status_code == 201
    assert Path("workspaces/ferries/evals/feedback.jsonl").exists()
    assert not Path("evals/feedback.jsonl").exists()
    llm.prompts.clear()
    assert api.post("/v1/chat/completions", json=ask | {"model": "qa"}).status_code == 200
    assert not any("1961" in p for p in llm.prompts)
    docs = {n: api.get(f"/v1/documents?workspace={n}").json()["data"] for n in ("qa", "ferries")}
    assert [d["name"] for d in docs["qa"]] == ["light.md"]
    assert [d["name"] for d in docs["ferries"]] == ["f.md"]
    for model in ("nope", "../x"):
        missing = api.post("/v1/chat/completions", json=ask | {"model": model})
        assert missing.status_code == 404
        error = missing.json()["error"]
        assert error["code"] == "model_not_found" and "'qa', 'ferries'" in error["message"]
    assert api.get("/v1/documents?workspace=nope").status_code == 404


def test_keys_limited_to_workspaces_with_a_role_in_each(
    base: Assistant, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from qa.api.app import build_api
    from qa.api.keys import KeyFile
    from qa.cli import app

    ferry_workspace().assistant(base).index()
    ferry_workspace("piers")
    keys = KeyFile(project / "keys.json")
    every = keys.add("ann", "user")  # no map: every workspace, as keys made before workspaces
    cat = keys.add("cat", "user", {"ferries": "admin", "Default": ""})
    stored = {k["name"]: k for k in json.loads(keys.path.read_text())["keys"]}
    assert "workspaces" not in stored["ann"]
    assert stored["cat"]["workspaces"] == {"ferries": "admin", "qa": "user"}
    api = TestClient(build_api(base, keys=keys))

    def call(method: str, path: str, key: str, **kw: Any) -> Any:
        return api.request(method, path, headers={"Authorization": f"Bearer {key}"}, **kw)

    def models(key: str) -> list[str]:
        return [m["id"] for m in call("GET", "/v1/models", key).json()["data"]]

    assert models(every) == ["qa", "ferries", "piers"]
    assert models(cat) == ["qa", "ferries"]
    ask = {"messages": [{"role": "user", "content": "How often does the ferry cross?"}]}
    asked = call("POST", "/v1/chat/completions", cat, json=ask | {"model": "ferries"})
    assert asked.status_code == 200
    rating = {"id": asked.json()["id"], "verdict": "up"}
    assert call("POST", "/v1/feedback", cat, json=rating).status_code == 201
    doc = {"file": ("pier.md", b"# Pier\n\nThe pier opened in 1911.\n")}
    assert call("POST", "/v1/documents?workspace=ferries", cat, files=doc).status_code == 201
    refused = [
        call("POST", "/v1/chat/completions", cat, json=ask | {"model": "piers"}),
        call("GET", "/v1/models/piers", cat),
        call("GET", "/v1/documents?workspace=piers", cat),
        call("DELETE", "/v1/documents/ferry.md?workspace=piers", cat),
    ]
    for r in refused:
        error = r.json()["error"]
        assert r.status_code == 403 and error["type"] == "permission_error", r.text
        assert error["code"] == "workspace_forbidden" and "'piers'" in error["message"]
        assert "\n" not in error["message"]
    user_only = call("POST", "/v1/documents?workspace=qa", cat, files=doc)
    assert user_only.status_code == 403 and user_only.json()["error"]["code"] == "admin_required"
    missing = call("POST", "/v1/chat/completions", cat, json=ask | {"model": "nope"})
    assert missing.status_code == 404
    assert "'ferries'" in missing.json()["error"]["message"]
    assert "piers" not in missing.json()["error"]["message"]  # names only what it may use
    assert call("GET", "/v1/documents?workspace=piers", every).status_code == 200
    # Named in QA_ADMINS: an admin wherever the key reaches, and nowhere else.
    boss = TestClient(build_api(base, keys=KeyFile(keys.path, admins=["cat"])))
    headers = {"Authorization": f"Bearer {cat}"}
    assert boss.post("/v1/documents?workspace=qa", files=doc, headers=headers).status_code == 201
    assert boss.get("/v1/documents?workspace=piers", headers=headers).status_code == 403

    monkeypatch.setenv("QA_API_KEYS_FILE", str(keys.path))
    run = CliRunner().invoke
    limits = ["--workspace", "piers=admin", "--workspace", "qa"]
    made = run(app, ["api", "keys", "add", "dan", *limits])
    assert made.exit_code == 0, made.output
    assert "piers (admin), qa (user)" in made.output
    listed = run(app, ["api", "keys", "list"], terminal_width=200).output
    assert "dan  piers=admin qa=user" in listed and "ann  user" in listed
    for bad in ("piers=boss", "../x"):
        refused_cli = run(app, ["api", "keys", "add", "eve", "--workspace", bad])
        assert refused_cli.exit_code == 1 and len(refused_cli.output.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.e2e
def test_on_a_chroma_server_each_workspace_is_a_collection_and_remove_drops_it(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    from qa.trust.synthetic import bound_folder

    from .conftest import free_port
    from .test_documents import chunks_of
    from .test_servers import chroma

    port = free_port()
    monkeypatch.setenv("QA_CHROMA_HOST", "localhost")
    monkeypatch.setenv("QA_CHROMA_PORT", str(port))
    monkeypatch.setenv("QA_CACHE_DIR", str(project / "cache"))
    with chroma(project / "chroma-data", port):
        embeddings = DeterministicFakeEmbedding(size=32)
        base = Assistant(Settings(**SMALL), embeddings=embeddings, llm=RecordingLLM(prompts=[]))
        base.index()
        ferry_workspace()
        ferries = base.for_workspace("ferries")
        ferries.index()
        assert ferries.settings.chroma_host == "localhost"  # the install's server, shared
        for question in ("How often does the ferry cross?", "When was the lighthouse lit?"):
            assert {h.chunk.source for h in ferries.retrieve(question)} == {"ferry.md"}
            assert {h.chunk.source for h in base.retrieve(question)} == {"light.md"}
        client = chromadb.HttpClient(
            host="localhost", port=port, settings=ChromaSettings(anonymized_telemetry=False)
        )
        assert any(c.name.startswith("ws-ferries") for c in client.list_collections())
        assert chunks_of(client, "ferry.md")
        # Chats too stay in the workspace (the root's go to cache_dir with a server).
        assert ferries.history.path == Path("workspaces/ferries/history.sqlite3")
        bound = bound_folder(ferries.settings)
        bound.mkdir(parents=True, exist_ok=True)
        Workspace.open("ferries").remove()
        assert chunks_of(client, "ferry.md") == {}  # in no collection, builds included
        assert not any(c.name.startswith("ws-ferries") for c in client.list_collections())
        assert not bound.exists() and not Path("workspaces/ferries").exists()
        assert [d.source for d in base.documents()] == ["light.md"]
