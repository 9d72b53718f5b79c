"""Workspaces measured (#34 item 7): memory with 10 small workspaces against one, the page's
time to switch, the first answer in a workspace just made, and optionally a load spread over 3.

What it guards against: a workspace that costs a model's worth of memory (the models must load
once and be shared, :mod:`qa.workspaces`), a switch in the page that reloads something slow,
and, under load, an answer drawn from another workspace's documents.

Everything runs in a temporary project root (its own ``seeds/``, ``index/``, ``evals/`` and
``workspaces/``): the user's workspaces and index are never touched. Each workspace is a made-up
town with three short documents (a lighthouse, a bakery, a ferry: three paragraphs of invented
facts each, file names prefixed with the town), so an answer that cites another town's file is
plainly one drawn from the wrong workspace.

In one run, with the models of the default settings (``--fake-llm``: a scripted chat model
that quotes the passage sentence nearest the question, for a smoke run without generation):

1. **memory**: this process's RSS (current, ``VmRSS``, and peak) after one workspace is made,
   indexed, opened through the shared :class:`qa.workspaces.Workspaces` cache and asked one
   question; then after 9 more are made, indexed, opened the same way and searched once (a
   retrieval loads what a question reads: the collection and its BM25 index; ``--ask-each``
   asks instead). The growth is what 9 more workspaces cost (target: ≤ 300 MB for 10).
2. **switch**: what the page does on a pick (``qa.ui.app``'s ``switch_fn`` without Gradio: the
   workspace's scope from :class:`qa.ui.workspace_picker.PageWorkspaces`, its Documents panel,
   the past chats of every workspace), timed over ``--switches`` picks among the 10 (target:
   ≤ 1 s); the cache's ``get`` alone; and the first pick of each workspace after a start (a
   fresh cache over the same loaded models).
3. **first answer**: a workspace made from the page (``PageWorkspaces.create``), its documents
   written and indexed, and one question asked: the wall time of each step and the answer's own
   timings (prompt tokens computed, first token).
4. **load** (``--load USERS``, off by default: minutes of CPU): ``qa api`` as a subprocess over
   the same root, USERS clients at once spread over 3 workspaces, each asking its workspace's
   questions with the workspace as the OpenAI ``model``; answers/min, p50/p95 wait, errors, and
   whether every answer cites only its own workspace's documents.

Times are measurements, not checks: nothing here asserts one.

Usage:
    python bench/workspaces.py --fake-llm          # smoke: memory and switching, no generation
    python bench/workspaces.py                     # the real local model
    python bench/workspaces.py --load 20           # and 20 API users over 3 workspaces
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from towns import TOWNS, Question, QuotingLLM, Town, town

from qa.assistant import Assistant
from qa.bench import peak_rss_mib, percentile
from qa.config import Settings
from qa.llm.queue import ChatFirst
from qa.text import contains
from qa.ui import panels
from qa.ui import workspace_picker as picker
from qa.workspaces import Workspace, Workspaces

ROOT = Path(__file__).resolve().parents[1]
Progress = Callable[[str], None]

# ---------------------------------------------------------------------------------------------
# Measuring.


def rss_mib() -> dict[str, float]:
    """This process's resident memory now (``VmRSS``) and its peak so far, in MiB."""
    gc.collect()
    status = Path("/proc/self/status").read_text()
    now = next(int(ln.split()[1]) for ln in status.splitlines() if ln.startswith("VmRSS:"))
    return {"rss_mib": now / 1024, "peak_mib": peak_rss_mib()}


def page_switch(pages: picker.PageWorkspaces, name: str) -> picker.Scope:
    """What the page does when ``name`` is picked (``switch_fn`` in :mod:`qa.ui.app`, less the
    Gradio updates): the workspace's scope, its Documents panel and the past chats of every
    workspace."""
    scope = pages.get(name)
    panels.documents_panel(scope.assistant)
    picker.chat_choices(pages, "")
    return scope


