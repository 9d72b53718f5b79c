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
* **unanswerable, made to look answerable**: a generated question with one of its names or
  numbers swapped for another of the same kind from the corpus (the most similar by embedding,
  so "Ming" replaces "Yuan", not "Paris"). Kept only if the answer is nowhere in the corpus:
  no chunk holds the swapped-in name together with half or more of the question's other
  content words (by stem), so no passage speaks of it in the question's context.
* **yes/no**: the model turns a sentence into a yes/no question that keeps a name or number;
  half of them keep it (yes), half swap it as above (no: the corpus says it of another), so
  "no" is as common as "yes".

Everything is seeded: the same corpus, seed and model give the same file.
"""

from __future__ import annotations

import json
import math
import random
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qa.errors import IndexNotFoundError
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
COPIED_RUN = 7
"""A question sharing this many consecutive words with its sentence copies it."""
CONTEXT_SHARE = 0.5
"""A chunk holding a swapped-in name and this share of the question's other content words
might answer the swapped question: the item is dropped."""
ATTEMPTS = 3
"""Candidate sentences tried per item wanted, at most."""


@dataclass
class GeneratedGold:
    """What :func:`generate_gold` wrote: the gold records, how many candidates it tried, why
    the others were dropped, whether it was cancelled before the count was reached, and the
    chain's answers of the round trips by item id (a calibration in the same run reuses them
    rather than asking again)."""

    items: list[dict[str, Any]]
    attempts: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    cancelled: bool = False
    answers: dict[str, Any] = field(default_factory=dict, repr=False)

    def kinds(self) -> Counter[str]:
        """Items by kind (``answerable``, ``unanswerable``, ``yes``, ``no``)."""
        return Counter(it["generated"]["kind"] for it in self.items)


@dataclass(frozen=True)
class _Candidate:
    chunk: Chunk
    sentence: str
    span: Span


class _Corpus:
    """The chunks, their stemmed words, and every name and number in them by kind."""

    def __init__(self, chunks: list[Chunk], embed: Callable[[list[str]], list[list[float]]]):
        self.chunks = [c for c in chunks if not c.flags]
        self.words = [{stem(w) for w in content_words(c.text)} for c in self.chunks]
        self.inventory: dict[str, dict[str, str]] = {"name": {}, "year": {}, "number": {}}
        for c in self.chunks:
            for s in spans(c.text):
                self.inventory[s.kind].setdefault(normalize(s.text), s.text)
        self._embed = embed
        self._vectors: dict[str, list[float]] = {}

    def partners(self, span: Span, avoid: str) -> list[str]:
        """Other names (most similar first) or numbers (nearest first) of the corpus, of the
        span's kind, sharing no word stem with it and absent from ``avoid``; names of as many
        words as the span's come first ("Holland" for "Saarland", not "Protestant Europe")."""
        own = normalize(span.text).split()
        pool = [
            text
            for key, text in self.inventory[span.kind].items()
            if not _related(own, key.split()) and not contains(avoid, text)
        ]
        if span.kind != "name":
            value = _value(span.text)
            return sorted(pool, key=lambda t: abs(math.log1p(_value(t)) - math.log1p(value)))
        missing = [t for t in [span.text, *pool] if t not in self._vectors]
        if missing:
            self._vectors |= dict(zip(missing, self._embed(missing), strict=True))
        a, size = self._vectors[span.text], len(span.text.split())
        return sorted(pool, key=lambda t: (len(t.split()) != size, -_cosine(a, self._vectors[t])))

    def speaks_of(self, name: str, question: str) -> bool:
        """Whether some chunk holds ``name`` with ``CONTEXT_SHARE`` of the question's other
        content words (by stem): the swapped question might be answered there."""
        other = {stem(w) for w in content_words(question) - ASKING - content_words(name)}
        for chunk, words in zip(self.chunks, self.words, strict=True):
            if contains(chunk.text, name) and len(other & words) >= CONTEXT_SHARE * len(other):
                return True
        return False


