"""Saved prompt states on disk: found only for prompts that start with their exact tokens and
only by their identity (model + build), written atomically, broken files never loaded."""

from __future__ import annotations

import errno
import threading
from pathlib import Path

import pytest

import qa.llm.kvstate
from qa.llm.kvstate import KVState, StateStore

IDENTITY = "ab" * 32
OTHER = "cd" * 32


def state(tokens: range | list[int], fill: int = 7) -> KVState:
    return KVState(tuple(tokens), bytes([fill]) * 1000)


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_a_saved_state_is_found_for_prompts_starting_with_its_tokens(tmp_path: Path) -> None:
    store = StateStore(tmp_path, IDENTITY)
    assert store.save(state(range(300)))
    found = store.find([*range(300), 9, 9])
    assert found == state(range(300))
    assert store.find([*range(299), 5, 6]) is None  # differs inside the prefix
    assert store.find(range(299)) is None  # shorter than the prefix


def test_the_longest_saved_prefix_wins(tmp_path: Path) -> None:
    store = StateStore(tmp_path, IDENTITY)
    store.save(state(range(300), fill=1))
    store.save(state(range(600), fill=2))
    assert store.find([*range(600), 1]).data[0] == 2  # type: ignore[union-attr]
    assert store.find([*range(400), 1]).data[0] == 1  # type: ignore[union-attr]


def test_another_identity_never_sees_the_state_and_leaves_it_alone(tmp_path: Path) -> None:
    StateStore(tmp_path, IDENTITY).save(state(range(300)))
    assert StateStore(tmp_path, OTHER).find(range(400)) is None
    assert StateStore(tmp_path, IDENTITY).find(range(400)) is not None


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda b: b[: len(b) // 2], id="truncated"),
        pytest.param(lambda b: b[:-1], id="last-byte-missing"),
        pytest.param(lambda b: b[:2000] + bytes([b[2000] ^ 1]) + b[2001:], id="bit-flip"),
        pytest.param(lambda b: b"XXXXXXXX" + b[8:], id="bad-magic"),
        pytest.param(lambda b: b"", id="empty"),
    ],
)
def test_a_broken_file_is_deleted_and_never_loaded(tmp_path: Path, damage) -> None:
    store = StateStore(tmp_path, IDENTITY)
    store.save(state(range(300)))
    (path,) = tmp_path.glob("kv-*.bin")
    path.write_bytes(damage(path.read_bytes()))
    assert StateStore(tmp_path, IDENTITY).find(range(400)) is None
    assert not path.exists()


def test_a_full_disk_leaves_the_old_state_and_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = StateStore(tmp_path, IDENTITY)
    store.save(state(range(300), fill=1))
    before = files(tmp_path)

    def full_disk(f, data: bytes) -> None:
        f.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(qa.llm.kvstate, "_write_all", full_disk)
    assert not store.save(state(range(600), fill=2))
    assert files(tmp_path) == before
    assert store.find([*range(600), 1]).data[0] == 1  # type: ignore[union-attr]


def test_a_full_disk_on_the_first_save_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(f, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(qa.llm.kvstate, "_write_all", full_disk)
    assert not StateStore(tmp_path / "kv", IDENTITY).save(state(range(300)))
    assert files(tmp_path / "kv") == []


def test_only_the_most_recently_used_states_are_kept(tmp_path: Path) -> None:
    store = StateStore(tmp_path, IDENTITY, keep=2)
    for n in (300, 400, 500):
        store.save(state(range(1000, 1000 + n)))
    assert len(files(tmp_path)) == 2
    assert store.find(range(1000, 1300)) is None  # the oldest went


def test_workers_saving_at_once_leave_one_whole_file(tmp_path: Path) -> None:
    big = KVState(tuple(range(300)), bytes(range(256)) * 20_000)
    stores = [StateStore(tmp_path, IDENTITY) for _ in range(4)]
    threads = [threading.Thread(target=s.save, args=(big,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(files(tmp_path)) == 1
    assert StateStore(tmp_path, IDENTITY).find(range(400)) == big


def test_covers_means_a_saved_prefix_within_a_few_hundred_tokens(tmp_path: Path) -> None:
    store = StateStore(tmp_path, IDENTITY)
    store.save(state(range(300)))
    assert store.covers(range(300))
    assert store.covers(range(500))
    assert not store.covers(range(600))  # 300 more tokens are worth a file of their own
    assert not store.covers([1, *range(1, 300)])
