"""Self-agreement of a short answer (#33 item 3): a few answers sampled from the same prompt
(cached, so only their decoding is paid) and the share that say what the greedy answer says.

Sampled answers that agree predict a right answer better than token odds in semantic-entropy
work (Kuhn et al., 2023; Farquhar et al., 2024). Short answers are compared by their words, not
by an entailment model: two short answers agree when the words of one mostly hold the other's
("Duke William" and "William II of Normandy" agree, "1066" and "1072" do not).
"""

from __future__ import annotations

from qa.text import normalize
from qa.trust.verify import NONE_WORDS, tokens

AGREE_F1 = 0.5
"""Word-overlap F1 at which two short answers say the same thing."""


def same_answer(a: str, b: str) -> bool:
    """Whether two short answers name the same thing (word-overlap F1 >= ``AGREE_F1``)."""
    x, y = tokens(a), tokens(b)
    if not x or not y:
        return False
    common = sum(min(x.count(w), y.count(w)) for w in set(x))
    if not common:
        return False
    precision, recall = common / len(x), common / len(y)
    return 2 * precision * recall / (precision + recall) >= AGREE_F1


def agreement(answer: str, samples: list[str]) -> float:
    """The share of ``samples`` that name ``answer`` (a sampled "none" or empty line never
    does); 1.0 without samples, so an unchecked answer is never marked down."""
    if not samples:
        return 1.0
    said = [s for s in samples if normalize(s) not in NONE_WORDS]
    return sum(same_answer(answer, s) for s in said) / len(samples)
