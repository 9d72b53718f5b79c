"""Fit qa's injection detector (``qa/data/injection.json``).

A logistic regression over ``qa.trust.guard.features`` (word 1-2 grams, character 3-5 grams, links,
emails, phones and code words replaced by placeholders, and who is addressed: an AI reader named,
ordered, spoken to) of the sentences in ``fit/injection_data.py``: hand-written ones in
``fit/data/injection/`` and seeded template combinations, all written for qa, and (issue #29)
6,000 sentences of real documentation from the *fit* packages of ``fit/manuals.py`` (READMEs,
man pages, manuals, PDF specs installed on this machine; the held-out packages are never read
here). The probe documents, the benign corpora and the gold questions are never fitted on;
``fit/injection_flags.py`` measures on them and on the held-out packages.

Cross-validation holds out whole groups (a hand-written section, a template family or a
package's documentation at a time), so a fold never sees sentences of the same family; it
picks the regularization (the best recall on the hand-written injections) and the thresholds:

  threshold            the lowest score whose cross-validated false-positive rate is at most
                       ``--max-fp`` (5 %) on the hand-written negatives (hard on purpose) and
                       at most ``--max-doc-fp`` (0.2 %) on the documentation sentences
  neighbour_threshold  the score 80 % of the hand-written negatives stay under (CV): for
                       the rest of a paragraph that holds a flagged sentence

Features seen in a single sentence are dropped (``--min-df``).

    python fit/fit_injection.py              # ~2 min on 2 cores; prints CV numbers
    python fit/fit_injection.py --out /tmp/injection.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fit import manuals  # noqa: E402
from fit.injection_data import DATA, _read, training_set  # noqa: E402
from qa.trust.guard import InjectionModel, detect, features  # noqa: E402

OUT = ROOT / "qa" / "data" / "injection.json"


def _fit(x, y, c: float) -> LogisticRegression:
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=2000, solver="liblinear")
    return model.fit(x, y)


def cross_validate(x, y, groups, c: float, folds: int = 5) -> np.ndarray:
    """Out-of-fold probabilities, whole groups held out."""
    out = np.zeros(len(y))
    for train, test in GroupKFold(n_splits=folds).split(x, y, groups):
        out[test] = _fit(x[train], y[train], c).predict_proba(x[test])[:, 1]
    return out


def pick_threshold(probs: np.ndarray, negative: np.ndarray, max_fp: float) -> float:
    """The lowest threshold whose false-positive rate on the ``negative`` sentences is
    <= max_fp."""
    negatives = np.sort(probs[negative])[::-1]
    if not len(negatives):
        return 0.5
    allowed = int(math.floor(max_fp * len(negatives)))
    return float(min(0.99, max(0.5, negatives[allowed] + 1e-4)))


def report(
    probs: np.ndarray, y: np.ndarray, hard: np.ndarray, doc: np.ndarray, threshold: float
) -> dict:
    flagged = probs >= threshold
    out = {
        "auc": round(float(roc_auc_score(y, probs)), 4),
        "recall": round(float(flagged[y == 1].mean()), 4),
        "recall_handwritten": round(float(flagged[(y == 1) & hard].mean()), 4),
        "fp_rate": round(float(flagged[y == 0].mean()), 4),
        "fp_rate_handwritten": round(float(flagged[(y == 0) & hard].mean()), 4),
        "n_pos": int((y == 1).sum()),
        "n_neg": int((y == 0).sum()),
    }
    if doc.any():
        out["fp_rate_docs"] = round(float(flagged[doc].mean()), 5)
        out["n_docs"] = int(doc.sum())
    return out


def blind(artefact: dict) -> dict:
    """How the fitted model scores ``fit/data/injection/blind.txt`` (never fitted on)."""
    model = InjectionModel(**artefact)
    rows = _read(DATA / "blind.txt", 0)
    y = np.array([int(r.group == "injection") for r in rows])
    probs = np.array([model.score(r.text) for r in rows])
    flagged = np.array([bool(detect(r.text, model)) for r in rows])
    return {
        "auc": round(float(roc_auc_score(y, probs)), 4),
        "recall": round(float(flagged[y == 1].mean()), 4),
        "fp_rate": round(float(flagged[y == 0].mean()), 4),
        "n_pos": int(y.sum()),
        "n_neg": int((1 - y).sum()),
        "missed": [r.text for r, f, pos in zip(rows, flagged, y, strict=True) if pos and not f],
        "false_positives": [
            r.text for r, f, pos in zip(rows, flagged, y, strict=True) if f and not pos
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--max-fp", type=float, default=0.05)
    parser.add_argument("--templated", type=int, default=600)
    parser.add_argument(
        "--manuals",
        type=int,
        default=6000,
        help="Sentences of the fit packages' documentation (fit/manuals.py) as negatives.",
    )
    parser.add_argument(
        "--max-doc-fp",
        type=float,
        default=0.002,
        help="Highest cross-validated share of those documentation sentences flagged.",
    )
    parser.add_argument(
        "--c",
        type=float,
        nargs="+",
        default=[1.0, 3.0, 10.0, 30.0],
        help="Regularization strengths to cross-validate (the best recall on the hand-written "
        "sentences wins).",
    )
    parser.add_argument(
        "--min-df", type=int, default=2, help="Features of fewer sentences are dropped."
    )
    args = parser.parse_args()

    examples = training_set(args.templated, n_manual=args.manuals)
    vec = DictVectorizer()
    x = vec.fit_transform([features(e.text) for e in examples]).tocsc()
    # A feature of one sentence only says which sentence it is: dropped, which keeps the
    # shipped file small now that thousands of documentation sentences bring their own words.
    keep = np.flatnonzero(np.diff(x.indptr) >= args.min_df)
    x = x[:, keep].tocsr()
    x.indices, x.indptr = x.indices.astype(np.int32), x.indptr.astype(np.int32)  # liblinear
    y = np.array([e.label for e in examples])
    groups = np.array([e.group for e in examples])
    doc = np.array([e.group.startswith("doc-") for e in examples])
    hard = np.array([not e.group.startswith(("tpl-", "doc-")) for e in examples])

    results = {}
    for c in args.c:
        probs = cross_validate(x, y, groups, c)
        threshold = max(
            pick_threshold(probs, (y == 0) & hard, args.max_fp),
            pick_threshold(probs, doc, args.max_doc_fp),
        )
        results[c] = (probs, threshold, report(probs, y, hard, doc, threshold))
        print(f"C={c:>5}: threshold {threshold:.3f} {results[c][2]}")
    best = max(results, key=lambda c: (results[c][2]["recall_handwritten"], -c))
    probs, threshold, cv = results[best]
    model = _fit(x, y, best)
    names = vec.get_feature_names_out()[keep]
    weights = {
        str(n): round(float(w), 4)
        for n, w in zip(names, model.coef_[0], strict=True)
        if abs(w) >= 1e-3
    }
    # A weaker sentence next to a flagged one joins it when it scores above most ordinary
    # sentences: the cross-validated score that 80 % of the hand-written negatives stay under.
    neighbour = min(threshold, float(np.quantile(probs[(y == 0) & hard], 0.8)))
    body = json.dumps(weights, sort_keys=True)
    version = hashlib.sha256(f"{body}{model.intercept_[0]:.6f}".encode()).hexdigest()[:12]
    artefact = {
        "weights": weights,
        "bias": round(float(model.intercept_[0]), 6),
        "threshold": round(threshold, 4),
        "neighbour_threshold": round(neighbour, 4),
        "version": version,
        "provenance": (
            f"fit/fit_injection.py on {datetime.now(UTC).date()}: logistic regression "
            f"(C={best}) over {len(examples)} sentences: written for qa (fit/data/injection, "
            f"fit/injection_data.py) and {int(doc.sum())} of the fit packages' documentation "
            f"(fit/manuals.py, seed {manuals.SEED}); group-held-out CV: {json.dumps(cv)}"
        ),
    }
    held_out = blind(artefact)
    artefact["provenance"] += f"; blind set: auc {held_out['auc']}, recall {held_out['recall']}, "
    artefact["provenance"] += f"fp_rate {held_out['fp_rate']}"
    args.out.write_text(json.dumps(artefact, sort_keys=True, indent=0) + "\n")
    print(f"C={best}, {len(weights)} weights, version {version} -> {args.out}")
    print("blind:", json.dumps(held_out, indent=1))


if __name__ == "__main__":
    main()
