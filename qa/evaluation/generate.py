"""Gold questions generated from the indexed corpus (``qa gold generate``).

Almost nobody rates twenty answers before trusting a tool, so the answer decision could only
be fitted to public datasets, whose unanswerable questions look nothing like a user's. This
module writes a gold set from the user's own documents, in today's gold format (one item per
line, each with its source passage in ``generated``), so it can be run, compared, gated and
reviewed like any other set, and so ``qa calibrate --synthetic`` can fit the decision to it.

Three kinds, in the spirit of SQuAD 2.0 and round-trip consistency (Alberti et al., 2019):

* **answerable**: a span is picked by rules (:mod:`qa.spans`: a name, a year, a
  number), the model writes a question for it that neither names it nor copies the sentence,
  and the item is kept only if asking it through the real chain gives the span back (shown or
  withheld by the decision: the decision is what these items will judge).
* **unanswerable, made to look answerable**, the way SQuAD 2.0's crowd made them (Rajpurkar et
  al., 2018; kinds and shares after SQuAD2-CR, Lee et al., 2020): a generated question edited
  so that it still reads like one its passage answers, ``how`` recorded per item:

  - *same-passage swap*: one of its names (or years) replaced by another of the same kind from
    the same passage (its chunk and the chunks either side), not from its own sentence ("When
    did Rollo sign the treaty?" -> "When did Charles sign the treaty?");
  - *number*: a number or year replaced by another of the passage's, else by a near value;
  - *negation*: "not" put in at the auxiliary verb ("When didn't ...?"), or taken out;
  - *antonym*: one word of a closed list of common pairs swapped (first/last, before/after,
    largest/smallest, increase/decrease, ...).

  Each is kept only if no indexed sentence holds the new part (the name, number or word) with
  half the question's other content words (by stem), so no passage says it in the question's
  context; a negation only if no sentence on the question's words is itself negated
  (:mod:`qa.evaluation.lookalikes`). The kinds are aimed at SQuAD2-CR's shares
  (``HOW_SHARES``): the one furthest below its share is tried first on each question.
* **yes/no**: the model turns a sentence into a yes/no question that keeps a name or number;
  half of them keep it (yes), half change it by a same-passage swap, a number or an antonym
  (no: the passage says it of another), so "no" is as common as "yes".
* **evidence removed** (FaithEval, Ming et al., 2024): an answerable item's question asked over
  its passage with every sentence holding the answer taken out. Written apart from the set
  (:func:`write_removed`): ``<set>-removed/<set>-removed.jsonl`` and one document per item in
  its ``docs/``, asked with ``qa eval --docs <that>/docs --per-document``, since over the whole
  index the answer is still there.

Everything is seeded: the same corpus, seed and model give the same file.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qa.errors import IndexNotFoundError
from qa.evaluation.lookalikes import (
    Change,
    Corpus,
    antonym,
    negate,
    swap,
    without_evidence,
)
from qa.passages import Chunk
from qa.spans import Span, spans
from qa.text import contains, normalize, split_sentences, strip_citations
from qa.trust.verify import ASKING, content_words, stem

QUESTION_PROMPT = """Write one question that the sentence answers with the given answer. Use your \
own words, and do not put the answer in the question.

Sentence: The bakery on Elm Street, founded by Marta Kovacs, opened its doors in 1998.
Answer: 1998
Question: In what year did the Elm Street bakery open?

Sentence: {sentence}
Answer: {answer}
Question:"""

YESNO_PROMPT = """Rewrite the statement as a yes/no question that keeps its meaning and keeps \
the given words.

Statement: The bakery on Elm Street, founded by Marta Kovacs, opened its doors in 1998.
Keep: Marta Kovacs
Yes/no question: Was the Elm Street bakery founded by Marta Kovacs?

