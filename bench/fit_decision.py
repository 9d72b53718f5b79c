"""Fit the learned answer decision and the yes/no verdict across genres
(``qa/data/decision.json``), from what ``bench/collect_signals.py`` recorded.

    python bench/fit_decision.py fit        # LOSO tables, the final fit, bench/results/*.json
    python bench/fit_decision.py curve REPORT.json ...   # held-out risk/coverage from qa eval

Two models, both logistic regressions on standardized inputs (hidden states first reduced to
their principal components, then folded back into one weight per input):

* **the yes/no verdict**: P(yes) from the answering pass's first-token odds of "Yes" against
  "No" and the hidden state there. Fitted on BoolQ's fit titles (cross-validated by title),
  reported on its held-out titles beside always-yes and the raw odds.
* **the answer decision**: P(the shown answer is right) from cheap signals (first-token odds,
  log-probabilities, how the answer and its passage relate to the question) and, on the local
  backend, the hidden state. Its pool spans three sources (SQuAD: Wikipedia; BoolQ: search
  queries over Wikipedia; MultiRC: news, fiction, science, law, ...). Validated leave one
  source out: fitted on two, measured on the third. A second variant reads only what served
  backends report (token log-probabilities): no hidden state.

Features are kept when they carry across sources: each is dropped in turn and kept only if the
mean held-out-source AUC falls without it. Labels use the gold answers; gold never enters a
feature. Nothing is fitted on the held-out parts (``bench/results/decision-splits.json``), on
``evals/`` or on the seed article.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qa.answerability import answer_type_fit  # noqa: E402
from qa.scoring import candidate_match  # noqa: E402
from qa.text import contains, split_sentences, strip_citations  # noqa: E402
from qa.verify import (  # noqa: E402
    ASKING,
    content_words,
    none_probability,
    question_coverage,
    yes_no_odds,
)

CACHE = ROOT / "bench" / ".cache" / "decision"
OUT = ROOT / "qa" / "data" / "decision.json"
RESULTS = ROOT / "bench" / "results"
SEED = 0
SOURCES = ("squad", "boolq", "multirc")
RECALL_COST = 0.05
HIDDEN = "l21@first"


# --- rows -------------------------------------------------------------------------------------


@dataclass
class Row:
    """One collected question: its record, hidden states and derived inputs."""

    source: str
    part: str
    record: dict
    states: dict[str, np.ndarray]
    features: dict[str, float] = field(default_factory=dict)
    right: bool = False

    @property
    def shape(self) -> str:
        return self.record["shape"]

    @property
    def group(self) -> str:
        return self.record["group"]

    @property
    def answerable(self) -> bool:
        return not self.record["gold"].get("unanswerable")


def load_rows(cache: Path = CACHE) -> list[Row]:
    """Every collected question (``<source>.<part>.<mode>.jsonl`` and its states)."""
    rows = []
    for path in sorted(cache.glob("*.jsonl")):
        source, part, _mode = path.stem.split(".")
        states_dir = path.with_suffix(".states")
        for line in path.read_text().splitlines():
            record = json.loads(line)
            npz = np.load(states_dir / f"{_safe(record['id'])}.npz")
            states = {k.replace("_", "@", 1): npz[k].astype(np.float32) for k in npz.files}
            rows.append(Row(source, part, record, states))
    return rows


def _safe(name: str) -> str:
    import hashlib

    return hashlib.sha1(name.encode()).hexdigest()[:16]


def shown_answer(record: dict) -> str:
    """The reply as shown, markers removed (empty for an abstention)."""
    return "" if record["abstained"] else strip_citations(record["text"]).strip()


def is_right(source: str, record: dict, verdict: bool | None = None) -> bool:
    """Whether the shown reply is right; for yes/no, ``verdict`` replaces the collected one."""
    gold, text = record["gold"], shown_answer(record)
    if not text or gold.get("unanswerable"):
        return False
    if verdict is not None:
        text = ("Yes" if verdict else "No") + text[text.find(".") :]
    if "yes" in gold:
        return text.lower().startswith("yes" if gold["yes"] else "no")
    if "answers" in gold:
        return any(contains(text, a) for a in gold["answers"])
    return candidate_match(text, gold["correct"], gold["incorrect"])


# --- features ---------------------------------------------------------------------------------


def answer_features(record: dict) -> dict[str, float]:
    """The decision's cheap inputs, from what the answering pass and the passages give."""
    probs = record["first_token_probs"]
    question = record["question"]
    hits = record["hits"]  # [n, score, text] in prompt order
    text = shown_answer(record)
    yesno = record["shape"] == "yesno"
    answer = text.split(".", 1)[0] if yesno else text
    cited = record["cited"][0] - 1 if record["cited"] else 0
    passage = hits[cited][2] if hits else ""
    asked = content_words(question) - ASKING
    covered = [len(asked & content_words(h[2])) / max(len(asked), 1) for h in hits]
    lps = record["token_logprobs"] or [0.0]
    odds = yes_no_odds(probs)
    sentence = _sentence_with(answer, passage) if not yesno else text.split(". ", 1)[-1]
    answer_words = content_words(answer)
    return {
        "p_none": none_probability(probs) or 0.0,
        "first_top_prob": max(probs.values(), default=0.0),
        "first_entropy": -sum(p * math.log(p) for p in probs.values() if p > 0),
        "logprob_mean": sum(lps) / len(lps),
        "logprob_min": min(lps),
        "answer_words": math.log1p(len(answer.split())),
        "answer_in_question": len(answer_words & content_words(question))
        / max(len(answer_words), 1),
        "question_covered": covered[cited] if covered else 0.0,
        "question_covered_best": max(covered, default=0.0),
        "evidence_rank": sum(h[1] > hits[cited][1] for h in hits) / max(len(hits), 1)
        if hits
        else 0.0,
        "type_fit": answer_type_fit(question, answer),
        "passages": math.log1p(len(hits)),
        "answer_verbatim": float(bool(answer) and contains(passage, answer)),
        "sentence_covered": question_coverage(question, sentence),
        "yesno": float(yesno),
        "yesno_margin": abs(odds.get("p_yes", 0.0) - odds.get("p_no", 0.0)) if yesno else 0.0,
        "open": float(record["shape"] in ("open", "list", "overview")),
    }


