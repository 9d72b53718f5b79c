from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import qa.assistant
from qa.cli import app


@pytest.fixture(autouse=True)
def _fake_models(monkeypatch: pytest.MonkeyPatch, fake_embeddings) -> None:
    monkeypatch.setattr(qa.assistant, "make_embeddings", lambda settings: fake_embeddings)


def test_index_takes_files_and_folders_and_lists_skipped_types_once(
    docs: Path, tmp_path: Path
) -> None:
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "notes.md").write_text("# Notes\n\nThe night ferry runs hourly.\n")
    (extra / "photo.png").write_bytes(b"\x89PNG")
    (extra / "clip.mp4").write_bytes(b"\0\0")
    args = ["index", "--docs", str(docs), "--index", str(tmp_path / "index")]
    result = CliRunner().invoke(app, [*args, str(extra), str(docs / "bakery.txt")])
    assert result.exit_code == 0, result.output
    assert result.output.count("Skipped") == 1
    assert "photo.png" in result.output and "clip.mp4" in result.output
    assert "Indexed 2 file(s)" in result.output


def test_index_of_a_missing_path_fails_with_one_line(docs: Path, tmp_path: Path) -> None:
    args = ["index", "--docs", str(docs), "--index", str(tmp_path / "index"), "nope.pdf"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "No such file or folder: nope.pdf" in result.output
