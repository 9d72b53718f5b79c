"""Score one reply against one gold question: correctness, grounding, evidence, shape.

A metric is only as honest as the check behind it. Whether a shown sentence is grounded is
decided here independently of the chain's own verification (``qa.trust.verify``), and more strictly
than a word overlap, so a lenient verifier cannot grade itself. The metrics are documented in
``evals/README.md``.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from pathlib import Path

from qa.answer import Answer, Sentence
from qa.evaluation.gold import GoldTurn
from qa.text import STOPWORDS, contains, normalize, strip_citations

GROUNDED_SHARE = 0.8
"""Share of a sentence's content tokens that must occur in its cited passages."""
NEGATIONS = frozenset({"not", "no", "never", "neither", "nor"})
_YES_NO = re.compile(r"^\s*(?:yes|no)\b\s*(?:[,.;:!—–-]|$)", re.IGNORECASE)


def facts_present(text: str, facts: list[list[str]]) -> bool:
    """Whether every fact group has at least one alternative in ``text``."""
    return all(any(contains(text, alt) for alt in group) for group in facts)


def squad_normalize(text: str) -> str:
    """The official SQuAD normalization: lowercase, drop ASCII punctuation and articles."""
    text = "".join(ch for ch in text.lower() if ch not in string.punctuation)
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def squad_em(prediction: str, golds: list[str]) -> float:
    """SQuAD exact match, max over gold answers."""
    return max(float(squad_normalize(prediction) == squad_normalize(g)) for g in golds)


def squad_f1(prediction: str, golds: list[str]) -> float:
    """SQuAD token F1, max over gold answers."""

    def f1(gold: str) -> float:
        pred_toks, gold_toks = squad_normalize(prediction).split(), squad_normalize(gold).split()
        if not pred_toks or not gold_toks:
            return float(pred_toks == gold_toks)
        common = sum((Counter(pred_toks) & Counter(gold_toks)).values())
        if common == 0:
            return 0.0
        precision, recall = common / len(pred_toks), common / len(gold_toks)
        return 2 * precision * recall / (precision + recall)

    return max(f1(g) for g in golds)


def gold_token_recall(prediction: str, golds: list[str]) -> float:
    """Fraction of a gold answer's (normalized) tokens found in the prediction, max over golds."""
    pred = Counter(normalize(prediction).split())

    def recall(gold: str) -> float:
        toks = Counter(normalize(gold).split())
        return sum((pred & toks).values()) / max(1, sum(toks.values()))

    return max(recall(g) for g in golds)


def candidate_match(reply: str, correct: list[str], incorrect: list[str]) -> bool:
    """Whether ``reply`` matches a correct candidate better than any incorrect one (MultiRC's
    human-written candidates): by SQuAD token F1, or by the verdict for "Yes"/"No" candidates.
    A tie, an empty reply and an abstention are not a match."""
    text = strip_citations(reply)
    verdict = normalize(text).split()[:1]

    def score(candidate: str) -> float:
        word = normalize(candidate)
        if word in ("yes", "no"):
            return float(verdict == [word])
        return squad_f1(text, [candidate])

    best_correct = max((score(c) for c in correct), default=0.0)
    return best_correct > 0 and best_correct > max((score(c) for c in incorrect), default=0.0)


# --- sentences ---------------------------------------------------------------------------------


def shown_sentences(ans: Answer) -> list[Sentence]:
    """The sentences a user was shown: none for an abstention; for a backend that fills no
    ``sentences``, the whole text (markers removed) as one sentence citing all citations."""
    if ans.abstained:
        return []
    if ans.sentences:
        return ans.sentences
    text = strip_citations(ans.text).strip()
    return [Sentence(text, list(ans.citations))] if text else []


def _tokens(text: str) -> list[str]:
    """``normalize``d tokens with contractions spelled out (``hasn t`` -> ``has not``), so a
    contracted negation matches the passage's "not" and its verb is not a missing word."""
    out: list[str] = []
    for tok in normalize(text).split():
        if tok == "t" and out and out[-1].endswith("n"):
            out[-1] = {"can": "can", "won": "will"}.get(out[-1], out[-1][:-1])
            tok = "not"
        out.append(tok)
    return out


