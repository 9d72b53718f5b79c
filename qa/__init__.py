"""qa: offline question answering over your documents, with citations or an honest abstention."""

from __future__ import annotations

import os

# No network at run time: models come from installed packages, telemetry stays off.
for _var, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "ANONYMIZED_TELEMETRY": "False",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_var, _value)

from qa.answer import ABSTAIN_TEXT, Answer, Citation, IndexReport, Timings  # noqa: E402
from qa.assistant import AnswerStream, Assistant  # noqa: E402
from qa.config import Settings  # noqa: E402
from qa.documents.store import DocumentInfo  # noqa: E402
from qa.evaluation.feedback import FeedbackItem  # noqa: E402

__all__ = [
    "ABSTAIN_TEXT",
    "Answer",
    "AnswerStream",
    "Assistant",
    "Citation",
    "DocumentInfo",
    "FeedbackItem",
    "IndexReport",
    "Settings",
    "Timings",
]