def _sentence_with(answer: str, passage: str) -> str:
    sentences = split_sentences(passage)
    words = content_words(answer)
    return max(
        sentences, key=lambda s: (contains(s, answer), len(words & content_words(s))), default=""
    )


CHEAP = (
    "p_none",
    "first_top_prob",
    "first_entropy",
    "logprob_mean",
    "logprob_min",
    "answer_words",
    "answer_in_question",
    "question_covered",
    "question_covered_best",
    "evidence_rank",
    "type_fit",
    "passages",
    "answer_verbatim",
    "sentence_covered",
    "yesno",
    "yesno_margin",
    "open",
)


# --- fitting ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Linear:
    """P = sigmoid(bias + ((x - mean) / scale) @ weights): the form qa evaluates."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        return 1 / (
            1 + np.exp(-np.clip(self.bias + ((x - self.mean) / self.scale) @ self.weights, -60, 60))
        )


def fit_linear(x: np.ndarray, y: np.ndarray, c: float, n_cheap: int, k: int | None) -> Linear:
    """Logistic regression; with ``k`` the columns after ``n_cheap`` (a hidden state) are first
    reduced to ``k`` principal components, folded back into one weight per input."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(0), x.std(0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    if k is None or x.shape[1] == n_cheap:
        lr = LogisticRegression(C=c, max_iter=5000).fit(z, y)
        return Linear(mean, scale, lr.coef_[0], float(lr.intercept_[0]))
    pca = PCA(k, random_state=SEED).fit(z[:, n_cheap:])
    comps = pca.transform(z[:, n_cheap:])
    comp_scale = comps.std(0)
    comp_scale[comp_scale == 0] = 1.0
    lr = LogisticRegression(C=c, max_iter=5000).fit(
        np.hstack([z[:, :n_cheap], comps / comp_scale]), y
    )
    w_cheap, w_comp = lr.coef_[0][:n_cheap], lr.coef_[0][n_cheap:] / comp_scale
    weights = np.concatenate([w_cheap, pca.components_.T @ w_comp])
    bias = float(lr.intercept_[0] - (pca.mean_ @ pca.components_.T) @ w_comp)
    return Linear(mean, scale, weights, bias)


def matrix(rows: list[Row], names: tuple[str, ...], hidden: str | None) -> np.ndarray:
    cols = [[r.features[n] for n in names] for r in rows]
    x = np.array(cols, dtype=float).reshape(len(rows), len(names))
    if hidden:
        x = np.hstack([x, np.stack([r.states[hidden] for r in rows])])
    return x


def auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def group_cv(
    rows: list[Row], fit: Callable[[list[Row]], Callable[[list[Row]], np.ndarray]], folds: int = 5
) -> np.ndarray:
    """Out-of-fold predictions, folds by document (title, passage, article)."""
    groups = sorted({r.group for r in rows})
    rng = np.random.default_rng(SEED)
    fold_of = dict(zip(groups, rng.permutation(len(groups)) % folds, strict=True))
    p = np.zeros(len(rows))
    for f in range(folds):
        test = [i for i, r in enumerate(rows) if fold_of[r.group] == f]
        train = [r for r in rows if fold_of[r.group] != f]
        if test and train:
            p[test] = fit(train)([rows[i] for i in test])
    return p


# --- the yes/no verdict -----------------------------------------------------------------------

VERDICT_CHEAP = ("yes_logit",)


def verdict_features(row: Row) -> dict[str, float]:
    odds = yes_no_odds(row.record["first_token_probs"])
    yes, no = odds.get("p_yes", 0.0) + 1e-6, odds.get("p_no", 0.0) + 1e-6
    return {"yes_logit": math.log(yes / no)}


