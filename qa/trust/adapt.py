"""The answer decision fitted to one corpus (``qa calibrate --synthetic``).

One decision fitted on public datasets cannot serve every corpus: on SQuAD's look-alike
unanswerable questions no threshold of the shipped decision keeps the right answers and
withholds the wrong ones (issue #26). Moving the threshold only slides along the curve; the
curve itself has to move. So this module refits the decision on rows from the user's own
corpus (generated gold, :mod:`qa.evaluation.generate`, and ratings where there are some),
with the shipped fit as the prior:

* the inputs are the shipped probe's (cheap signals and the hidden state) plus
  ``EXTRA_FEATURES`` (the question names something its evidence lacks), computed the same way
  at answer time (:func:`qa.trust.answerability.cheap_features`);
* the weights minimise the rows' log-loss plus ``prior/2 * |w - w_shipped|^2`` (the new
  features' shipped weight is 0), so with few rows the fit stays near the shipped one;
* ``prior`` is chosen per corpus by grouped cross-validation on those rows (twins made from
  one sentence share a fold), the shipped fit itself (an infinite prior) among the choices:
  where refitting does not pay on held-out rows, the shipped weights stay;
* the threshold is chosen by :func:`qa.trust.calibration.choose_threshold` on the
  out-of-fold probabilities (in-sample ones would be perfect and useless), never below the
  shipped one.

A fit is a candidate, not a decision: it is used only if it passes :func:`adoption_check`, which
reads no label (#33). Generated questions are easier than real ones, so a fit on them is wrong
in ways its own rows cannot show: the seed's refit of #26 kept its shipped threshold and still
withheld half of the right answers on real questions, because its weights had moved. The check
therefore asks only whether the candidate would tell users something else than the shipped
decision on the corpus's own answers, and refuses it when it would.

A rated answer is a real question from the user's own distribution, a generated one a proxy:
each rating row weighs ``RATING_WEIGHT`` generated rows in the fit and in the threshold.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from qa.answer import Signals
from qa.trust.answerability import Answerability, Probe, Variant
from qa.trust.calibration import (
    MIN_EACH,
    CurvePoint,
    RiskPoint,
    choose_threshold,
    missing_rows,
    risk_coverage,
)

EXTRA_FEATURES = ("names_missing", "names_missing_passage")
"""Inputs a per-corpus fit adds to the shipped ones (their shipped weight is 0)."""
PRIORS = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5)
"""Prior strengths tried (besides the shipped fit itself, an infinite one)."""
FOLDS = 5
MAX_NEWLY_WITHHELD = 0.10
"""The share of the answers the shipped decision shows that a candidate may withhold."""
RATING_WEIGHT = 3
"""How many generated rows one rated answer weighs."""


@dataclass(frozen=True)
class Row:
    """One asked question as the fit sees it: what the decision read, whether the supported
    answer was right, and ``group`` (rows from one sentence share a fold)."""

    features: dict[str, float]
    signals: Signals | None
    supported: bool
    right: bool
    answerable: bool
    group: str
    weight: int = 1
    shape: str = "short"


@dataclass(frozen=True)
class VariantFit:
    """How one variant was refitted: the prior chosen (None: the shipped weights kept), the
    rows it saw, and the out-of-fold log-loss and AUC of the shipped and the refitted
    decision on them."""

    name: str
    prior: float | None
    rows: int
    shipped_loss: float
    fitted_loss: float
    shipped_auc: float | None
    fitted_auc: float | None


@dataclass(frozen=True)
class CorpusDecision:
    """A decision fitted to one corpus: the decision itself (``answerability``, its variants'
    thresholds set to ``threshold``), how each variant was fitted, and the curves of the rows
    under the shipped decision (at its probabilities) and the fitted one (out of fold)."""

    answerability: Answerability
    threshold: float
    fits: list[VariantFit]
    before: list[CurvePoint]
    after: list[CurvePoint]
    rows: int
    missing: int = 0
    """Decided answers still needed to place a threshold (0: enough; else the base's stays)."""
    check: AdoptionCheck | None = None
    """Whether the candidate may be used (:func:`adoption_check`)."""


@dataclass(frozen=True)
class AdoptionCheck:
    """Whether a fitted decision may replace the shipped one, judged without labels: ``passed``
    and, when not, why (``reasons``). ``newly_withheld`` is the share of the answers the
    shipped decision shows on the corpus's questions that the candidate (out of fold) would
    withhold; ``shown`` how many the shipped decision shows."""

    passed: bool
    reasons: tuple[str, ...]
    newly_withheld: float
    shown: int


def adoption_check(
    shipped_p: Sequence[float],
    fitted_p: Sequence[float],
    shipped_threshold: float,
    fitted_threshold: float,
    missing: int,
) -> AdoptionCheck:
    """May a candidate fitted on the corpus's generated questions replace the shipped decision?
    Only if there were enough decided answers to fit it (``missing`` is 0) and it would
    withhold at most ``MAX_NEWLY_WITHHELD`` of the answers the shipped decision shows
    (``shipped_p`` and ``fitted_p``: each decided answer's P(right) under both, the
    candidate's out of fold). No label is read: right and
    wrong on generated questions is what the fit already overrates."""
    shown = [f for s, f in zip(shipped_p, fitted_p, strict=True) if s >= shipped_threshold]
    newly = sum(f < fitted_threshold for f in shown) / len(shown) if shown else 0.0
    reasons = []
    if missing:
        reasons.append(f"too few decided answers ({missing} more needed)")
    if newly > MAX_NEWLY_WITHHELD:
        reasons.append(
            f"it would withhold {newly:.0%} of the answers the shipped decision shows "
            f"(at most {MAX_NEWLY_WITHHELD:.0%})"
        )
    return AdoptionCheck(not reasons, tuple(reasons), newly, len(shown))


def auc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """The probability that a right answer scores above a wrong one (ties count half)."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def _fold(group: str) -> int:
    return int(hashlib.sha256(group.encode()).hexdigest()[:8], 16) % FOLDS


class _Design:
    """The rows a variant can read, standardised as its probe reads them, with the extra
    features standardised on the rows themselves."""

    def __init__(self, probe: Probe, rows: list[Row]) -> None:
        import numpy as np

        self.probe = probe
        usable = [
            (r, x)
            for r in rows
            if r.supported and r.shape == "short" and r.signals is not None
            if (x := probe.vector(r.features, r.signals)) is not None
        ]
        self.rows = [r for r, _ in usable]
        width = len(probe.mean)
        base = np.array([x for _, x in usable], dtype=float).reshape(len(usable), width)
        base = (base - np.array(probe.mean)) / np.array(probe.scale)
        extra = np.array([[r.features.get(f, 0.0) for f in EXTRA_FEATURES] for r in self.rows])
        extra = extra.reshape(len(self.rows), len(EXTRA_FEATURES))
        self.extra_mean = extra.mean(axis=0) if len(extra) else np.zeros(len(EXTRA_FEATURES))
        self.extra_scale = np.maximum(extra.std(axis=0) if len(extra) else 1.0, 0.05)
        self.X = np.hstack([base, (extra - self.extra_mean) / self.extra_scale])
        self.y = np.array([r.right for r in self.rows], dtype=float)
        self.c = np.array([r.weight for r in self.rows], dtype=float)
        self.w0 = np.concatenate([np.array(probe.weights), np.zeros(len(EXTRA_FEATURES))])
        self.b0 = probe.bias
        self.folds = np.array([_fold(r.group) for r in self.rows])

    def shipped(self) -> Any:
        return self.X @ self.w0 + self.b0

    def fit(self, prior: float, mask: Any) -> tuple[Any, float]:
        """Weights and bias minimising the weighted log-loss of the rows in ``mask`` plus
        ``prior/2 |w - w0|^2 + prior_b/2 (b - b0)^2`` (the bias is held more loosely: a
        corpus may simply have more or fewer right answers)."""
        import numpy as np
        from scipy.optimize import minimize

        X, y, c = self.X[mask], self.y[mask], self.c[mask]
        prior_b = min(prior, 1.0)

        def loss(theta: Any) -> tuple[float, Any]:
            w, b = theta[:-1], theta[-1]
            z = X @ w + b
            p = 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))
            value = float(np.sum(c * (np.logaddexp(0, z) - y * z)))
            value += prior / 2 * float(np.sum((w - self.w0) ** 2))
            value += prior_b / 2 * (b - self.b0) ** 2
            grad_z = c * (p - y)
            grad = np.concatenate([X.T @ grad_z + prior * (w - self.w0), [grad_z.sum()]])
            grad[-1] += prior_b * (b - self.b0)
            return value, grad

        start = np.concatenate([self.w0, [self.b0]])
        theta = minimize(loss, start, jac=True, method="L-BFGS-B").x
        return theta[:-1], float(theta[-1])

    def out_of_fold(self, prior: float | None) -> Any:
        """Each row's logit from a fit without its fold (the shipped logit for None)."""
        import numpy as np

        if prior is None:
            return self.shipped()
        z = np.zeros(len(self.rows))
        for k in range(FOLDS):
            held = self.folds == k
            if held.any() and (~held).any():
                w, b = self.fit(prior, ~held)
                z[held] = self.X[held] @ w + b
        return z

    def log_loss(self, z: Any) -> float:
        import numpy as np

        return float(np.sum(self.c * (np.logaddexp(0, z) - self.y * z)) / max(self.c.sum(), 1))


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(z, 60.0), -60.0)))


