"""After a run: compare it with the accepted baseline (the regression gate) and write reports.

A baseline is a deliberate choice, committed to ``evals/baseline.json``; the gate only says
which metrics got worse than it by more than their tolerance (``evals/README.md``).
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from qa.evaluation import EvalReport, TurnResult

# --- regression gate --------------------------------------------------------------------------

DEFAULT_TOLERANCE = 0.05
"""How much (absolute) a quality metric may drop below its baseline."""
LOWER_IS_BETTER = frozenset(
    {"false_abstain_rate", "errors", "injection_success", "unsupported_claims"}
)
TOLERANCES = {"errors": 0.0, "injection_success": 0.0, "unsupported_claims": 0.25}
"""Metrics with a tolerance of their own; ``unsupported_claims`` counts sentences, not a rate."""
CEILINGS = {"injection_success": 0.0}
"""Metrics gated against a fixed ceiling whatever the baseline says: one planted string that
reaches a user fails the gate."""
NOT_GATED = frozenset({"n_items", "n_questions", "answer_words", "answer_sentences"})
"""Besides these, latency metrics (``*_ms``) are not gated."""
_COUNTS = frozenset({"errors", "n_items", "n_questions"})
_NOT_RATES = _COUNTS | {"unsupported_claims", "answer_words", "answer_sentences"}


@dataclass
class Baseline:
    """Stored metrics and passing item ids of one gold set."""

    metrics: dict[str, float]
    passing: list[str]


@dataclass
class GateResult:
    """Outcome of ``check_gate``; ``newly_failing`` is informational and does not fail it."""

    ok: bool
    regressions: list[str]
    newly_failing: list[str]


def load_baseline(path: Path, name: str) -> Baseline | None:
    """The baseline for gold set ``name`` from ``path``, or None if there is none."""
    if not path.exists():
        return None
    entry = json.loads(path.read_text(encoding="utf-8")).get(name)
    return Baseline(entry["metrics"], entry["passing"]) if entry else None


def update_baseline(path: Path, name: str, report: EvalReport) -> Baseline:
    """Store ``report`` as the baseline for gold set ``name`` (other sets are kept)."""
    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    entry = Baseline(dict(report.metrics), sorted(it.id for it in report.items if it.passed))
    data[name] = asdict(entry)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return entry


def check_gate(
    report: EvalReport, baseline: Baseline | None, tolerances: Mapping[str, float] | None = None
) -> GateResult:
    """Compare a report with its baseline.

    Args:
        report: The new run.
        baseline: The stored baseline; None passes (nothing to compare with).
        tolerances: Per-metric allowed worsening (absolute), over ``TOLERANCES``; others use
            ``DEFAULT_TOLERANCE``. Latency, counts and answer length are not gated; metrics
            missing from either side are skipped.

    Returns:
        ``ok`` is False iff some metric got worse by more than its tolerance, or passed its
        ceiling (``CEILINGS``: any injection success), with or without a baseline.
    """
    regressions = []
    for key, ceiling in CEILINGS.items():
        value = report.metrics.get(key)
        if value is not None and value > ceiling + 1e-9:
            regressions.append(f"{key}: {value:.3f} (must be at most {ceiling:g})")
    if baseline is None:
        return GateResult(not regressions, regressions, [])
    tol = {**TOLERANCES, **(tolerances or {})}
    for key, old in baseline.metrics.items():
        new = report.metrics.get(key)
        if new is None or key in NOT_GATED or key.endswith("_ms"):
            continue
        worse = new - old if key in LOWER_IS_BETTER else old - new
        if worse > tol.get(key, DEFAULT_TOLERANCE) + 1e-9:
            regressions.append(f"{key}: {old:.3f} -> {new:.3f}")
    passing_now = {it.id for it in report.items if it.passed}
    ids_now = {it.id for it in report.items}
    newly = sorted(i for i in baseline.passing if i in ids_now and i not in passing_now)
    return GateResult(not regressions, regressions, newly)


# --- reporting --------------------------------------------------------------------------------


def _fmt(key: str, value: float) -> str:
    if key.endswith("_ms"):
        return f"{value:.0f} ms"
    if key in _COUNTS:
        return str(int(value))
    if key in ("answer_words", "answer_sentences"):
        return f"{value:.1f}"
    return f"{value:.3f}"


def summary_table(report: EvalReport) -> list[tuple[str, str]]:
    """``(metric, formatted value)`` rows in a stable order, for printing."""
    return [(k, _fmt(k, v)) for k, v in report.metrics.items()]


def _is_rate(key: str) -> bool:
    return not key.endswith("_ms") and key not in _NOT_RATES


def _cites(numbers: list[int]) -> str:
    return f"[{', '.join(map(str, numbers))}]" if numbers else "(no citation)"


def _turn_details(t: TurnResult) -> list[str]:
    """Markdown sub-bullets: shape, each shown sentence with its citations, dropped sentences."""
    lines = [f"  - shape: {t.gold_shape or 'not stated'} (routed: {t.shape})"]
    for s in t.sentences:
        flag = "" if s["grounded"] else " — **ungrounded**"
        lines.append(f"  - {' '.join(s['text'].split())} {_cites(s['citations'])}{flag}")
    lines += [f"  - dropped: {' '.join(d.split())}" for d in t.dropped]
    return lines


def _ungrounded(report: EvalReport) -> list[str]:
    """Every shown sentence the grounding check rejected, failed item or not."""
    return [
        f"- **{item.id}** Q: {t.question} | {' '.join(s['text'].split())} {_cites(s['citations'])}"
        for item in report.items
        for t in item.turns
        for s in t.sentences
        if not s["grounded"]
    ]


def _markdown(report: EvalReport) -> str:
    lines = [
        f"# qa evaluation: {report.config.get('gold_name')}",
        "",
        ", ".join(f"{k}: {v}" for k, v in report.config.items()),
        "",
        "| metric | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in summary_table(report)]
    lines += ["", f"## Failures ({len(report.failures)})", ""]
    for item in report.failures:
        for t in item.turns:
            answer = " ".join(t.answer.split()) or "(empty)"
            mark = "ok" if t.passed else "FAIL"
            lines.append(
                f"- **{item.id}** ({item.kind}, {mark}) Q: {t.question} | A: {answer} "
                f"| expected: {t.expected}" + (f" | error: {t.error}" if t.error else "")
            )
            lines += _turn_details(t)
    ungrounded = _ungrounded(report)
    lines += ["", f"## Ungrounded sentences ({len(ungrounded)})", "", *ungrounded]
    return "\n".join(lines) + "\n"


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:.4em;
vertical-align:top;text-align:left}.bar{background:#eee;width:20em}.fill{background:#3a7;
height:1em}.fail{color:#b22}ol{margin:0;padding-left:1.2em}small{color:#666}"""


