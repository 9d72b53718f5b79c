"""Fit the learned answer decision and the yes/no verdict across genres
(``qa/data/decision.json``), from what ``fit/collect_signals.py`` recorded.

    python fit/fit_decision.py            # tables on stdout, fit/results/decision-fit.json

Two models, both logistic regressions on standardized inputs (a hidden state is first reduced to
its principal components, then folded back into one weight per input):

* **the yes/no verdict**: P(yes) from the answering pass's odds of "Yes" against "No" at the
  first answer token and the hidden state there. Fitted on BoolQ's fit titles (inputs and
  regularization chosen by title-grouped cross-validation), reported on its held-out titles
  beside always-yes and the raw odds.
* **the answer decision**: P(the shown answer is right) from cheap signals
  (``qa.trust.answerability.cheap_features``: first-token odds, log-probabilities, how the
  answer and its passage relate to the question) and, on the local backend, the hidden state.
  Its pool spans three sources: SQuAD (Wikipedia, half the questions unanswerable), BoolQ
  (real search queries) and MultiRC (news, fiction, science, law). Validated leaving one
  source out: fitted on two, measured on the third. A second variant reads only what served
  backends report.

Cheap features are kept when they carry across sources: dropping one in turn, it stays only if
the mean held-out-source AUC is lower without it. Gold answers give the labels and never a
feature. Nothing is fitted on the held-out parts (``fit/results/decision-splits.json``), on
``evals/`` or on the seed article.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qa.answer import Signals  # noqa: E402
from qa.evaluation.scoring import candidate_match  # noqa: E402
from qa.passages import Chunk, Hit  # noqa: E402
from qa.text import contains, strip_citations  # noqa: E402
from qa.trust.answerability import CHEAP_FEATURES, cheap_features  # noqa: E402
from qa.trust.calibration import RiskPoint, choose_threshold, outcomes_at, risk_coverage  # noqa: E402
from qa.trust.verify import question_coverage, yes_no_odds  # noqa: E402

CACHE = ROOT / "fit" / ".cache" / "decision"
OUT = ROOT / "qa" / "data" / "decision.json"
RESULTS = ROOT / "fit" / "results" / "decision-fit.json"
SEED = 0
SOURCES = ("squad", "boolq", "multirc")
STATES = ("l14@first", "l21@first", "final@first")
COSTS = (0.01, 0.02, 0.03, 0.05)
"""In-sample recall costs a threshold may be chosen at
(``qa.trust.calibration.choose_threshold``)."""
LEFT_OUT_LOSS = 0.03
"""The most right answers a threshold may cost on a source left out of the fit."""
VERDICT_SLACK = 0.03
"""How much cross-validated accuracy a simpler yes/no verdict may give up against the best."""
YESNO_FALSE_ABSTENTION = 0.02
"""The yes/no coverage rule may abstain on at most this share of BoolQ's fit questions."""


# --- rows -------------------------------------------------------------------------------------


@dataclass
class Row:
    """One collected question and what the chain would make of it."""

    source: str
    part: str
    record: dict
    hits: list[Hit]
    signals: Signals
    shown: bool = False
    right: bool = False
    answer: str = ""
    evidence: int = 0
    features: dict[str, float] | None = None

    @property
    def shape(self) -> str:
        return self.record["shape"]

    @property
    def group(self) -> str:
        return self.record["group"]

    @property
    def gold(self) -> dict:
        return self.record["gold"]

    @property
    def answerable(self) -> bool:
        return not self.gold.get("unanswerable")


def _safe(name: str) -> str:
    return hashlib.sha1(name.encode()).hexdigest()[:16]


def load_rows(cache: Path = CACHE) -> list[Row]:
    """Every collected question (``<source>.<part>.<mode>.jsonl`` and its states)."""
    rows = []
    for path in sorted(cache.glob("*.jsonl")):
        source, part, _mode = path.stem.split(".")
        states_dir = path.with_suffix(".states")
        for line in path.read_text().splitlines():
            record = json.loads(line)
            npz = np.load(states_dir / f"{_safe(record['id'])}.npz")
            states = {k.replace("_", "@", 1): npz[k].astype(np.float64) for k in npz.files}
            hits = [
                Hit(Chunk(f"{record['id']}-{n}", text, "doc", n - 1, 0, len(text), ""), score)
                for n, score, text in record["hits"]
            ]
            signals = Signals(record["first_token_probs"], record["token_logprobs"], states)
            rows.append(Row(source, part, record, hits, signals))
    return rows