def fit_variant(variant: Variant, rows: list[Row]) -> tuple[Variant, VariantFit, dict[int, float]]:
    """Refit one variant on ``rows`` (see the module docstring). Returns the variant, how it
    was fitted, and each usable row's out-of-fold P(right) by its index in ``rows``."""
    import numpy as np

    design = _Design(variant.probe, rows)
    if not design.rows:  # the backend reported nothing this variant reads
        return variant, VariantFit(variant.name, None, 0, 0.0, 0.0, None, None), {}
    labels = [r.right for r in design.rows]
    shipped_z = design.shipped()
    shipped_loss = design.log_loss(shipped_z)
    best: tuple[float, float | None, Any] = (shipped_loss, None, shipped_z)
    enough = min(sum(labels), len(labels) - sum(labels)) >= MIN_EACH
    for prior in PRIORS if enough else ():
        z = design.out_of_fold(prior)
        loss = design.log_loss(z)
        if loss < best[0] - 1e-9:
            best = (loss, prior, z)
    loss, prior, oof = best
    probe = variant.probe
    if prior is not None:
        w, b = design.fit(prior, np.ones(len(design.rows), dtype=bool))
        n = len(EXTRA_FEATURES)
        # Fold the extra features' standardisation into the probe's mean and scale.
        probe = Probe(
            features=(*probe.features, *EXTRA_FEATURES),
            hidden=probe.hidden,
            mean=[*probe.mean[: len(probe.features)], *design.extra_mean.tolist()]
            + probe.mean[len(probe.features) :],
            scale=[*probe.scale[: len(probe.features)], *design.extra_scale.tolist()]
            + probe.scale[len(probe.features) :],
            weights=[*w[: len(probe.features)], *w[-n:]] + list(w[len(probe.features) : -n]),
            bias=b,
        )
    fit = VariantFit(
        variant.name,
        prior,
        len(design.rows),
        shipped_loss,
        loss,
        auc(list(shipped_z), labels),
        auc(list(oof), labels),
    )
    index = {id(r): i for i, r in enumerate(rows)}
    oof_p = {index[id(r)]: _sigmoid(float(z)) for r, z in zip(design.rows, oof, strict=True)}
    return replace(variant, probe=probe), fit, oof_p