def cites_own(answer: Any, home: Town) -> bool:
    """Whether the answer cites something and only ``home``'s documents."""
    return bool(answer.citations) and all(home.owns(c.source) for c in answer.citations)


def answered(answer: Any, q: Question, home: Town) -> dict[str, Any]:
    """One answer as the result records it."""
    return {
        "question": q.text,
        "text": answer.text,
        "cited": sorted({c.source for c in answer.citations}),
        "cites_own_only": cites_own(answer, home),
        "cites_expected": q.source in {c.source for c in answer.citations},
        "contains_fact": contains(answer.text, q.fact),
    }


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def measure(
    base: Assistant,
    *,
    count: int = 10,
    switches: int = 30,
    ask_each: bool = False,
    seed: int = 0,
    progress: Progress = lambda _: None,
) -> dict[str, Any]:
    """Sections 1-3 of the module docstring over ``count`` workspaces made under
    ``base.settings.workspaces_dir`` (``base``: the default workspace's Assistant, whose models
    every workspace shares); returns the result with the towns used under ``"towns"``."""
    towns = [town(name, seed) for name in TOWNS[: count + 1]]
    fresh, towns = towns[-1], towns[:-1]
    shelf = Workspaces(base)
    pages = picker.PageWorkspaces(shelf, ChatFirst())
    result: dict[str, Any] = {"towns": [t.workspace for t in towns]}
    before = rss_mib()

    # 1. Memory: one workspace asked, then ten.
    def make(t: Town) -> Assistant:
        made = Workspace.create(t.workspace, base=base.settings)
        t.write(made.docs_dir)
        assistant = shelf.get(t.workspace)
        assistant.index()
        return assistant

    progress(f"workspace 1 of {count}: {towns[0].workspace}, indexed and asked")
    first = make(towns[0])
    q = towns[0].questions[0]
    one_answer = first.ask(q.text)
    one = rss_mib()
    asked = [answered(one_answer, q, towns[0])]
    for i, t in enumerate(towns[1:], 2):
        progress(f"workspace {i} of {count}: {t.workspace}")
        assistant = make(t)
        q = t.questions[i % len(t.questions)]
        if ask_each:
            asked.append(answered(assistant.ask(q.text), q, t))
        else:
            assistant.retrieve(q.text)
    ten = rss_mib()
    result["memory"] = {
        "before_models": before,
        "one_workspace": one,
        "workspaces": count,
        "all_workspaces": ten,
        "growth_mib": ten["rss_mib"] - one["rss_mib"],
        "growth_peak_mib": ten["peak_mib"] - one["peak_mib"],
        "per_added_workspace_mib": (ten["rss_mib"] - one["rss_mib"]) / max(1, count - 1),
        "opened_by": "ask" if ask_each else "retrieve",
        "chunks_per_workspace": statistics.median(
            sum(d.chunks for d in shelf.get(t.workspace).documents()) for t in towns
        ),
        "answers": asked,
    }

    # 2. Switching: picks among the workspaces already opened, then a fresh cache's first picks.
    progress(f"{switches} switches among {count} workspaces")
    rng = random.Random(seed)
    order, at = [], towns[0].workspace
    while len(order) < switches:
        at = rng.choice([t.workspace for t in towns if t.workspace != at])
        order.append(at)
    page_times, get_times, right = [], [], True
    for name in order:
        t0 = time.perf_counter()
        scope = page_switch(pages, name)
        page_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        got = shelf.get(name)
        get_times.append(time.perf_counter() - t0)
        right &= scope.name == name and scope.assistant is got
        right &= got.settings.collection == f"ws-{name}"
    after_switches = rss_mib()
    progress("first pick of each workspace in a fresh cache (models loaded)")
    cold_pages = picker.PageWorkspaces(Workspaces(base), ChatFirst())
    cold_times = []
    for t in towns:
        t0 = time.perf_counter()
        scope = page_switch(cold_pages, t.workspace)
        cold_times.append(time.perf_counter() - t0)
        right &= scope.assistant.settings.collection == f"ws-{t.workspace}"
        right &= {d.source for d in scope.assistant.documents()} == set(t.documents)
    result["switch"] = {
        "switches": len(page_times),
        "page_ms_p50": ms(statistics.median(page_times)),
        "page_ms_p95": ms(percentile(page_times, 95)),
        "page_ms_max": ms(max(page_times)),
        "get_ms_p50": ms(statistics.median(get_times)),
        "first_pick_ms_p50": ms(statistics.median(cold_times)),
        "first_pick_ms_max": ms(max(cold_times)),
        "first_pick_ms_first": ms(cold_times[0]),
        "right_workspace": right,
        "rss_after": after_switches,
    }

    # 3. The first answer in a workspace just made from the page.
    progress(f"first answer in a new workspace: {fresh.workspace}")
    t0 = time.perf_counter()
    scope = pages.create(fresh.workspace)
    fresh.write(scope.assistant.settings.seeds_dir)
    t1 = time.perf_counter()
    report = scope.assistant.index()
    t2 = time.perf_counter()
    q = fresh.questions[0]
    answer = scope.assistant.ask(q.text)
    t3 = time.perf_counter()
    timings = answer.timings
    result["first_answer"] = {
        "workspace": fresh.workspace,
        "create_ms": ms(t1 - t0),
        "index_s": round(t2 - t1, 3),
        "chunks": report.added,
        "ask_s": round(t3 - t2, 3),
        "total_s": round(t3 - t0, 3),
        "first_token_ms": timings.first_token_ms,
        "answer_total_ms": timings.total_ms,
        "retrieve_ms": timings.retrieve_ms,
        "prompt_tokens": timings.prompt_tokens,
        "prompt_eval_tokens": timings.prompt_eval_tokens,
        "prompt_eval_ms": timings.prompt_eval_ms,
        "generated_tokens": timings.generated_tokens,
        "generation_ms": timings.generation_ms,
        **answered(answer, q, fresh),
    }
    result["rss_end"] = rss_mib()
    return result


