"""The gold format: questions and what a correct reply must satisfy, read from JSONL files.

The format is documented in ``evals/README.md``; a malformed record fails loudly here, so a typo
in a gold file can never silently turn into an item that always passes.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

from qa.answer import Shape

SHAPES: tuple[Shape, ...] = get_args(Shape)
"""The answer shapes a gold question may call for (``qa.answer.Shape``)."""


@dataclass
class GoldTurn:
    """One question and what a correct reply must satisfy.

    Exactly one of ``facts``, ``answers``, ``candidates``, ``unanswerable`` and ``yes`` is the
    expectation, except that a yes/no question (``yes`` set) may add ``facts``: reason words its
    answer must contain. ``candidates`` (MultiRC style) are human-written answers marked
    ``correct`` and ``incorrect``: the reply must match a correct one better than any incorrect
    one (:func:`qa.evaluation.scoring.candidate_match`). ``shape`` is the answer shape the question
    calls
    for (None: not stated, scored as ``short``; ``yes`` implies ``yesno``). ``forbidden``
    (optional) lists strings the answer must not contain, such as a canary word an injected
    document tries to make the model say. ``refers_to`` (optional, on a follow-up) names what
    its pronouns stand for: groups of alternatives the rewritten, standalone question must
    contain (scored as ``condense_acc``, apart from the answer).
    """

    question: str
    facts: list[list[str]] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    correct: list[str] = field(default_factory=list)
    incorrect: list[str] = field(default_factory=list)
    unanswerable: bool = False
    forbidden: list[str] = field(default_factory=list)
    shape: Shape | None = None
    yes: bool | None = None
    refers_to: list[list[str]] = field(default_factory=list)

    @property
    def gold_shape(self) -> Shape:
        """The shape scored against: the stated one, else ``short``."""
        return self.shape or "short"


@dataclass
class GoldItem:
    """A gold item: a single question (one turn) or a conversation (``kind == "turns"``)."""

    id: str
    kind: str
    turns: list[GoldTurn]
    sources: list[str] = field(default_factory=list)

    @property
    def answerable(self) -> bool:
        """False for single unanswerable questions."""
        return self.kind != "unanswerable"


_EXPECTATIONS = ("facts", "answers", "candidates", "unanswerable")
_TURN_KEYS = frozenset({"question", "forbidden", "shape", "yes", "refers_to", *_EXPECTATIONS})


def _strings(value: Any) -> bool:
    """Whether ``value`` is a list of non-empty strings (a bare string is not)."""
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)


def _kind(raw: Mapping[str, Any], kinds: tuple[str, ...]) -> str | None:
    """The record's expectation kind, or None unless exactly one is given (``yes`` may come
    with ``facts``, its required reason words)."""
    given = [k for k in kinds if raw.get(k)]
    if "yes" in raw:
        return "yes" if given in ([], ["facts"]) else None
    return given[0] if len(given) == 1 else None


def _shape(raw: Mapping[str, Any], where: str) -> Shape | None:
    """The turn's stated shape, checked against ``yes`` (which implies ``yesno``)."""
    shape, yes = raw.get("shape"), raw.get("yes")
    if "yes" in raw and not isinstance(yes, bool):
        raise ValueError(f"{where}: yes must be true or false")
    if shape is not None and shape not in SHAPES:
        raise ValueError(f"{where}: shape must be one of {SHAPES}, not {shape!r}")
    if yes is not None and shape not in (None, "yesno"):
        raise ValueError(f"{where}: a question with yes is a yesno question, not {shape!r}")
    if shape == "yesno" and yes is None and not raw.get("unanswerable"):
        raise ValueError(f"{where}: an answerable yesno question needs yes: true or false")
    return "yesno" if yes is not None else shape