def _related(a: list[str], b: list[str]) -> bool:
    """Whether two names share a word: by stem, accents aside, or by a common start of 4+
    letters that is all but the shorter word's last letter or 5 letters ("Parliament" and
    "Parliamentary", "China" and "Chinese", "Tran" and "Trần" are one name for a swap)."""

    def same(x: str, y: str) -> bool:
        x, y = _fold(x), _fold(y)
        if stem(x) == stem(y):
            return True
        if x.isdigit() or y.isdigit():
            return False
        need = max(4, min(5, min(len(x), len(y)) - 1))
        return len(x) >= need and len(y) >= need and x[:need] == y[:need]

    return any(same(x, y) for x in a for y in b)


def _fold(word: str) -> str:
    """``word`` without its accents ("trần" -> "tran")."""
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _value(text: str) -> float:
    try:
        return abs(float(normalize(text).replace(" ", "").rstrip("s") or 0))
    except ValueError:
        return 0.0


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a) * sum(y * y for y in b)) or 1.0)


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


def swap(question: str, sentence: str, corpus: _Corpus, rng: random.Random, answer: str = ""):
    """The question with one of its names or numbers (one its sentence holds, not the answer)
    replaced by a similar one from the corpus that no chunk speaks of in the question's
    context; None if there is none. Returns (question, old, new)."""
    keys = [s for s in spans(question) if contains(sentence, s.text) and s.text != answer]
    rng.shuffle(keys)
    for key in keys:
        for new in corpus.partners(key, f"{sentence} {question}")[:5]:
            swapped = question[: key.start] + new + question[key.end :]
            if not corpus.speaks_of(new, swapped):
                return swapped, key.text, new
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
        self.corpus = _Corpus(assistant.store.all_chunks(), assistant.embeddings.embed_documents)
        self.write = assistant.llm.bind(max_tokens=48, stop=["\n"])
        yesno = 2 * round(count * YESNO_SHARE / 2)
        self.want = Counter(
            yes=yesno // 2, no=yesno // 2, unanswerable=round(count * UNANSWERABLE_SHARE)
        )
        self.want["answerable"] = count - sum(self.want.values())
        self.made: Counter[str] = Counter()
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

    def short(self, cand: _Candidate) -> None:
        """An answerable item (round trip) and its look-alike twin (a swap), as needed."""
        question = self.ask_model(
            QUESTION_PROMPT.format(sentence=cand.sentence, answer=cand.span.text)
        )
        if why := usable_question(question, cand.sentence, cand.span.text):
            self.out.rejected[why] += 1
            return
        if self.needs("unanswerable"):
            swapped = swap(question, cand.sentence, self.corpus, self.rng, cand.span.text)
            if swapped:
                new_q, old, new = swapped
                meta = {"swapped": [old, new], "original": question}
                self.keep("unanswerable", new_q, cand, {"unanswerable": True}, **meta)
            else:
                self.out.rejected["no swap absent from the corpus"] += 1
        if self.needs("answerable"):
            answer = self.assistant.ask(question)
            shown = answer.withheld if answer.abstained else answer.text
            reply = strip_citations(shown).strip()
            if contains(reply, cand.span.text):
                expect = {"answers": [cand.span.text]}
                self.keep("answerable", question, cand, expect, round_trip=reply)
                self.out.answers[self.out.items[-1]["id"]] = answer
            else:
                self.out.rejected["round trip missed the span"] += 1

    def yesno(self, cand: _Candidate) -> None:
        """A yes/no question on a sentence: as written (yes) or with its span swapped (no)."""
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
            key = next((s for s in spans(question) if s.text == cand.span.text), None)
            avoid = f"{cand.sentence} {question}"
            for new in self.corpus.partners(key, avoid)[:5] if key else []:
                swapped = question[: key.start] + new + question[key.end :]
                if not self.corpus.speaks_of(new, swapped):
                    meta = {"swapped": [cand.span.text, new], "original": question}
                    self.keep("no", swapped, cand, {"yes": False}, **meta)
                    return
            self.out.rejected["no swap absent from the corpus"] += 1
        elif self.needs("yes"):
            self.keep("yes", question, cand, {"yes": True})


def write_gold(items: list[dict[str, Any]], path: Path) -> Path:
    """Write generated items as a gold file (one JSON object per line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(it, ensure_ascii=False) + "\n" for it in items)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