# ---------------------------------------------------------------------------------------------
# 4. Load over the HTTP API.


def load(root: Path, towns: list[Town], users: int, deadline_s: float) -> dict[str, Any]:
    """``users`` clients at once against ``qa api`` served over ``root``, client i asking the
    questions of ``towns[i % 3]`` one after another with that workspace as the ``model``."""
    import httpx

    sys.path.insert(0, str(ROOT / "bench"))
    from load import free_port, stop_server, tree_peak_rss_mib
    from load_api import start_api

    spread = towns[:3]
    port = free_port()
    server = start_api(
        root / "seeds",
        root / "index",
        port,
        max_queue=max(32, users),
        env={
            "QA_WORKSPACES_DIR": str(root / "workspaces"),
            "QA_EVALS_DIR": str(root / "evals"),
            "QA_FEEDBACK_PATH": str(root / "evals" / "feedback.jsonl"),
            "QA_AUTO_CALIBRATE": "false",  # no background refit competing for the 2 cores
        },
    )
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    rows: list[dict[str, Any]] = []
    stop_at = time.monotonic() + deadline_s

    def client(home: Town) -> None:
        with httpx.Client(timeout=deadline_s) as http:
            for q in home.questions:
                if time.monotonic() > stop_at:
                    return
                body = {"model": home.workspace, "messages": [{"role": "user", "content": q.text}]}
                row: dict[str, Any] = {"workspace": home.workspace, "question": q.text}
                t0 = time.perf_counter()
                try:
                    for _ in range(6):
                        r = http.post(url, json=body)
                        if r.status_code != 429:
                            break
                        time.sleep(float(r.headers.get("Retry-After", "1")))
                    r.raise_for_status()
                    reply = r.json()
                    cited = [c["source"] for c in reply["qa"]["citations"]]
                    text = reply["choices"][0]["message"]["content"]
                    row |= {
                        "ok": True,
                        "cited": cited,
                        "own_only": all(home.owns(s) for s in cited),
                        "foreign": [s for s in cited if not home.owns(s)],
                        "contains_fact": contains(text, q.fact),
                    }
                except Exception as err:  # a load test counts failures instead of stopping
                    row |= {"ok": False, "error": f"{type(err).__name__}: {err}"}
                row["seconds"] = time.perf_counter() - t0
                rows.append(row)
                print(f"{len(rows)} answered ({row['seconds']:.0f} s)", file=sys.stderr)

    try:
        threads = [
            threading.Thread(target=client, args=(spread[i % len(spread)],)) for i in range(users)
        ]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=deadline_s + 60)
        wall = time.perf_counter() - t0
        server_peak = tree_peak_rss_mib(server.pid)
    finally:
        stop_server(server)
    done = [r for r in rows if r["ok"]]
    waits = [r["seconds"] for r in done]
    return {
        "users": users,
        "workspaces": [t.workspace for t in spread],
        "requests": len(rows),
        "unanswered": users * 3 - len(rows),
        "errors": len(rows) - len(done),
        "answers_per_min": 60 * len(done) / wall,
        "wait_s_p50": statistics.median(waits) if waits else 0.0,
        "wait_s_p95": percentile(waits, 95),
        "own_workspace_only": all(r["own_only"] for r in done),
        "foreign_citations": sum(len(r["foreign"]) for r in done),
        "uncited": sum(not r["cited"] for r in done),
        "contains_fact_rate": sum(r["contains_fact"] for r in done) / max(1, len(done)),
        "server_peak_rss_mib": server_peak,
        "error_samples": [r["error"] for r in rows if not r["ok"]][:5],
    }


