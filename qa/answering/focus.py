"""What the model reads of a retrieved passage: the sentences that bear on the question, with
their neighbours, and no sentence twice.

On the retrieval path (a corpus larger than the prompt) the passages are new to the model at
every question, so reading them is nearly the whole wait on a CPU: ~40 prompt tokens a second
on 2 AVX2 cores. A 500-character chunk holds three or four sentences, of which the answer needs
one or two (LongLLMLingua and RECOMP keep the sentences that bear on the question for 2-4x fewer
prompt tokens at the same accuracy). The whole chunk stays the evidence: verification, citations
and the sources panel read it, so a quote from a kept sentence is found as before. A small
corpus read whole is never trimmed: its prompt is the same for every question and cached.

Measured against whole chunks (``bench/results/focus_ab.md``, three SQuAD samples and the
three-article set): 13-24 % fewer prompt tokens computed, answers mixed (Normans +2 items,
Harvard -3, the three-article set -1). Off by default (``Settings.passages``): a 500-character
chunk keeps two of its three or four sentences, so too little is saved for what it costs.
"""

from __future__ import annotations

from qa.passages import Hit
from qa.text import split_sentences
from qa.trust.verify import question_coverage


def focus(hits: list[Hit], question: str) -> list[str]:
    """The text the prompt shows of each hit: a focused hit's best sentence by the question's
    words, with the next (at the end, the previous) sentence, less what an earlier hit already
    showed (chunks overlap); other hits whole. A hit left with nothing new keeps its best."""
    seen: set[str] = set()
    shown: list[str] = []
    for hit in hits:
        if not hit.focused:
            shown.append(hit.chunk.text)
            continue
        sentences = split_sentences(hit.chunk.text)
        if not sentences:
            shown.append(hit.chunk.text)
            continue
        best = max(
            range(len(sentences)), key=lambda i: (question_coverage(question, sentences[i]), -i)
        )
        neighbour = best + 1 if best + 1 < len(sentences) else max(best - 1, 0)
        kept = [sentences[i] for i in sorted({best, neighbour})]
        new = [s for s in kept if s not in seen] or [sentences[best]]
        seen.update(kept)
        shown.append(" ".join(new))
    return shown
