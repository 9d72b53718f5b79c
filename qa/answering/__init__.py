"""How a question becomes an answer: condense -> route -> retrieve -> answer.

:mod:`~qa.answering.chain` is the LCEL pipeline; :mod:`~qa.answering.shapes` routes a question
to its answer shape (short, yes/no, list, open, overview); :mod:`~qa.answering.prompts` writes
what the model reads; :mod:`~qa.answering.summaries` keeps the per-document summaries that
overview questions are answered from.

It guards against a small model's habits: rambling, inventing, answering the wrong shape. The
reply is constrained by grammar and prefill, then handed to :mod:`qa.trust` before anyone sees
it. The way in is :func:`~qa.answering.chain.build_chain`, which :class:`qa.Assistant` calls.
"""
