from __future__ import annotations

from qa.cli import app

app()
