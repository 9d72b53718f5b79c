"""bench/workspaces.py (#34 item 7) on fakes: every section is reported, and what it measured
was the workspace it named (times are not checked)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from qa import Assistant

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wsbench() -> Iterator[ModuleType]:
    sys.path.insert(0, str(ROOT / "bench"))  # as when run as a script: its towns module
    spec = importlib.util.spec_from_file_location("bench_workspaces", ROOT / "bench/workspaces.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.path.remove(str(ROOT / "bench"))


@pytest.fixture
def clean_clients() -> Iterator[None]:
    from chromadb.api.shared_system_client import SharedSystemClient

    SharedSystemClient.clear_system_cache()
    yield
    SharedSystemClient.clear_system_cache()


def test_two_tiny_workspaces_report_every_section(
    wsbench: ModuleType, tmp_path: Path, clean_clients: None
) -> None:
    base = wsbench.base_assistant(tmp_path, fake_llm=True)
    base.embeddings = DeterministicFakeEmbedding(size=32)
    assert isinstance(base, Assistant)

    result = wsbench.measure(base, count=2, switches=4)

    towns = result["towns"]
    assert len(towns) == 2 and (tmp_path / "workspaces" / towns[1] / "qa.toml").is_file()
    memory = result["memory"]
    assert memory["one_workspace"]["rss_mib"] > 0 and memory["all_workspaces"]["peak_mib"] > 0
    assert memory["chunks_per_workspace"] >= 3  # three documents each
    (first,) = memory["answers"]  # the one question asked in the first workspace
    assert first["cites_own_only"] and first["cites_expected"] and first["contains_fact"]

    switch = result["switch"]
    assert switch["switches"] == 4 and switch["right_workspace"]
    assert switch["page_ms_p50"] > 0 and switch["first_pick_ms_max"] > 0
    # The switch helper returns the named workspace's scope, backed by its own collection.
    pages = wsbench.picker.PageWorkspaces(wsbench.Workspaces(base), wsbench.ChatFirst())
    for name in towns:
        scope = wsbench.page_switch(pages, name)
        assert scope.name == name and scope.assistant.settings.collection == f"ws-{name}"
        assert {d.source for d in scope.assistant.documents()} == {
            f"{name}-lighthouse.md",
            f"{name}-bakery.txt",
            f"{name}-ferry.md",
        }

    fresh = result["first_answer"]
    assert fresh["workspace"] not in towns and fresh["chunks"] >= 3
    assert fresh["cited"] == [f"{fresh['workspace']}-lighthouse.md"]
    assert fresh["cites_own_only"] and fresh["contains_fact"]
    assert fresh["total_s"] >= fresh["ask_s"] > 0

    table = wsbench.markdown(result)
    for row in ("growth for 1 more workspaces", "switch in the page", "made to first answer"):
        assert row in table
    assert "**NO**" not in table
