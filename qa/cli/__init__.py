"""Command line: ``qa index | ask | chat | serve | api | eval | calibrate | bench | gold | docs |
feedback | workspace`` over the same :class:`~qa.Assistant`, in the workspace ``-w`` names.

Each module registers its commands on :data:`~qa.cli.common.app`: :mod:`~qa.cli.chat` the ones
that answer, :mod:`~qa.cli.api` the HTTP API and its keys, :mod:`~qa.cli.evals` the ones that
measure, :mod:`~qa.cli.gold` gold sets generated from the documents, :mod:`~qa.cli.manage`
documents and ratings, :mod:`~qa.cli.workspaces` the workspaces. Models, langchain, gradio
and FastAPI are imported inside the commands that need them, so ``qa --help`` and ``qa docs
list`` start quickly.
"""

from __future__ import annotations

from qa.cli import api, chat, evals, gold, manage, workspaces  # noqa: F401  (importing registers their commands)
from qa.cli.common import app

__all__ = ["app"]
