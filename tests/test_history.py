"""Server-side chat history: per user, bounded, and still there for a new process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from qa import Assistant, Settings
from qa.history import MAX_TURNS, ChatHistory


def _turns(*questions: str) -> list[dict]:
    return [{"question": q, "text": f"answer to {q}", "ok": True} for q in questions]


def test_save_list_load_delete(tmp_path: Path) -> None:
    h = ChatHistory(tmp_path / "h.sqlite3")
    first = h.save("ann", None, _turns("When did the bakery open?"))
    second = h.save("ann", None, _turns("How many loaves?"))
    assert [c.id for c in h.list("ann")] == [second, first]  # newest first
    assert h.save("ann", first, _turns("When did the bakery open?", "And who?")) == first
    chats = h.list("ann")
    assert [c.id for c in chats] == [first, second]
    assert chats[0].title == "When did the bakery open?" and chats[0].turns == 2
    assert h.load("ann", first) == _turns("When did the bakery open?", "And who?")
    assert h.delete("ann", first) and h.load("ann", first) is None
    assert not h.delete("ann", first)


def test_one_user_never_sees_anothers_chats(tmp_path: Path) -> None:
    h = ChatHistory(tmp_path / "h.sqlite3")
    ann = h.save("ann", None, _turns("Ann's secret question?"))
    assert h.list("bob") == [] and h.list("") == []
    assert h.load("bob", ann) is None
    assert not h.delete("bob", ann) and h.load("ann", ann)
    # Saving under another user's chat id makes a new chat; Ann's is untouched.
    bob = h.save("bob", ann, _turns("Bob's question?"))
    assert bob != ann and h.load("ann", ann) == _turns("Ann's secret question?")


def test_history_is_bounded(tmp_path: Path) -> None:
    h = ChatHistory(tmp_path / "h.sqlite3", max_chats=3)
    ids = [h.save("ann", None, _turns(f"Q{i}?")) for i in range(5)]
    h.save("bob", None, _turns("Bob?"))
    assert [c.id for c in h.list("ann")] == ids[:1:-1]  # the 3 newest
    assert len(h.list("bob")) == 1  # bounds are per user
    long = h.save("ann", None, _turns(*[f"q{i}" for i in range(MAX_TURNS + 5)]))
    kept = h.load("ann", long)
    assert kept is not None and len(kept) == MAX_TURNS and kept[-1]["question"] == "q104"


def test_history_survives_a_new_process(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    code = (
        "import sys; from pathlib import Path; from qa.history import ChatHistory; "
        "ChatHistory(Path(sys.argv[1])).save('ann', None, [{'question': 'Kept?'}])"
    )
    root = Path(__file__).resolve().parents[1]  # this checkout's qa, whatever the cwd
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, cwd=root)
    assert [c.title for c in ChatHistory(path).list("ann")] == ["Kept?"]


def test_assistant_keeps_history_next_to_the_index(settings: Settings, fake_embeddings) -> None:
    a = Assistant(settings, embeddings=fake_embeddings)
    assert a.history.path == settings.index_dir / "history.sqlite3"
    elsewhere = settings.model_copy(update={"history_path": settings.index_dir / "x.db"})
    assert Assistant(elsewhere, embeddings=fake_embeddings).history.path.name == "x.db"
    served = settings.model_copy(update={"chroma_host": "localhost"})
    assert Assistant(served).history.path.parent == settings.cache_dir
