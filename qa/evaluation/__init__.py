"""How good the answers are, measured: gold sets, scoring, runs, reports and ratings.

:mod:`~qa.evaluation.gold` is the gold format; :mod:`~qa.evaluation.scoring` scores one reply
against one gold question; :mod:`~qa.evaluation.evaluate` asks a gold set and totals the scores
(:func:`~qa.evaluation.evaluate.run_eval`); :mod:`~qa.evaluation.runs` runs a named set into a
report as ``qa eval`` and the Evaluate tab both do; :mod:`~qa.evaluation.reports` writes the
reports and holds the regression gate; :mod:`~qa.evaluation.feedback` turns 👍/👎 ratings into
gold items.

It guards against regressions nobody saw: every change is asked the same questions and compared
with the accepted baseline. It sits beside the pipeline, not inside it: nothing here changes an
answer.
"""
