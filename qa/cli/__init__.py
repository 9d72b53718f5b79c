"""Command line: ``qa index | ask | chat | serve | eval | calibrate | bench | gold | docs |
feedback`` over the same :class:`~qa.Assistant`.

Each module registers its commands on :data:`~qa.cli.common.app`: :mod:`~qa.cli.chat` the ones
that answer, :mod:`~qa.cli.evals` the ones that measure, :mod:`~qa.cli.gold` gold sets
generated from the documents, :mod:`~qa.cli.manage` documents and ratings. Models, langchain
and gradio are imported inside the commands that need them, so ``qa --help`` and
``qa docs list`` start quickly.
"""

from __future__ import annotations

from qa.cli import chat, evals, gold, manage  # noqa: F401  (importing them registers their commands)
from qa.cli.common import app

__all__ = ["app"]