Statement: {sentence}
Keep: {keep}
Yes/no question:"""

_AUXILIARY = frozenset(
    "is was were are did does do has had have can could will would should".split()
)
YESNO_SHARE = 0.2
UNANSWERABLE_SHARE = 0.35
"""How a count is split: yes/no questions (half of them "no"), look-alike unanswerables, the
rest answerable."""
HOW_SHARES = {"same-passage swap": 40, "antonym": 20, "negation": 15, "number": 10}
"""How look-alike unanswerables are made, in SQuAD2-CR's proportions (entity swap 36-44 %,
antonym ~20 %, negation ~15 %, number swap ~10 %); a "no" is made by any but negation."""
OVERSHOOT = 1.5
"""A kind already at this multiple of its share is not tried again (so one that fits every
question, negation, cannot crowd out the rest)."""
REMOVED_SHARE = 0.15
"""Evidence-removal items made, as a share of the count (on top of it; from the answerable)."""
COPIED_RUN = 7
"""A question sharing this many consecutive words with its sentence copies it."""
ATTEMPTS = 3
"""Candidate sentences tried per item wanted, at most."""


@dataclass
class GeneratedGold:
    """What :func:`generate_gold` wrote: the gold records, how many candidates it tried, why
    the others were dropped, whether it was cancelled before the count was reached, and the
    chain's answers of the round trips by item id (a calibration in the same run reuses them
    rather than asking again). ``removed`` are the evidence-removal items, a set of their own
    (:func:`write_removed`), each with its document's text under ``generated.document``."""

    items: list[dict[str, Any]]
    attempts: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    cancelled: bool = False
    answers: dict[str, Any] = field(default_factory=dict, repr=False)
    removed: list[dict[str, Any]] = field(default_factory=list)

    def kinds(self) -> Counter[str]:
        """Items by kind (``answerable``, ``unanswerable``, ``yes``, ``no``)."""
        return Counter(it["generated"]["kind"] for it in self.items)

    def hows(self) -> Counter[str]:
        """Look-alikes (``unanswerable`` and ``no``) by how they were made."""
        return Counter(it["generated"]["how"] for it in self.items if "how" in it["generated"])


@dataclass(frozen=True)
class _Candidate:
    chunk: Chunk
    sentence: str
    span: Span


def candidates(chunks: list[Chunk], rng: random.Random) -> Iterator[_Candidate]:
    """Sentences (8-50 words) with a span that occurs once in them, one chunk after another
    in a seeded order, each chunk's in a seeded order too (so the set spreads over the
    corpus)."""
    per_chunk = []
    for chunk in chunks:
        found = []
        for sentence in split_sentences(chunk.text):
            if not 8 <= len(sentence.split()) <= 50 or sentence.rstrip()[-1:] not in ".!\"”'":
                continue
            for s in spans(sentence):
                if len(re.findall(re.escape(s.text), sentence)) == 1:
                    found.append(_Candidate(chunk, sentence, s))
        rng.shuffle(found)
        per_chunk.append(found)
    rng.shuffle(per_chunk)
    used: set[str] = set()
    for round_ in range(max((len(f) for f in per_chunk), default=0)):
        for found in per_chunk:
            if round_ < len(found) and found[round_].sentence not in used:
                used.add(found[round_].sentence)
                yield found[round_]


def question_line(text: str) -> str:
    """The first line the model wrote, trimmed."""
    line = str(text).strip().split("\n", 1)[0].strip()
    return re.sub(r"^[\w/ ]{0,20}question:\s*", "", line, flags=re.IGNORECASE).strip()


def copies(question: str, sentence: str, run: int = COPIED_RUN) -> bool:
    """Whether ``question`` shares ``run`` consecutive words with ``sentence``."""
    q, s = normalize(question).split(), f" {normalize(sentence)} "
    return any(f" {' '.join(q[i : i + run])} " in s for i in range(len(q) - run + 1))


_EXAMPLE_WORDS = content_words("bakery Elm Street Marta Kovacs doors")
"""The worked examples' own words: a question that has them and its sentence not borrowed
from the example ("... on Wednesdays at the bakery?")."""


_POINTS_AT_PROMPT = re.compile(
    r"\b(?:the|this|that|given|above)\s+(?:given\s+)?(?:sentence|statement|passage|text)\b",
    re.IGNORECASE,
)
"""A question about "the sentence" or "the given text" points at the prompt, not at the
documents: a user asking it would get no one answer."""


def usable_question(question: str, sentence: str, answer: str) -> str | None:
    """Why a written question cannot be used, or None: it must end with "?", have 4-30 words,
    not point at the prompt ("mentioned in the sentence"), keep off the answer, not copy its
    sentence, share a content word with it, and take none of the worked example's words."""
    if not question.endswith("?") or not 4 <= len(question.split()) <= 30:
        return "not a question"
    if _POINTS_AT_PROMPT.search(question):
        return "points at the prompt"
    if (content_words(question) & _EXAMPLE_WORDS) - content_words(sentence):
        return "borrows from the example"
    if contains(question, answer):
        return "names its answer"
    if copies(question, sentence):
        return "copies the sentence"
    if not (content_words(question) - ASKING) & content_words(sentence):
        return "off the sentence"
    return None