# ---------------------------------------------------------------------------------------------


def markdown(result: dict[str, Any]) -> str:
    """The result as one markdown table."""
    m, s, f = result["memory"], result["switch"], result["first_answer"]
    one, ten = m["one_workspace"], m["all_workspaces"]
    n = m["workspaces"]
    rows = [
        ("RSS, one workspace indexed and asked", f"{one['rss_mib']:,.0f} MiB", ""),
        ("peak RSS, one workspace", f"{one['peak_mib']:,.0f} MiB", ""),
        (f"RSS, {n} workspaces indexed and opened", f"{ten['rss_mib']:,.0f} MiB", ""),
        (
            f"growth for {n - 1} more workspaces (RSS / peak)",
            f"**{m['growth_mib']:,.0f} MiB** / {m['growth_peak_mib']:,.0f} MiB "
            f"({m['per_added_workspace_mib']:.1f} MiB each)",
            "≤ 300 MB (286 MiB)",
        ),
        (
            f"switch in the page, p50 / p95 / max of {s['switches']}",
            f"**{s['page_ms_p50']:.1f} ms** / {s['page_ms_p95']:.1f} ms / "
            f"{s['page_ms_max']:.1f} ms",
            "≤ 1 s",
        ),
        ("`Workspaces.get` of an opened workspace, p50", f"{s['get_ms_p50']:.3f} ms", ""),
        (
            "first pick of a workspace after a start, p50 / max",
            f"{s['first_pick_ms_p50']:.1f} ms / {s['first_pick_ms_max']:.1f} ms",
            "≤ 1 s",
        ),
        ("switches picked the right workspace", "yes" if s["right_workspace"] else "**NO**", ""),
        (
            "new workspace: create / index / first ask",
            f"{f['create_ms']:.0f} ms / {f['index_s']:.2f} s ({f['chunks']} chunks) / "
            f"{f['ask_s']:.2f} s",
            "",
        ),
        ("new workspace: made to first answer", f"**{f['total_s']:.2f} s**", ""),
        (
            "its first answer: first token / prompt tokens (computed)",
            f"{f['first_token_ms']:,.0f} ms / {f['prompt_tokens']:,} ({f['prompt_eval_tokens']:,})",
            "",
        ),
        (
            "its first answer cites its own document / holds the fact",
            f"{'yes' if f['cites_expected'] and f['cites_own_only'] else 'NO'} / "
            f"{'yes' if f['contains_fact'] else 'no'}",
            "",
        ),
    ]
    if load_row := result.get("load"):
        rows += [
            (
                f"load: {load_row['users']} API users over 3 workspaces, answers/min",
                f"{load_row['answers_per_min']:.1f}",
                "",
            ),
            (
                "load: wait p50 / p95",
                f"{load_row['wait_s_p50']:.1f} s / {load_row['wait_s_p95']:.1f} s",
                "",
            ),
            ("load: errors / unanswered", f"{load_row['errors']} / {load_row['unanswered']}", "0"),
            (
                "load: every answer cites only its own workspace",
                "yes" if load_row["own_workspace_only"] else "**NO**",
                "yes",
            ),
        ]
    lines = ["| measure | value | target |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def base_assistant(root: Path, fake_llm: bool) -> Assistant:
    """The default workspace's Assistant of a project rooted at ``root``: the default settings
    (env and models included) with every project folder under ``root``."""
    settings = Settings(
        seeds_dir=root / "seeds",
        index_dir=root / "index",
        evals_dir=root / "evals",
        feedback_path=root / "evals" / "feedback.jsonl",
        workspaces_dir=root / "workspaces",
    )
    (root / "seeds").mkdir(parents=True, exist_ok=True)
    return Assistant(settings, llm=QuotingLLM() if fake_llm else None)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0].replace("\n", " "),
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--fake-llm",
        action="store_true",
        help="a scripted chat model instead of the local LLM (real embeddings): a smoke run "
        "of memory and switching without generation; its answer timings mean nothing",
    )
    parser.add_argument("--workspaces", type=int, default=10, help="workspaces made (max 15)")
    parser.add_argument("--switches", type=int, default=30, help="picks timed among them")
    parser.add_argument(
        "--ask-each",
        action="store_true",
        help="ask one question in every workspace before measuring memory (default: one "
        "retrieval each; asking costs a prompt read per workspace)",
    )
    parser.add_argument(
        "--load",
        type=int,
        default=0,
        metavar="USERS",
        help="also USERS concurrent API clients over 3 workspaces (a `qa api` subprocess); "
        "0 (default) skips it",
    )
    parser.add_argument(
        "--deadline", type=float, default=1200, help="seconds after which no load question is sent"
    )
    parser.add_argument("--seed", type=int, default=0, help="the made-up facts' seed")
    parser.add_argument(
        "--out",
        type=Path,
        help="where the JSON goes (default: bench/results/workspaces.json; with --fake-llm "
        "nothing is written unless given)",
    )
    args = parser.parse_args()
    if not 2 <= args.workspaces < len(TOWNS):
        parser.error(f"--workspaces must be 2 to {len(TOWNS) - 1}")

    def say(text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="qa-bench-ws-") as tmp:
        root = Path(tmp)
        base = base_assistant(root, args.fake_llm)
        result = measure(
            base,
            count=args.workspaces,
            switches=args.switches,
            ask_each=args.ask_each,
            seed=args.seed,
            progress=say,
        )
        if args.load:
            say(f"load: {args.load} API users over 3 workspaces")
            towns = [town(t, args.seed) for t in TOWNS[: args.workspaces]]
            result["load"] = load(root, towns, args.load, args.deadline)
    s = base.settings
    result["config"] = {
        "llm": "fake (QuotingLLM)" if args.fake_llm else f"{s.llm_backend}: {s.llm_model}",
        "embedding_model": s.embedding_model,
        "threads": s.threads,
        "ask_each": args.ask_each,
        "switches": args.switches,
        "seed": args.seed,
        "command": " ".join(["python", "bench/workspaces.py", *sys.argv[1:]]),
    }
    result["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    print(markdown(result))
    out = args.out or (None if args.fake_llm else ROOT / "bench/results/workspaces.json")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2, default=str) + "\n")
        say(f"wrote {out}")


if __name__ == "__main__":
    main()