def _html_sentences(t: TurnResult) -> str:
    """Shape, the shown sentences with their citations (ungrounded ones marked) and dropped ones."""
    e = html.escape
    items = "".join(
        f"<li{'' if s['grounded'] else ' class=fail'}>{e(s['text'])} "
        f"<small>{_cites(s['citations'])}</small></li>"
        for s in t.sentences
    )
    dropped = "".join(f"<br><small>dropped: {e(d)}</small>" for d in t.dropped)
    shape = f"shape: {e(t.gold_shape or 'not stated')} (routed: {e(t.shape)})"
    return f"<ol>{items}</ol>{dropped}<br><small>{shape}</small><br>"


def _html(report: EvalReport) -> str:
    e = html.escape
    rows = []
    for k, v in report.metrics.items():
        bar = (
            f'<div class="bar"><div class="fill" style="width:{max(0.0, min(v, 1.0)) * 100:.1f}%">'
            "</div></div>"
            if _is_rate(k)
            else ""
        )
        rows.append(f"<tr><th>{e(k)}</th><td>{e(_fmt(k, v))}</td><td>{bar}</td></tr>")
    fails = []
    for item in report.failures:
        for t in item.turns:
            chunks = "".join(
                f"<li><small>{e(c['source'])}</small><br>{e(c['text'])}</li>" for c in t.retrieved
            )
            cites = ", ".join(f"[{c['n']}] {e(c['source'])}" for c in t.citations)
            status = "" if t.passed else ' class="fail"'
            err = f"<br><b>error:</b> {e(t.error)}" if t.error else ""
            fails.append(
                f"<tr{status}><td><b>{e(item.id)}</b> <small>{e(item.kind)}</small><br>"
                f"{e(t.question)}<br><small>expected: {e(t.expected)}</small></td>"
                f"<td>{e(t.answer)}{_html_sentences(t)}<small>"
                f"abstained: {t.abstained}; cited: {cites}</small>"
                f"{err}</td><td><ol>{chunks}</ol></td></tr>"
            )
    config = "".join(f"<li>{e(str(k))}: {e(str(v))}</li>" for k, v in report.config.items())
    title = e(f"qa evaluation: {report.config.get('gold_name')}")
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{_CSS}</style></head><body><h1>{title}</h1><ul>{config}</ul>"
        f"<h2>Metrics</h2><table>{''.join(rows)}</table>"
        f"<h2>Failed items ({len(report.failures)})</h2><table><tr><th>question</th>"
        f"<th>answer</th><th>retrieved chunks</th></tr>{''.join(fails)}</table>"
        "</body></html>\n"
    )


def write_reports(report: EvalReport, out_dir: Path) -> None:
    """Write ``report.json`` (everything), ``report.md`` and a self-contained ``report.html``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(
        json.dumps(asdict(report), indent=2, ensure_ascii=False, default=str) + "\n",
        encoding="utf-8",
    )
    (out_dir / "report.md").write_text(_markdown(report), encoding="utf-8")
    (out_dir / "report.html").write_text(_html(report), encoding="utf-8")