def _is_right(row: Row, text: str) -> bool:
    gold = row.gold
    if not text or gold.get("unanswerable"):
        return False
    if "yes" in gold:
        return text.lower().startswith("yes" if gold["yes"] else "no")
    if "answers" in gold:
        return any(contains(text, a) for a in gold["answers"])
    return candidate_match(text, gold["correct"], gold["incorrect"])


# --- the yes/no verdict -----------------------------------------------------------------------


def yes_logit(row: Row) -> float:
    odds = yes_no_odds(row.signals.first_token_probs)
    return math.log((odds.get("p_yes", 0.0) + 1e-6) / (odds.get("p_no", 0.0) + 1e-6))


@dataclass(frozen=True)
class Linear:
    """P = sigmoid(bias + ((x - mean) / scale) @ weights): the form qa evaluates."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = self.bias + ((x - self.mean) / self.scale) @ self.weights
        return 1 / (1 + np.exp(-np.clip(z, -60, 60)))

    def to_dict(self, features: tuple[str, ...], hidden: tuple[str, ...]) -> dict:
        return {
            "features": list(features),
            "hidden": list(hidden),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "weights": self.weights.tolist(),
            "bias": self.bias,
        }


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
    zz = np.hstack([z[:, :n_cheap], comps / comp_scale])
    lr = LogisticRegression(C=c, max_iter=5000).fit(zz, y)
    w_cheap, w_comp = lr.coef_[0][:n_cheap], lr.coef_[0][n_cheap:] / comp_scale
    weights = np.concatenate([w_cheap, pca.components_.T @ w_comp])
    bias = float(lr.intercept_[0] - (pca.mean_ @ pca.components_.T) @ w_comp)
    return Linear(mean, scale, weights, bias)


def auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def group_folds(rows: list[Row], folds: int = 5) -> list[int]:
    """A fold per row, by document (title, passage, article): a document is never split."""
    groups = sorted({r.group for r in rows})
    order = np.random.default_rng(SEED).permutation(len(groups))
    fold_of = {g: int(order[i]) % folds for i, g in enumerate(groups)}
    return [fold_of[r.group] for r in rows]


def out_of_fold(rows: list[Row], fit: Callable[[list[Row]], Callable], folds: int = 5):
    """Predictions for each row from a model fitted without its document's fold."""
    fold = group_folds(rows, folds)
    p = np.zeros(len(rows))
    for f in range(folds):
        test = [i for i, g in enumerate(fold) if g == f]
        train = [r for r, g in zip(rows, fold, strict=True) if g != f]
        if test and train:
            p[test] = fit(train)([rows[i] for i in test])
    return p


def verdict_matrix(rows: list[Row], hidden: str | None) -> np.ndarray:
    x = np.array([[yes_logit(r)] for r in rows])
    return np.hstack([x, np.stack([r.signals.states[hidden] for r in rows])]) if hidden else x


def fit_verdict(train: list[Row], hidden: str | None, k: int | None, c: float):
    y = np.array([r.gold["yes"] for r in train], dtype=int)
    model = fit_linear(verdict_matrix(train, hidden), y, c, 1, k)
    return model, lambda rows: model.predict(verdict_matrix(rows, hidden))


