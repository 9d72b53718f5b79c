"""Every refusal of the HTTP API as a status and an OpenAI-style error body, never a trace.

OpenAI clients read ``{"error": {"message", "type", "param", "code"}}`` and raise their own
exception classes by status (401 ``AuthenticationError``, 403 ``PermissionDeniedError``, 429
``RateLimitError``, ...), so every 4xx and 5xx here, including FastAPI's own validation errors,
is rewritten into that shape. qa's deliberate errors (:mod:`qa.errors`) keep their message,
which says what to do; anything else is logged and answered with a one-line 500.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from qa.errors import (
    BackendError,
    DocumentNotFoundError,
    IndexNotFoundError,
    InvalidQuestionError,
    ModelUnavailableError,
    QAError,
    UnsupportedFileError,
)
from qa.llm.queue import QueueFull

log = logging.getLogger(__name__)

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
}


class ApiError(Exception):
    """A refusal with its HTTP status (``code`` and ``param`` as OpenAI names them)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        kind = _TYPES.get(self.status, "server_error" if self.status >= 500 else "api_error")
        return {
            "error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}
        }

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


_STATUS: list[tuple[type[QAError], int, str]] = [
    (InvalidQuestionError, 400, "invalid_question"),
    (UnsupportedFileError, 415, "unsupported_file"),
    (DocumentNotFoundError, 404, "document_not_found"),
    (IndexNotFoundError, 409, "index_empty"),
    (ModelUnavailableError, 503, "model_unavailable"),
    (BackendError, 502, "backend_error"),
]


def from_qa_error(err: QAError) -> ApiError:
    """The status a deliberate qa error answers with (400 for the rest of the family)."""
    status, code = next(
        ((s, c) for cls, s, c in _STATUS if isinstance(err, cls)), (400, "invalid_request")
    )
    return ApiError(status, str(err), code=code)


def queue_full(err: QueueFull) -> ApiError:
    return ApiError(429, str(err), code="queue_full", headers={"Retry-After": str(err.retry_after)})


def _validation(err: RequestValidationError) -> ApiError:
    problems = err.errors()
    first = problems[0] if problems else {}
    if first.get("type") == "json_invalid":
        return ApiError(400, "The body is not valid JSON: " + str(first.get("msg", "")))
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    where = f"{param}: " if param else ""
    more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
    return ApiError(400, f"{where}{first.get('msg', 'invalid request')}{more}", param=param)


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` in OpenAI's shape."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, err: ApiError) -> JSONResponse:
        return err.response()

    @app.exception_handler(QueueFull)
    async def full(_: Request, err: QueueFull) -> JSONResponse:
        return queue_full(err).response()

    @app.exception_handler(QAError)
    async def qa_error(_: Request, err: QAError) -> JSONResponse:
        return from_qa_error(err).response()

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        return _validation(err).response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, err: StarletteHTTPException) -> JSONResponse:
        return ApiError(err.status_code, str(err.detail), headers=err.headers).response()

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=err)
        return ApiError(500, "Something went wrong; details are in the server log").response()
