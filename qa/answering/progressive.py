"""Progressive reading: a short answer is read from the best passage first, and from every
retrieved passage only when the decision does not stand behind that answer.

Why: on a small CPU the wait before the first token is the prompt read, about 85 tokens a
second for the default model on 2 cores, and four retrieved passages with the question are
400-500 new tokens. Hybrid search puts the answer in the first passage most of the time
(0.77-0.83 on the SQuAD sets), so most short questions are settled by a prompt a quarter as
long. What it guards against: an answer the best passage alone gets wrong. Only an answer the
decision asserts (status ``answered``) is taken from the narrow read; an unconfirmed
candidate, a "none" or no supported answer reads wide, and the wide answer is the reply.

The prompt keeps its layout (instructions, passages, question), because the learned decision
reads hidden states fitted on that layout. The narrow prompt therefore shares its prefix
(instructions and the best passage) with the wide one: the local engine keeps prompts read as
pinned prefixes (:mod:`qa.llm.engine`), so a wide read after a narrow one pays only for the
other passages and the question again. A served backend reuses nothing across requests: there
a narrow answer saves the other passages' tokens, and a widened one pays the narrow prompt
twice. Which read answered is ``Timings.read``.
"""

from __future__ import annotations

from qa.answer import Shape
from qa.passages import Hit


def narrow_hits(hits: list[Hit], shape: Shape, narrow: int) -> list[Hit]:
    """The passages to read first, or none to read all of ``hits`` at once: the best
    ``narrow`` for a short answer over ranked passages (retrieval mode). A whole corpus read
    in document order (``Settings.full_context_chars``) is one cached prompt already."""
    if shape != "short" or not narrow or len(hits) <= narrow:
        return []
    return hits[:narrow] if all(h.ranked for h in hits) else []