def study_verdict(rows: list[Row]) -> tuple[dict, dict, Callable[[list[Row]], np.ndarray]]:
    """Choose and fit the verdict on BoolQ's fit titles; report on its held-out titles."""
    fit_rows = [r for r in rows if r.source == "boolq" and r.part == "fit"]
    held = [r for r in rows if r.source == "boolq" and r.part == "held_out"]
    y = np.array([r.gold["yes"] for r in fit_rows])
    grid = [(None, None, c) for c in (0.1, 1.0)]
    grid += [(h, k, c) for h in STATES for k in (16, 32, 64) for c in (0.01, 0.1, 1.0)]
    cv = []
    for h, k, c in grid:
        p = out_of_fold(fit_rows, lambda tr, h=h, k=k, c=c: fit_verdict(tr, h, k, c)[1])
        cv.append({"hidden": h, "pca": k, "C": c, "acc": float(((p >= 0.5) == y).mean())})
        cv[-1]["auc"] = auc(y, p)
        print(f"verdict {h} k={k} C={c}: cv acc {cv[-1]['acc']:.3f}", file=sys.stderr)
    # The simplest verdict within VERDICT_SLACK of the best: a hidden state read after a
    # paragraph need not mean the same after a whole article in the prompt.
    top = max(m["acc"] for m in cv)
    best = min(
        (m for m in cv if m["acc"] >= top - VERDICT_SLACK),
        key=lambda m: (m["hidden"] is not None, m["pca"] or 0, m["C"]),
    )
    model, predict = fit_verdict(fit_rows, best["hidden"], best["pca"], best["C"])
    hidden = (best["hidden"],) if best["hidden"] else ()
    report = {"fit_questions": len(fit_rows), "fit_titles": len({r.group for r in fit_rows})}
    report |= {"cv": cv, "chosen": best}
    if held:
        yh = np.array([r.gold["yes"] for r in held])
        raw = np.array([yes_logit(r) > 0 for r in held])
        report["held_out"] = {
            "questions": len(held),
            "titles": len({r.group for r in held}),
            "always_yes": float(yh.mean()),
            "raw_odds": float((raw == yh).mean()),
            "learned": float(((predict(held) >= 0.5) == yh).mean()),
        }
    # BoolQ's fit rows get out-of-fold verdicts (their labels feed the answer decision).
    oof = dict(
        zip(
            (r.record["id"] for r in fit_rows),
            out_of_fold(
                fit_rows, lambda tr: fit_verdict(tr, best["hidden"], best["pca"], best["C"])[1]
            ),
            strict=True,
        )
    )

    def verdict(rs: list[Row]) -> np.ndarray:
        return np.array([oof.get(r.record["id"], predict([r])[0]) for r in rs])

    return report, model.to_dict(("yes_logit",), hidden), verdict


def yesno_coverage(rows: list[Row]) -> float:
    """The coverage a yes/no question's best passage needs: the highest that abstains on at
    most ``YESNO_FALSE_ABSTENTION`` of BoolQ's fit questions (which its paragraph answers)."""
    covered = sorted(
        max(question_coverage(r.record["question"], h.chunk.text) for h in r.hits)
        for r in rows
        if r.source == "boolq" and r.part == "fit"
    )
    return float(covered[int(len(covered) * YESNO_FALSE_ABSTENTION)]) if covered else 0.5


# --- what the chain shows ---------------------------------------------------------------------


def settle(rows: list[Row], verdict: Callable[[list[Row]], np.ndarray], coverage: float) -> None:
    """Whether each row's answer is shown (before the decision), what it is and whether it is
    right. Short and open answers are as collected; yes/no ones are redone with the learned
    verdict and the coverage rule (collected under an earlier rule)."""
    yesno = [r for r in rows if r.shape == "yesno"]
    p_yes = dict(zip((id(r) for r in yesno), verdict(yesno), strict=True)) if yesno else {}
    for r in rows:
        text = "" if r.record["abstained"] else strip_citations(r.record["text"]).strip()
        cited = r.record["cited"]
        r.evidence = min(cited) - 1 if cited else 0
        if r.shape == "yesno":
            covered = [question_coverage(r.record["question"], h.chunk.text) for h in r.hits]
            p_none = yes_no_odds(r.signals.first_token_probs).get("p_none", 0.0)
            r.shown = max(covered, default=0) >= coverage and p_none < 0.5
            r.answer = "Yes" if p_yes[id(r)] >= 0.5 else "No"
            r.evidence = int(np.argmax(covered)) if covered else 0
            text = r.answer + "." if r.shown else ""
        else:
            r.shown = bool(text)
            r.answer = " ".join(r.record["sentences"]) if r.shape != "short" else text
            r.answer = strip_citations(r.answer).strip()
        r.right = r.shown and _is_right(r, text)
        if r.shown:
            r.features = cheap_features(
                r.record["question"], r.answer, r.evidence, r.hits, r.signals, r.shape
            )


# --- the answer decision ----------------------------------------------------------------------


def decision_matrix(rows: list[Row], names: tuple[str, ...], hidden: str | None) -> np.ndarray:
    x = np.array([[r.features[n] for n in names] for r in rows]).reshape(len(rows), len(names))
    return np.hstack([x, np.stack([r.signals.states[hidden] for r in rows])]) if hidden else x


