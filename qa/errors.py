"""Errors raised by qa, each with a message that tells the user what to do next.

Hierarchy::

    QAError
    ├── IndexNotFoundError      no index yet, or it is empty
    ├── InvalidQuestionError    empty, too long or unreadable question
    ├── UnsupportedFileError    a document qa cannot read
    ├── DocumentNotFoundError   no indexed document by that name
    ├── ModelUnavailableError   model weights missing / corrupt
    └── BackendError            the LLM or Chroma server failed or is unreachable
"""

from __future__ import annotations


class QAError(Exception):
    """Base class for every error qa raises on purpose."""


class IndexNotFoundError(QAError):
    """The index is missing or empty."""


class InvalidQuestionError(QAError):
    """The question cannot be answered as asked (empty, too long, unreadable)."""


class UnsupportedFileError(QAError):
    """A document has a type or content qa cannot index."""


class DocumentNotFoundError(QAError):
    """No indexed document has the given name."""


class ModelUnavailableError(QAError):
    """Model weights are not installed or fail verification."""


class BackendError(QAError):
    """A model or vector-store backend failed or could not be reached."""