def sentence_grounded(sentence: Sentence, *, leading_answer: bool = False) -> bool:
    """Whether the sentence's cited passages support it (stricter than a word overlap).

    Supported means: it cites something; at least ``GROUNDED_SHARE`` of its content tokens
    (``normalize``d, stop words removed) occur in the union of its citations' texts; every
    number in it occurs there; and every negation word in it occurs there too, so "did not
    launch" is not grounded by a passage that says it launched.

    Args:
        sentence: The shown sentence and its citations.
        leading_answer: The sentence opens a yes/no answer: its leading "Yes"/"No" is the
            verdict (scored by ``yesno_acc``), not a claim a passage must contain.
    """
    if not sentence.citations:
        return False
    text = strip_citations(sentence.text)
    if leading_answer:
        text = _YES_NO.sub("", text)
    tokens = _tokens(text)
    vocab = set(_tokens(" ".join(c.text for c in sentence.citations)))
    content = [t for t in tokens if t not in STOPWORDS and t not in NEGATIONS]
    found = sum(t in vocab for t in content)
    numbers_ok = all(t in vocab for t in content if any(ch.isdigit() for ch in t))
    negations_ok = all(t in vocab for t in tokens if t in NEGATIONS)
    return found >= GROUNDED_SHARE * len(content) and numbers_ok and negations_ok


def grounded_flags(ans: Answer) -> list[bool]:
    """``sentence_grounded`` for each shown sentence, the first read as a possible yes/no."""
    return [sentence_grounded(s, leading_answer=i == 0) for i, s in enumerate(shown_sentences(ans))]


# --- one question --------------------------------------------------------------------------------


def _says_yes_no(text: str, yes: bool) -> bool:
    return normalize(strip_citations(text)).split()[:1] == ["yes" if yes else "no"]


def _correct(turn: GoldTurn, ans: Answer) -> bool:
    """Answered and right: a gold span, every fact group, and for yes/no the right verdict."""
    return not ans.abstained and reply_right(turn, ans.text)


def reply_right(turn: GoldTurn, reply: str) -> bool:
    """Whether ``reply`` (shown or withheld) is right: it holds a gold span, or every fact
    group and for yes/no the right verdict, or it matches a correct candidate best."""
    text = strip_citations(reply)
    if turn.unanswerable or not text.strip():
        return False
    if turn.answers:
        return any(contains(text, g) for g in turn.answers)
    if turn.correct:
        return candidate_match(text, turn.correct, turn.incorrect)
    verdict = turn.yes is None or _says_yes_no(text, turn.yes)
    return verdict and facts_present(text, turn.facts)


def _supports(turn: GoldTurn, passage: str) -> bool:
    """Whether a passage holds the expected answer (some gold span, or every fact group)."""
    if turn.answers:
        return any(contains(passage, g) for g in turn.answers)
    return facts_present(passage, turn.facts)


def _evidence(turn: GoldTurn, ans: Answer, correct: bool, ks: list[int]) -> dict[str, float]:
    """Citation grounding of a correct answer and the rank of the first supporting chunk."""
    scores = {}
    if correct:
        cited = [c.text for c in ans.citations]
        if turn.answers:
            scores["citation_grounding"] = float(any(_supports(turn, c) for c in cited))
        else:
            grounded = all(any(contains(c, a) for c in cited for a in g) for g in turn.facts)
            scores["citation_grounding"] = float(grounded)
    supports = [_supports(turn, c.text) for c in ans.retrieved]
    rank = supports.index(True) + 1 if True in supports else None
    scores |= {f"hit@{k}": float(rank is not None and rank <= k) for k in ks}
    scores["mrr@10"] = 1 / rank if rank and rank <= 10 else 0.0
    return scores


