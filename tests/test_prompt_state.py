"""The saved prompt prefix with the real model: a new process (here: a new model instance)
answers its first question without recomputing the fixed prefix, and never from a state made
for another corpus or prompt, nor from a broken or half-written file."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pytest

import qa.answering.prompts
import qa.llm.kvstate
from qa import Answer, Assistant, Settings

pytestmark = pytest.mark.slow

FIRST = "When did the bakery open?"
SECOND = "How often does the ferry cross the river?"


def fresh(settings: Settings, embeddings) -> Assistant:
    """A new Assistant with its own, newly loaded LLM (as after a restart)."""
    return Assistant(settings, embeddings=embeddings)


def state_files(settings: Settings) -> list[Path]:
    return sorted((settings.index_dir / "kv-states").glob("*"))


@pytest.fixture(scope="module")
def cold(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Assistant, Answer]:
    """An index of two short documents, and its first answer computed from scratch."""
    root = tmp_path_factory.mktemp("state")
    (root / "docs").mkdir()
    (root / "docs" / "bakery.txt").write_text(
        "The Elm Street Bakery opened in 1998. Its founder, Marta Kovacs, bakes every morning. "
        "The shop sells about 400 loaves a day.\n"
    )
    (root / "docs" / "ferry.md").write_text(
        "# Ferry\n\nThe ferry crosses the river every 20 min.\n"
    )
    settings = Settings(seeds_dir=root / "docs", index_dir=root / "index", support_threshold=0)
    first = Assistant(settings)
    first.index()
    first.warm_up()  # as `qa chat` does at start
    answer = first.ask(FIRST)
    first.llm.wait_for_saves()  # type: ignore[attr-defined]
    return settings, first, answer


def copy_of(settings: Settings, tmp_path: Path) -> Settings:
    """The same documents, index and saved states in a folder of the test's own."""
    shutil.copytree(settings.seeds_dir, tmp_path / "docs")
    shutil.copytree(settings.index_dir, tmp_path / "index")
    return settings.model_copy(
        update={"seeds_dir": tmp_path / "docs", "index_dir": tmp_path / "index"}
    )


def test_warm_up_computes_the_prefix_once_and_saves_it(cold) -> None:
    settings, _, answer = cold
    # The whole warm-up prompt, and the part it shares with the second warm-up question.
    assert len(state_files(settings)) == 2
    assert answer.timings.prompt_eval_tokens < 32 < answer.timings.prompt_tokens


def test_a_restarted_assistant_answers_without_recomputing_the_prefix(cold) -> None:
    settings, first, _ = cold
    other = fresh(settings, first.embeddings).ask(SECOND)
    assert other.timings.prompt_eval_tokens < 32  # only the question's own tokens
    # The loaded state gives the answer a computed one gives. Its odds move by rounding only:
    # the question's tokens are read in a batch of their own, and llama.cpp's CPU kernels sum
    # in another order for other batch sizes (docs/benchmarks.md counts what that changes).
    reference = first.ask(SECOND)
    assert other.text == reference.text
    assert other.signals.first_token_probs == pytest.approx(
        reference.signals.first_token_probs, abs=0.03
    )


def test_one_shot_processes_save_the_prefix_their_prompts_share(cold, tmp_path: Path) -> None:
    settings = copy_of(cold[0], tmp_path)
    shutil.rmtree(settings.index_dir / "kv-states")
    for question in (FIRST, SECOND):  # `qa ask` twice: no warm-up
        one_shot = fresh(settings, cold[1].embeddings)
        assert one_shot.ask(question).timings.prompt_eval_tokens > 300
        one_shot.llm.wait_for_saves()  # type: ignore[attr-defined]
    third = fresh(settings, cold[1].embeddings).ask("Who founded the bakery?")
    assert third.timings.prompt_eval_tokens < 32


def test_a_changed_corpus_never_uses_the_old_state(cold, tmp_path: Path) -> None:
    settings = copy_of(cold[0], tmp_path)
    (settings.seeds_dir / "bakery.txt").write_text(
        "The Elm Street Bakery opened in 2004. Its founder bakes every morning.\n"
    )
    changed = fresh(settings, cold[1].embeddings)
    changed.index()
    answer = changed.ask(FIRST)
    assert answer.timings.prompt_eval_tokens == answer.timings.prompt_tokens
    assert "2004" in answer.text


def test_a_changed_prompt_never_uses_the_old_state(
    cold, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = copy_of(cold[0], tmp_path)
    monkeypatch.setattr(qa.answering.prompts, "SYSTEM", "Be brief. " + qa.answering.prompts.SYSTEM)
    answer = fresh(settings, cold[1].embeddings).ask(FIRST)
    assert answer.timings.prompt_eval_tokens == answer.timings.prompt_tokens


def test_a_corrupted_state_is_rebuilt(cold, tmp_path: Path) -> None:
    settings = copy_of(cold[0], tmp_path)
    for path in state_files(settings):
        blob = bytearray(path.read_bytes())
        blob[len(blob) // 2] ^= 0xFF
        path.write_bytes(bytes(blob))
    rebuilt = fresh(settings, cold[1].embeddings)
    answer = rebuilt.ask(FIRST)
    rebuilt.llm.wait_for_saves()  # type: ignore[attr-defined]
    assert answer.timings.prompt_eval_tokens == answer.timings.prompt_tokens
    assert answer.text == cold[2].text
    assert fresh(settings, cold[1].embeddings).ask(FIRST).timings.prompt_eval_tokens < 32


def test_a_full_disk_while_saving_leaves_no_state_and_answers_anyway(
    cold, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(f, data: bytes) -> None:
        f.write(data[: len(data) // 3])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(qa.llm.kvstate, "_write_all", full_disk)
    settings = cold[0].model_copy(update={"index_dir": tmp_path / "index"})
    assistant = fresh(settings, cold[1].embeddings)
    assistant.index()
    answer = assistant.ask(FIRST)
    assistant.llm.wait_for_saves()  # type: ignore[attr-defined]
    assert answer.text == cold[2].text
    assert state_files(settings) == []  # no state, and no half-written temporary file
