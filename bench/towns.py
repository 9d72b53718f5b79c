"""The made-up documents of ``bench/workspaces.py``: one town per workspace, three short
documents of invented facts each (so an answer citing another town's file is plainly drawn from
the wrong workspace), and the scripted chat model of its ``--fake-llm`` smoke run."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.language_models import FakeListChatModel
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk

TOWNS = (
    "Quillon Marbeck Tessaly Orvande Brimholt Kestrow Velloran Dunmere Saffrey Halvik "
    "Pellingham Corriven Asterby Wexhallow Morrand Lindquay"
).split()
_FIRST = "Odile Anselm Brigid Casimir Delphine Evander Fenna Gideon Hester Ivo Jorun Leontine"
_LAST = "Vantongeren Ashgrove Kovacs Merriweather Tolland Brask Quenby Oduya Halloran Fitch"
_BREADS = "sunrye moorloaf harbour twist chestnut crown saltcrust fennel round"
_BOATS = "Grey Heron|Morning Star|Little Otter|Saint Brendan|Kittiwake|Blue Lantern|Marigold"


@dataclass(frozen=True)
class Question:
    """A question about one town, the fact its answer holds and the file it is in."""

    text: str
    fact: str
    source: str


@dataclass(frozen=True)
class Town:
    """One workspace's documents (file name → text) and the questions they answer."""

    name: str
    documents: dict[str, str]
    questions: list[Question]

    @property
    def workspace(self) -> str:
        return self.name.lower()

    def owns(self, source: str) -> bool:
        """Whether ``source`` (a citation's file) is one of this town's documents."""
        return Path(source).name.startswith(f"{self.workspace}-")

    def write(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in self.documents.items():
            (folder / name).write_text(text, encoding="utf-8")


def town(name: str, seed: int) -> Town:
    """Three short documents of invented facts about ``name`` (the same for the same seed)."""
    rng = random.Random(f"{name}-{seed}")

    def person() -> str:
        return f"{rng.choice(_FIRST.split())} {rng.choice(_LAST.split())}"

    w = name.lower()
    river, cape = rng.choice(("Alder", "Esk", "Morrow", "Tane", "Wendle")), rng.choice(TOWNS)
    lit, keeper = rng.randint(1820, 1910), person()
    height, seen = rng.randint(18, 46), rng.randint(12, 30)
    baker, opened, loaves = person(), rng.randint(1950, 2015), rng.randrange(150, 900, 10)
    street = rng.choice(("Mill", "Chapel", "Quay", "Rope", "Tanner"))
    bread, boat = rng.choice(_BREADS.split()), rng.choice(_BOATS.split("|"))
    built, minutes = rng.randint(1955, 2012), rng.choice((15, 20, 30, 40))
    cars, price = rng.randint(8, 40), rng.randint(2, 9)
    documents = {
        f"{w}-lighthouse.md": (
            f"# The {name} lighthouse\n\n"
            f"The {name} lighthouse stands at the mouth of the {river} river. It was first lit "
            f"in {lit} by its first keeper, {keeper}.\n\n"
            f"The tower is {height} metres tall, and its lamp can be seen {seen} kilometres out "
            "at sea on a clear night.\n\n"
            f"Since {lit + rng.randint(60, 100)} the lighthouse has been kept by the {cape} "
            "Lamp Society, which opens it to visitors on Sundays.\n"
        ),
        f"{w}-bakery.txt": (
            f"The {street} Street bakery of {name}\n\n"
            f"The bakery on {street} Street in {name} opened in {opened}. Its founder, {baker}, "
            "still bakes every morning.\n\n"
            f"The shop sells about {loaves} loaves a day. Its best-known bread is the {bread}, "
            "a dark loaf baked with caraway.\n\n"
            f"On the first Monday of each month the bakery gives its leftover bread to the "
            f"{name} food bank.\n"
        ),
        f"{w}-ferry.md": (
            f"# The {name} ferry\n\n"
            f"The {name} ferry crosses the {river} river every {minutes} minutes from six in "
            "the morning until ten at night.\n\n"
            f"The current boat, the {boat}, was built in {built} and carries up to {cars} "
            "cars.\n\n"
            f"A single ticket costs {price} crowns; children under twelve travel free.\n"
        ),
    }
    questions = [
        Question(f"When was the {name} lighthouse first lit?", str(lit), f"{w}-lighthouse.md"),
        Question(
            f"How many loaves a day does the bakery in {name} sell?",
            str(loaves),
            f"{w}-bakery.txt",
        ),
        Question(f"What is the name of the {name} ferry's current boat?", boat, f"{w}-ferry.md"),
    ]
    return Town(name, documents, questions)


# The scripted model of --fake-llm.

_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[a-z0-9]+")


class QuotingLLM(FakeListChatModel):
    """A scripted chat model for smoke runs: replies with the passage sentence that best
    matches the question (the words they share, rarer words weighing more), as answer and
    quote, so the answer cites the passage it came from; "none" when no word is shared."""

    responses: list[str] = [""]

    def _call(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> str:
        last = str(messages[-1].content)
        passages, _, question = last.rpartition("\nQuestion: ")
        sentences = [
            sentence.strip()
            for line in passages.splitlines()
            for sentence in _SENTENCE.split(re.sub(r"^\[\d+\]\s*", "", line))
        ]
        words = [set(_WORD.findall(s.lower())) for s in sentences]
        asked = set(_WORD.findall(question.lower()))

        def weight(word: str) -> float:
            return math.log(1 + len(sentences) / sum(word in w for w in words))

        scores = [sum(weight(word) for word in asked & w) for w in words]
        if not scores or max(scores) == 0:
            return "Answer: none\nQuote: none"
        best = sentences[scores.index(max(scores))]
        return f"Answer: {best.rstrip('.')}\nQuote: {best}"

    def _stream(
        self, messages: list[BaseMessage], *args: Any, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        yield ChatGenerationChunk(message=AIMessageChunk(content=self._call(messages)))