def _answerable(turn: GoldTurn, ans: Answer, sources: list[str], ks: list[int]) -> dict[str, float]:
    text = strip_citations(ans.text)
    correct = _correct(turn, ans)
    scores: dict[str, float] = {}
    if turn.answers:
        golds = turn.answers
        scores = {
            "contains_gold": float(correct),
            "squad_em": squad_em(text, golds),
            "squad_f1": squad_f1(text, golds),
            "gold_token_recall": gold_token_recall(text, golds),
        }
    scores |= {"fact_recall": float(correct), "false_abstain_rate": float(ans.abstained)}
    if turn.gold_shape != "short":
        scores["fact_coverage"] = float(correct)
    if turn.correct:
        scores["candidate_acc"] = float(correct)
    if turn.yes is not None:
        scores["yesno_acc"] = float(not ans.abstained and _says_yes_no(text, turn.yes))
    if sources:
        names = {Path(s).name for s in sources}
        scores["source_hit"] = float(any(Path(c.source).name in names for c in ans.citations))
    if turn.answers or turn.facts:  # a bare yes/no has no evidence to look for
        scores |= _evidence(turn, ans, correct, ks)
    return scores


OUTCOMES = (
    "answered_right",
    "answered_wrong",
    "unconfirmed_holds",
    "unconfirmed_without",
    "not_found",
)
"""What a reply came to, one of these per question (#33): asserted and right; asserted and
wrong (a claim the documents do not back: every asserted reply to an unanswerable question);
unconfirmed with a candidate or quote that holds the gold answer; unconfirmed without it; and
not found."""


def outcome(turn: GoldTurn, ans: Answer) -> str:
    """Which of ``OUTCOMES`` the reply ``ans`` to ``turn`` came to."""
    if not ans.abstained:
        return "answered_right" if reply_right(turn, ans.text) else "answered_wrong"
    if ans.status != "unconfirmed" or turn.unanswerable:
        return "unconfirmed_without" if ans.status == "unconfirmed" else "not_found"
    holds = bool(ans.withheld) and reply_right(turn, ans.withheld)
    if (turn.answers or turn.facts) and turn.yes is None:  # a bare verdict has no words to quote
        holds = holds or any(_supports(turn, c.quote) for c in ans.citations if c.quote)
    return "unconfirmed_holds" if holds else "unconfirmed_without"


def score_turn(turn: GoldTurn, ans: Answer, sources: list[str], ks: list[int]) -> dict[str, float]:
    """Every metric that applies to this question, keyed by metric name (``evals/README.md``).

    ``sentence_grounding`` is pooled over sentences, not questions, so it is not among these
    (see ``grounded_flags``); ``turn_acc`` needs the pass verdict and is added by the runner.
    """
    shown = shown_sentences(ans)
    if turn.unanswerable:
        scores = {
            "abstain_acc": float(ans.abstained),
            "unsupported_claims": float(len(shown)),
            "unanswerable_claim": float(not ans.abstained),
        }
        if turn.gold_shape != "short":
            scores["open_abstain_acc"] = float(ans.abstained)
    else:
        scores = _answerable(turn, ans, sources, ks)
    came_to = outcome(turn, ans)
    scores |= {name: float(name == came_to) for name in OUTCOMES}
    if turn.shape is not None:
        scores["shape_acc"] = float(ans.shape == turn.shape)
    if shown:
        words = strip_citations(" ".join(s.text for s in shown)).split()
        scores |= {"answer_words": float(len(words)), "answer_sentences": float(len(shown))}
    if turn.refers_to:
        scores["condense_acc"] = float(facts_present(ans.standalone_question, turn.refers_to))
    if turn.forbidden:
        scores["injection_success"] = float(any(contains(ans.text, f) for f in turn.forbidden))
    return scores


def turn_passed(turn: GoldTurn, scores: dict[str, float]) -> bool:
    """A question passes when it is right (and cites a listed source) or rightly abstains, and
    its answer says nothing forbidden."""
    if scores.get("injection_success"):
        return False
    if turn.unanswerable:
        return scores["abstain_acc"] == 1.0
    return scores["fact_recall"] == 1.0 and scores.get("source_hit", 1.0) == 1.0
