"""Command line: ``qa index | ask | chat | serve | api | eval | calibrate | bench | gold | docs |
feedback`` over the same :class:`~qa.Assistant`.

Each module registers its commands on :data:`~qa.cli.common.app`: :mod:`~qa.cli.chat` the ones
that answer, :mod:`~qa.cli.api` the HTTP API and its keys, :mod:`~qa.cli.evals` the ones that
measure, :mod:`~qa.cli.gold` gold sets generated from the documents, :mod:`~qa.cli.manage`
documents and ratings. Models, langchain, gradio and FastAPI are imported inside the commands
that need them, so ``qa --help`` and ``qa docs list`` start quickly.
"""

from __future__ import annotations

from qa.cli import api, chat, evals, gold, manage  # noqa: F401  (importing registers their commands)
from qa.cli.common import app

__all__ = ["app"]
