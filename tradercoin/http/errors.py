"""The one error shape of the HTTP API and the handlers that produce it.

Every failure answers ``{"status": "error", "error": {"code": ..., "message": ...}}`` with a
4xx status for anything the client can fix; an unexpected exception is logged with its
traceback on the server and answers a bare 500 of the same shape (never a traceback).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from pydantic import ValidationError
from quart import Quart, Response
from quart_schema import RequestSchemaValidationError
from werkzeug.exceptions import HTTPException

from tradercoin.http.messages import human_errors

__all__ = [
    "ApiError",
    "error_response",
    "install_error_handlers",
    "json_response",
    "validation_error",
    "validation_message",
]

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    411: "length_required",
    413: "body_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    429: "too_many_requests",
    431: "headers_too_large",
}


class ApiError(Exception):
    """Raised by a route to answer ``status`` with ``code`` and a human ``message``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.field = field


def error_response(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    field: str | None = None,
) -> Response:
    """A JSON error response of the API's one shape; ``field`` names the input at fault."""
    error: dict[str, str] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    body = json.dumps({"status": "error", "error": error})
    return Response(body, status=status, content_type="application/json", headers=headers)


def json_response(data: Any, status: int = 200) -> Response:
    """A compact JSON response (money must already be strings)."""
    return Response(
        json.dumps(data, separators=(",", ":")), status, content_type="application/json"
    )


def validation_message(error: ValidationError) -> str:
    """Sentences naming each bad field by its label and what it must be (no input echoed)."""
    return human_errors(error)[0]


def validation_error(error: ValidationError) -> ApiError:
    """The 400 ``invalid_request`` for ``error``, with the first bad field named."""
    message, field = human_errors(error)
    return ApiError(400, "invalid_request", message, field=field)


async def _api_error(error: ApiError) -> Response:
    return error_response(error.status, error.code, error.message, error.headers, error.field)


async def _schema_error(error: RequestSchemaValidationError) -> Response:
    cause: Any = error.validation_error
    if isinstance(cause, ValidationError):
        return await _api_error(validation_error(cause))
    return error_response(400, "invalid_request", "The request is not valid.")


async def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    code = _HTTP_CODES.get(status, "bad_request" if status < 500 else "server_error")
    message = {
        400: "malformed request (is the body valid JSON?)",
        404: "no such resource",
        413: "request body too large",
    }.get(status, error.description or error.name)
    return error_response(status, code, message)


async def _unexpected(error: Exception) -> Response:
    log.exception("unhandled error in a request", exc_info=error)
    return error_response(500, "internal", "internal error; it has been logged")


def install_error_handlers(app: Quart) -> None:
    """Make every error of ``app`` answer in the API's shape."""
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(RequestSchemaValidationError, _schema_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
