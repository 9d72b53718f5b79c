"""Whether an answer may be shown: "where does qa decide to abstain?" is answered here.

:mod:`~qa.trust.verify` checks that a reply is supported by the passage it cites;
:mod:`~qa.trust.answerability` is the learned answer-or-abstain decision and the yes/no
verdict; :mod:`~qa.trust.calibration` moves its threshold to a user's ratings and gold sets;
:mod:`~qa.trust.guard` flags text written for the assistant at index time,
:mod:`~qa.trust.spotlight` keeps it out of the prompt and :mod:`~qa.trust.withhold` withholds a
reply that passes it on.

It guards against confident wrong answers and planted instructions. The way in is the chain
(:mod:`qa.answering.chain`), which calls these in order; ``qa calibrate`` for the threshold.
"""