def _parse_turn(raw: Mapping[str, Any], where: str) -> GoldTurn:
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: a turn must be an object")
    question = raw.get("question")
    if _kind(raw, _EXPECTATIONS) is None or not isinstance(question, str) or not question.strip():
        raise ValueError(
            f"{where}: needs a question and exactly one of {_EXPECTATIONS} or yes (with facts)"
        )
    facts, answers = raw.get("facts", []), raw.get("answers", [])
    forbidden, refers_to = raw.get("forbidden", []), raw.get("refers_to", [])
    groups_ok = all(
        isinstance(groups, list) and all(g and _strings(g) for g in groups)
        for groups in (facts, refers_to)
    )
    if not (groups_ok and _strings(answers) and _strings(forbidden)):
        raise ValueError(
            f"{where}: facts and refers_to must be lists of lists of strings; answers and "
            "forbidden lists of strings"
        )
    candidates = raw.get("candidates") or {"correct": [], "incorrect": []}
    if (
        not isinstance(candidates, Mapping)
        or set(candidates) != {"correct", "incorrect"}
        or not all(isinstance(v, list) and _strings(v) or v == [] for v in candidates.values())
        or (raw.get("candidates") and not candidates["correct"])
    ):
        raise ValueError(f"{where}: candidates must be {{'correct': [...], 'incorrect': [...]}}")
    shape = _shape(raw, where)
    unanswerable = raw.get("unanswerable") is True
    return GoldTurn(
        question,
        facts,
        answers,
        candidates["correct"],
        candidates["incorrect"],
        unanswerable,
        forbidden,
        shape,
        raw.get("yes"),
        refers_to,
    )


def parse_gold_item(raw: Mapping[str, Any], where: str = "gold item") -> GoldItem:
    """Validate one decoded JSONL record and turn it into a ``GoldItem``.

    Raises:
        ValueError: the record does not follow the gold format.
    """
    # "feedback": what a user rated (qa/evaluation/feedback.py); "generated": how an item was
    # made from the corpus (qa/evaluation/generate.py). Metadata, not scored.
    unknown = set(raw) - _TURN_KEYS - {"id", "sources", "turns", "feedback", "generated"}
    kind = _kind(raw, (*_EXPECTATIONS, "turns"))
    sources = raw.get("sources", [])
    bad_sources = not isinstance(sources, list) or not all(isinstance(s, str) for s in sources)
    if unknown or bad_sources or kind is None or not isinstance(raw.get("id"), str):
        raise ValueError(
            f"{where}: needs an id and exactly one of facts/answers/candidates/unanswerable/yes/"
            f"turns, sources as a list of file names (unknown keys: {sorted(unknown)})"
        )
    where = f"{where} ({raw['id']})"
    if kind != "turns":
        return GoldItem(raw["id"], kind, [_parse_turn(raw, where)], sources)
    misplaced = set(raw) & {"question", "shape", "forbidden"}
    if not isinstance(raw["turns"], list) or misplaced:
        raise ValueError(f"{where}: turns must be a list; {sorted(misplaced)} go on each turn")
    for i, turn in enumerate(raw["turns"], 1):
        extra = set(turn) - _TURN_KEYS if isinstance(turn, Mapping) else set()
        if extra:
            raise ValueError(f"{where} turn {i}: unknown keys {sorted(extra)}")
    turns = [_parse_turn(t, f"{where} turn {i}") for i, t in enumerate(raw["turns"], 1)]
    return GoldItem(raw["id"], kind, turns, sources)


def stratified_sample(
    items: list[GoldItem], answerable: int = 20, unanswerable: int = 10, seed: int = 0
) -> list[GoldItem]:
    """A fixed, seeded sample of answerable and unanswerable items, in file order."""
    rng = random.Random(seed)
    pos = [i for i, it in enumerate(items) if it.answerable]
    neg = [i for i, it in enumerate(items) if not it.answerable]
    keep = rng.sample(pos, min(answerable, len(pos))) + rng.sample(neg, min(unanswerable, len(neg)))
    return [items[i] for i in sorted(keep)]


def load_gold(path: Path, sample: int | None = None, seed: int = 0) -> list[GoldItem]:
    """Read a JSONL gold file (blank lines ignored).

    Args:
        path: The gold file.
        sample: If given, keep this many items: two thirds answerable, one third unanswerable
            (``sample=30`` is the 20 + 10 CI sample), chosen by ``stratified_sample``.
        seed: Seed for the sample.

    Raises:
        ValueError: a line is not valid JSON or not a valid item, or ids repeat.
    """
    items: list[GoldItem] = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: invalid JSON ({exc})") from exc
            items.append(parse_gold_item(raw, f"{path}:{n}"))
    dupes = [k for k, c in Counter(it.id for it in items).items() if c > 1]
    if dupes:
        raise ValueError(f"{path}: duplicate ids {dupes}")
    if sample is not None:
        items = stratified_sample(items, sample - sample // 3, sample // 3, seed)
    return items