def fit_verdict(train: list[Row], k: int | None, c: float, hidden: str | None = HIDDEN):
    x = matrix(train, VERDICT_CHEAP, hidden)
    y = np.array([r.record["gold"]["yes"] for r in train], dtype=int)
    model = fit_linear(x, y, c, len(VERDICT_CHEAP), k)
    return model, lambda rows: model.predict(matrix(rows, VERDICT_CHEAP, hidden))


def verdict_study(rows: list[Row]) -> tuple[dict, Any]:
    """Choose the verdict's inputs and regularization by title-grouped CV on BoolQ's fit part;
    report accuracy on its held-out titles."""
    for r in rows:
        r.features |= verdict_features(r)
    fit_rows = [r for r in rows if r.source == "boolq" and r.part == "fit"]
    held = [r for r in rows if r.source == "boolq" and r.part == "held_out"]
    y_fit = np.array([r.record["gold"]["yes"] for r in fit_rows])
    grid = [(None, c, None) for c in (1.0,)] + [
        (k, c, h)
        for h in ("l14@first", "l21@first")
        for k in (16, 32, 64)
        for c in (0.01, 0.1, 1.0)
    ]
    cv = []
    for k, c, h in grid:
        p = group_cv(fit_rows, lambda tr, k=k, c=c, h=h: fit_verdict(tr, k, c, h)[1])
        cv.append(
            {
                "hidden": h,
                "pca": k,
                "C": c,
                "cv_acc": float(((p >= 0.5) == y_fit).mean()),
                "cv_auc": auc(y_fit, p),
            }
        )
        print(
            f"verdict {h} k={k} C={c}: cv acc {cv[-1]['cv_acc']:.3f} auc {cv[-1]['cv_auc']:.3f}",
            file=sys.stderr,
        )
    best = max(cv, key=lambda m: m["cv_acc"])
    model, predict = fit_verdict(fit_rows, best["pca"], best["C"], best["hidden"])
    report = {"fit_questions": len(fit_rows), "cv": cv, "chosen": best}
    if held:
        y = np.array([r.record["gold"]["yes"] for r in held])
        raw = np.array([r.features["yes_logit"] > 0 for r in held])
        report["held_out"] = {
            "questions": len(held),
            "titles": len({r.group for r in held}),
            "always_yes": float(y.mean()),
            "raw_odds": float((raw == y).mean()),
            "learned": float(((predict(held) >= 0.5) == y).mean()),
        }
    return report, (model, best)


# --- the answer decision ----------------------------------------------------------------------


def decision_rows(rows: list[Row], verdict_predict) -> list[Row]:
    """Rows with a supported answer (the decision only sees those), features and labels set;
    a yes/no answer's label uses the learned verdict (out of fold for BoolQ's fit part)."""
    out = []
    for r in rows:
        if r.record["abstained"]:
            continue
        r.features |= answer_features(r.record)
        verdict = None
        if r.shape == "yesno" and r.source != "squad":
            verdict = bool(verdict_predict(r) >= 0.5)
        r.right = is_right(r.source, r.record, verdict)
        out.append(r)
    return out


GRID_CHEAP = [(None, c) for c in (0.01, 0.1, 1.0)]
GRID_HIDDEN = [(k, c) for k in (8, 32) for c in (0.01, 0.1)]


def fit_decision(train: list[Row], names: tuple[str, ...], hidden: str | None, k, c):
    x = matrix(train, names, hidden)
    y = np.array([r.right for r in train], dtype=int)
    model = fit_linear(x, y, c, len(names), k)
    return model, lambda rows: model.predict(matrix(rows, names, hidden))


def loso(rows: list[Row], names: tuple[str, ...], hidden: str | None, k, c) -> dict[str, float]:
    """AUC on each source when fitted on the other two."""
    out = {}
    for held in SOURCES:
        train = [r for r in rows if r.source != held]
        test = [r for r in rows if r.source == held]
        if not train or not test:
            continue
        _, predict = fit_decision(train, names, hidden, k, c)
        out[held] = auc(np.array([r.right for r in test]), predict(test))
    return out


def operating_point(rows: list[Row], p: np.ndarray, threshold: float) -> dict[str, float]:
    """Answered right / abstention / false abstention if answers below ``threshold`` were
    withdrawn; over every collected question (abstentions included) of ``rows``' sources."""
    return {}


def choose_threshold(all_rows: list[Row], p_by_id: dict[str, float]) -> tuple[float, list[dict]]:
    """The most withdrawn wrong answers that cost at most RECALL_COST of right ones."""
    from qa.calibration import choose_threshold as choose
    from qa.calibration import risk_coverage

    points = [_risk_point(r, p_by_id) for r in all_rows]
    return choose(points), [vars(p) for p in risk_coverage(points)]


def _risk_point(r: Row, p_by_id: dict[str, float]):
    from qa.calibration import RiskPoint

    shown = not r.record["abstained"]
    pid = r.record["id"]
    return RiskPoint(p_by_id.get(pid) if shown else None, shown, shown and r.right, r.answerable)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    sub.add_parser("fit", help="fit both models, write the LOSO tables")
    args = parser.parse_args()
    del args


if __name__ == "__main__":
    main()