def generate_gold(
    assistant: Any,
    *,
    count: int = 40,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> GeneratedGold:
    """Write about ``count`` gold items from what ``assistant`` has indexed (see the module's
    docstring for the kinds and their checks). ``progress(kept, count)`` follows each kept
    item; ``cancel()`` returning True stops after the candidate in progress."""
    if not assistant.store.count():
        raise IndexNotFoundError("The index is empty; run `qa index` first")
    return _Generator(assistant, count, seed, progress).run(cancel)


class _Generator:
    """One generation run: the corpus, what is wanted of each kind, what was kept."""

    def __init__(
        self,
        assistant: Any,
        count: int,
        seed: int,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        self.assistant = assistant
        self.count, self.seed, self.progress = count, seed, progress
        self.rng = random.Random(seed)
        self.corpus = Corpus(assistant.store.all_chunks(), assistant.embeddings.embed_documents)
        self.write = assistant.llm.bind(max_tokens=48, stop=["\n"])
        yesno = 2 * round(count * YESNO_SHARE / 2)
        self.want = Counter(
            yes=yesno // 2, no=yesno // 2, unanswerable=round(count * UNANSWERABLE_SHARE)
        )
        self.want["answerable"] = count - sum(self.want.values())
        self.made: Counter[str] = Counter()
        self.made_how: Counter[tuple[str, str]] = Counter()
        self.sources: dict[str, _Candidate] = {}  # answerable item id -> where it was made
        self.out = GeneratedGold([])

    def needs(self, *kinds: str) -> bool:
        return any(self.made[k] < self.want[k] for k in kinds)

    def run(self, cancel: Callable[[], bool] | None) -> GeneratedGold:
        out = self.out
        for cand in candidates(self.corpus.chunks, self.rng):
            if not self.needs(*self.want) or out.attempts >= ATTEMPTS * self.count:
                break
            if cancel and cancel():
                out.cancelled = True
                break
            out.attempts += 1
            # A yes/no item from every third candidate while both kinds are wanted.
            short = self.needs("answerable", "unanswerable")
            if self.needs("yes", "no") and (not short or out.attempts % 3 == 0):
                self.yesno(cand)
            else:
                self.short(cand)
        if not out.cancelled:
            self.remove_evidence()
        return out

    def keep(self, kind: str, question: str, cand: _Candidate, expect: dict, **meta: Any) -> None:
        self.made[kind] += 1
        items = self.out.items
        record = {"id": f"gen-{self.seed}-{len(items) + 1:03d}", "question": question}
        record |= expect | {"sources": [cand.chunk.source]}
        record["generated"] = {
            "kind": kind,
            "passage": cand.sentence,
            "chunk_id": cand.chunk.id,
            "span": cand.span.text,
            "span_kind": cand.span.kind,
            **meta,
        }
        items.append(record)
        if self.progress:
            self.progress(len(items), self.count)

    def ask_model(self, prompt: str) -> str:
        return question_line(self.write.invoke(prompt).content)

    def look_alike(
        self, kind: str, question: str, cand: _Candidate, answer: str = ""
    ) -> tuple[str, Change] | None:
        """``question`` changed into a look-alike for an item of ``kind`` (``unanswerable`` or
        ``no``), trying first the way furthest below its share (``HOW_SHARES``; a "no" is never
        a negation: "Wasn't it ...?" still asks for a yes), and the way it was made."""
        shares = {h: w for h, w in HOW_SHARES.items() if kind != "no" or h != "negation"}
        total = sum(shares.values())
        wanted = {h: max(self.want[kind] * w / total, 0.5) for h, w in shares.items()}
        ways = [h for h in shares if self.made_how[kind, h] < OVERSHOOT * wanted[h]]
        self.rng.shuffle(ways)
        ways.sort(key=lambda h: self.made_how[kind, h] / wanted[h])
        passage = self.corpus.passage(cand.chunk)
        for how in ways:
            if how == "negation":
                change = negate(question, self.corpus)
            elif how == "antonym":
                change = antonym(question, self.corpus, self.rng)
            else:
                kinds = ("name",) if how == "same-passage swap" else ("year", "number")
                change = swap(
                    question, cand.sentence, self.corpus, self.rng, answer,
                    passage=passage, kinds=kinds,
                )  # fmt: skip
            if change:
                self.made_how[kind, how] += 1
                return how, change
        return None

    def short(self, cand: _Candidate) -> None:
        """An answerable item (round trip) and its look-alike twin, as needed."""
        question = self.ask_model(
            QUESTION_PROMPT.format(sentence=cand.sentence, answer=cand.span.text)
        )
        if why := usable_question(question, cand.sentence, cand.span.text):
            self.out.rejected[why] += 1
            return
        if self.needs("unanswerable"):
            made = self.look_alike("unanswerable", question, cand, cand.span.text)
            if made:
                how, (new_q, old, new) = made
                meta = {"how": how, "swapped": [old, new], "original": question}
                self.keep("unanswerable", new_q, cand, {"unanswerable": True}, **meta)
            else:
                self.out.rejected["no look-alike the corpus leaves unanswered"] += 1
        if self.needs("answerable"):
            answer = self.assistant.ask(question)
            shown = answer.withheld if answer.abstained else answer.text
            reply = strip_citations(shown).strip()
            if contains(reply, cand.span.text):
                expect = {"answers": [cand.span.text]}
                self.keep("answerable", question, cand, expect, round_trip=reply)
                self.out.answers[self.out.items[-1]["id"]] = answer
                self.sources[self.out.items[-1]["id"]] = cand
            else:
                self.out.rejected["round trip missed the span"] += 1

    def yesno(self, cand: _Candidate) -> None:
        """A yes/no question on a sentence: as written (yes) or changed to a look-alike (no)."""
        question = self.ask_model(YESNO_PROMPT.format(sentence=cand.sentence, keep=cand.span.text))
        asked = {stem(w) for w in content_words(question) - ASKING}
        words = {stem(w) for w in content_words(cand.sentence)}
        if (
            not question.endswith("?")
            or normalize(question).split()[:1] not in [[a] for a in _AUXILIARY]
            or not contains(question, cand.span.text)
            or len(asked & words) < 0.6 * max(len(asked), 1)
        ):
            self.out.rejected["not a yes/no question on its sentence"] += 1
            return
        if self.needs("no") and (self.made["no"] <= self.made["yes"] or not self.needs("yes")):
            made = self.look_alike("no", question, cand)
            if made:
                how, (new_q, old, new) = made
                meta = {"how": how, "swapped": [old, new], "original": question}
                self.keep("no", new_q, cand, {"yes": False}, **meta)
            else:
                self.out.rejected["no look-alike the corpus leaves unanswered"] += 1
        elif self.needs("yes"):
            self.keep("yes", question, cand, {"yes": True})

    def remove_evidence(self) -> None:
        """Evidence-removal items (``REMOVED_SHARE`` of the count) from answerable ones, in a
        seeded order: the same question over its passage without the answer's sentences."""
        kept = [it for it in self.out.items if it["id"] in self.sources]
        self.rng.shuffle(kept)
        for item in kept:
            if len(self.out.removed) >= round(self.count * REMOVED_SHARE):
                break
            cand = self.sources[item["id"]]
            passage = self.corpus.passage(cand.chunk)
            text = without_evidence(passage, cand.span.text, item["question"])
            if text is None:
                self.out.rejected["evidence removal left no look-alike passage"] += 1
                continue
            name = f"{item['id']}-removed"
            record = {"id": name, "question": item["question"], "unanswerable": True}
            record["sources"] = [f"{name}.txt"]
            record["generated"] = item["generated"] | {
                "kind": "removed",
                "how": "evidence removed",
                "from": item["id"],
                "source": cand.chunk.source,
                "document": text,
            }
            self.out.removed.append(record)


def write_gold(items: list[dict[str, Any]], path: Path) -> Path:
    """Write generated items as a gold file (one JSON object per line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(it, ensure_ascii=False) + "\n" for it in items)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def removed_path(gold: Path) -> Path:
    """Where the evidence-removal set of the set at ``gold`` is kept:
    ``<set>-removed/<set>-removed.jsonl``, its documents in ``docs/`` beside it (a folder of
    its own, so the set is never asked over the assistant's documents, where the answers are)."""
    name = f"{gold.stem}-removed"
    return gold.parent / name / f"{name}.jsonl"


def write_removed(removed: list[dict[str, Any]], gold: Path) -> Path:
    """Write evidence-removal items (:attr:`GeneratedGold.removed`) as the gold set beside the
    set at ``gold`` (:func:`removed_path`), each item's document in its ``docs/`` (an earlier
    run's documents are replaced). Run it with ``qa eval --gold <it> --docs <its docs>
    --per-document``: each item is asked of an index of its own document only."""
    path = removed_path(gold)
    docs = path.parent / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    for old in docs.glob("*.txt"):
        old.unlink()
    items = []
    for record in removed:
        meta = dict(record["generated"])
        (docs / record["sources"][0]).write_text(meta.pop("document") + "\n", encoding="utf-8")
        items.append(record | {"generated": meta})
    return write_gold(items, path)