def fit_decision(train: list[Row], names: tuple[str, ...], hidden: str | None, k, c):
    y = np.array([r.right for r in train], dtype=int)
    model = fit_linear(decision_matrix(train, names, hidden), y, c, len(names), k)
    return model, lambda rows: model.predict(decision_matrix(rows, names, hidden))


def loso(rows: list[Row], names, hidden, k, c) -> dict[str, float]:
    """AUC on each source's shown answers, fitted on the other two sources' fit parts."""
    out = {}
    for held in SOURCES:
        train = [r for r in rows if r.source != held and r.part == "fit"]
        test = [r for r in rows if r.source == held]
        if train and test:
            _, predict = fit_decision(train, names, hidden, k, c)
            out[held] = auc(np.array([r.right for r in test]), predict(test))
    return out


def risk_points(all_rows: list[Row], p: dict[int, float]) -> list[RiskPoint]:
    return [
        RiskPoint(p.get(id(r)) if r.shown else None, r.shown, r.right, r.answerable)
        for r in all_rows
    ]


def study_decision(rows: list[Row], shapes: tuple[str, ...]) -> dict:
    """Feature selection, LOSO tables and the final fits of both variants."""
    pool = [r for r in rows if r.shown and r.shape in shapes]
    report: dict = {"shapes": list(shapes), "pool": {s: 0 for s in SOURCES}}
    for r in pool:
        report["pool"][r.source] += 1

    def mean_auc(names, hidden, k, c) -> float:
        return float(np.nanmean(list(loso(pool, names, hidden, k, c).values())))

    # Which cheap features carry across sources (cheap-only model, C=0.1).
    names = tuple(CHEAP_FEATURES)
    base = mean_auc(names, None, None, 0.1)
    carry = {}
    for name in CHEAP_FEATURES:
        without = mean_auc(tuple(n for n in names if n != name), None, None, 0.1)
        carry[name] = {"mean_loso_auc_without": without, "kept": without < base}
        print(f"drop {name}: {without:.3f} (all: {base:.3f})", file=sys.stderr)
    kept = tuple(n for n in names if carry[n]["kept"]) or names
    report["features"] = {"all_mean_loso_auc": base, "each": carry, "kept": list(kept)}
    variants = {}
    for variant, hiddens in (("log-probabilities", (None,)), ("hidden-state", STATES)):
        grid = [
            (h, k, c)
            for h in hiddens
            for k in ((None,) if h is None else (8, 32))
            for c in (0.01, 0.1, 1.0)
        ]
        scored = []
        for h, k, c in grid:
            per_source = loso(pool, kept, h, k, c)
            scored.append(
                {
                    "hidden": h,
                    "pca": k,
                    "C": c,
                    "loso_auc": per_source,
                    "mean": float(np.nanmean(list(per_source.values()))),
                }
            )
            print(f"{variant} {h} k={k} C={c}: {scored[-1]['mean']:.3f}", file=sys.stderr)
        best = max(scored, key=lambda s: s["mean"])
        variants[variant] = fit_variant(rows, pool, kept, best, shapes) | {"grid": scored}
    report["variants"] = variants
    return report


def shared_threshold(rows: list[Row], p: dict[int, float], cost: float) -> float:
    """The lowest of each source's own operating point (``choose_threshold`` at ``cost``): a
    threshold pooled over sources did not transfer (on MultiRC it withheld a third of the
    right answers), and the most lenient keeps every source within its own recall cost."""
    by_source = [[r for r in rows if r.source == source] for source in SOURCES]
    return min(
        choose_threshold(risk_points(rs, p), cost=cost)
        for rs in by_source
        if any(r.shown for r in rs)
    )