def _risk_rows(rows: list[Row], p: dict[int, float]) -> list[RiskPoint]:
    """Rows as the threshold rule counts them (a rating ``RATING_WEIGHT`` times)."""
    out = []
    for i, r in enumerate(rows):
        point = RiskPoint(p.get(i), r.supported, r.right, r.answerable)
        out += [point] * r.weight
    return out


def fit_corpus_decision(
    rows: list[Row], base: Answerability, *, provenance: str = ""
) -> CorpusDecision:
    """Fit every variant of ``base`` to ``rows`` and choose one threshold for them from the
    first (preferred) variant's out-of-fold probabilities (the base's own threshold while
    they are too few: ``CorpusDecision.missing``)."""
    variants, fits, first_p = [], [], None
    for variant in base.variants:
        fitted, fit, oof_p = fit_variant(variant, rows)
        variants.append(fitted)
        fits.append(fit)
        if first_p is None and fit.rows:
            first_p = oof_p
    p_after = first_p or {}
    preferred = next((v for v, f in zip(base.variants, fits, strict=True) if f.rows), None)
    p_before = {}
    if preferred is not None:
        for i, r in enumerate(rows):
            if i in p_after and r.signals is not None:
                x = preferred.probe.vector(r.features, r.signals)
                p_before[i] = preferred.probe.probability(x) if x is not None else None
    after_rows = _risk_rows(rows, p_after)
    missing = missing_rows(after_rows)
    shipped_threshold = base.variants[0].threshold
    # Too few decided rows cannot place a threshold (none would put it at 0: show everything),
    # and generated rows alone never make it less cautious than the shipped one (#33).
    threshold = shipped_threshold if missing else choose_threshold(after_rows)
    threshold = max(threshold, shipped_threshold)
    both = [i for i in p_after if p_before.get(i) is not None]
    judged_by = preferred.threshold if preferred is not None else shipped_threshold
    check = adoption_check(
        [p_before[i] for i in both], [p_after[i] for i in both], judged_by, threshold, missing
    )
    fitted = Answerability(
        tuple(replace(v, threshold=threshold, curve=[]) for v in variants),
        base.verdict,
        provenance,
        base.yesno_coverage,
    )
    return CorpusDecision(
        fitted,
        threshold,
        fits,
        risk_coverage(_risk_rows(rows, p_before)),
        risk_coverage(after_rows),
        len(rows),
        missing,
        check,
    )


def decision_dict(decision: Answerability) -> dict[str, Any]:
    """``decision`` in the format :meth:`Answerability.load` reads."""

    def probe(p: Probe) -> dict[str, Any]:
        return {
            "features": list(p.features),
            "hidden": list(p.hidden),
            "mean": [float(v) for v in p.mean],
            "scale": [float(v) for v in p.scale],
            "weights": [float(v) for v in p.weights],
            "bias": float(p.bias),
        }

    return {
        "provenance": decision.provenance,
        "variants": [
            probe(v.probe) | {"name": v.name, "threshold": v.threshold, "shapes": list(v.shapes)}
            for v in decision.variants
        ],
        "verdict": probe(decision.verdict) if decision.verdict else None,
        "yesno_coverage": decision.yesno_coverage,
    }


def write_decision(decision: Answerability, path: Path) -> Path:
    """Write ``decision`` where :meth:`Answerability.load` reads it (atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(decision_dict(decision)) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