def fit_variant(rows: list[Row], pool: list[Row], names, best: dict, shapes) -> dict:
    """The final fit of one variant on every source's fit part, and its threshold.

    Each source is left out in turn: the decision fitted on the others, its threshold chosen
    on their out-of-fold predictions at each recall cost in ``COSTS``, measured on the source
    left out. The shipped threshold uses the largest cost whose worst left-out loss of right
    answers stays within ``LEFT_OUT_LOSS``: what holds on a genre the fit never saw."""
    h, k, c = best["hidden"], best["pca"], best["C"]
    fit_pool = [r for r in pool if r.part == "fit"]
    fit_rows = [r for r in rows if r.part == "fit" and (not r.shown or r.shape in shapes)]
    held_points: dict[str, dict] = {}
    for held in SOURCES:
        train = [r for r in fit_pool if r.source != held]
        test = [r for r in pool if r.source == held]
        if not train or not test:
            continue
        tr_oof = out_of_fold(train, lambda tr: fit_decision(tr, names, h, k, c)[1])
        tr_p = dict(zip(map(id, train), tr_oof, strict=True))
        tr_rows = [r for r in fit_rows if r.source != held]
        _, predict = fit_decision(train, names, h, k, c)
        all_held = [r for r in rows if r.source == held and (not r.shown or r.shape in shapes)]
        pts = risk_points(all_held, dict(zip(map(id, test), predict(test), strict=True)))
        none = outcomes_at(pts, 0.0)
        at_cost = {}
        for cost in COSTS:
            t = shared_threshold(tr_rows, tr_p, cost)
            at = outcomes_at(pts, t)
            at_cost[str(cost)] = vars(at) | {"loss": none.answered_right - at.answered_right}
        held_points[held] = {
            "auc": best["loso_auc"].get(held),
            "at_cost": at_cost,
            "no_decision": vars(none),
        }
    cost = max(
        (
            q
            for q in COSTS
            if all(v["at_cost"][str(q)]["loss"] <= LEFT_OUT_LOSS for v in held_points.values())
        ),
        default=min(COSTS),
    )
    oof = out_of_fold(fit_pool, lambda tr: fit_decision(tr, names, h, k, c)[1])
    p_oof = dict(zip(map(id, fit_pool), oof, strict=True))
    model, _ = fit_decision(fit_pool, names, h, k, c)
    hidden = (h,) if h else ()
    return {
        "model": model.to_dict(names, hidden),
        "threshold": shared_threshold(fit_rows, p_oof, cost),
        "recall_cost": cost,
        "chosen": {"hidden": h, "pca": k, "C": c},
        "curve": [vars(p) for p in risk_coverage(risk_points(fit_rows, p_oof))],
        "left_out": held_points,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument(
        "--shapes", default="short", help="shapes the decision judges, e.g. short,yesno"
    )
    parser.add_argument("--write", action="store_true", help=f"write {OUT.relative_to(ROOT)}")
    args = parser.parse_args()
    rows = load_rows(args.cache)
    verdict_report, verdict_model, verdict = study_verdict(rows)
    coverage = yesno_coverage(rows)
    settle(rows, verdict, coverage)
    shapes = tuple(args.shapes.split(","))
    decision = study_decision(rows, shapes)
    report = {"verdict": verdict_report, "yesno_coverage": coverage, "decision": decision}
    RESULTS.write_text(json.dumps(report, indent=1, default=float) + "\n")
    print(
        json.dumps(
            {
                "verdict": verdict_report.get("held_out"),
                "chosen": verdict_report["chosen"],
                "yesno_coverage": coverage,
            },
            indent=1,
        )
    )
    for name, v in decision["variants"].items():
        print(name, v["chosen"], "threshold", v["threshold"], "at cost", v["recall_cost"])
        for held, at in v["left_out"].items():
            for cost, o in at["at_cost"].items():
                print(f"  {held} left out, cost {cost}: t={o['threshold']} loss={o['loss']:.3f}")
    if args.write:
        splits = json.loads((ROOT / "fit" / "results" / "decision-splits.json").read_text())
        provenance = (
            f"fit/fit_decision.py, seed {SEED}: fitted on the fit parts of SQuAD 2.0 "
            f"({', '.join(splits['squad']['fit'])}), BoolQ ({len(splits['boolq']['fit'])} titles) "
            f"and MultiRC ({len(splits['multirc']['fit'])} passages); shapes {', '.join(shapes)}; "
            "validated leave-one-source-out (fit/results/decision-fit.json)"
        )
        variants = [
            decision["variants"][name]["model"]
            | {
                "name": name,
                "threshold": round(decision["variants"][name]["threshold"], 3),
                "shapes": list(shapes),
                "curve": decision["variants"][name]["curve"],
            }
            for name in ("hidden-state", "log-probabilities")
        ]
        OUT.write_text(
            json.dumps(
                {
                    "provenance": provenance,
                    "variants": variants,
                    "verdict": verdict_model,
                    "yesno_coverage": coverage,
                }
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
