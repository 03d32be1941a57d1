"""One JSON error shape for every failure: {"status", "error", "message", "details"?}.

Never HTML, never a stack trace: unexpected exceptions are logged server-side and the client
gets a generic 500 body. Domain and database errors become responses here, once for every route
(views do not catch them): an unknown conversation or message is 404, an unavailable dependency
503 (or 429 for an exhausted quota) with Retry-After, a database that cannot be reached 503
`database_unavailable`.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from app.api.schemas import ErrorBody, wire
from app.services.conversations import ConversationNotFound
from app.services.errors import ErrorCode, ServiceUnavailable
from app.services.feedback import MessageNotFound, NotAnAnswer

log = logging.getLogger(__name__)

# Stable machine-readable names for the statuses this API uses.
_CODES = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.UNAUTHORIZED,
    404: ErrorCode.NOT_FOUND,
    408: ErrorCode.REQUEST_TIMEOUT,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    414: ErrorCode.URI_TOO_LONG,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    422: ErrorCode.VALIDATION_ERROR,
    429: ErrorCode.RATE_LIMITED,
    431: ErrorCode.HEADERS_TOO_LARGE,
    500: ErrorCode.INTERNAL_ERROR,
    503: ErrorCode.UNAVAILABLE,
}


class ApiError(Exception):
    """An error the API reports as is: a status, a code and a message safe to show."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: ErrorCode | None = None,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or _CODES.get(status, ErrorCode.ERROR)
        self.message = message
        self.details = details
        self.headers = headers or {}


def error_response(
    status: int,
    message: str,
    *,
    code: ErrorCode | None = None,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Build the JSON error response."""
    body: dict[str, Any] = {
        "status": status,
        "error": code or _CODES.get(status, ErrorCode.ERROR),
        "message": message,
    }
    if details:
        body["details"] = details
    response = jsonify(wire(ErrorBody, body))
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def register(app: Flask) -> None:
    """Install the handlers on the app."""

    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> Response:
        return error_response(
            error.status, error.message, code=error.code, details=error.details, headers=error.headers
        )

    @app.errorhandler(ConversationNotFound)
    def _no_conversation(_error: ConversationNotFound) -> Response:
        return error_response(404, "No conversation with this id.")

    @app.errorhandler(MessageNotFound)
    def _no_message(_error: MessageNotFound) -> Response:
        return error_response(404, "No message with this id.")

    @app.errorhandler(NotAnAnswer)
    def _not_an_answer(_error: NotAnAnswer) -> Response:
        return error_response(
            422,
            "Invalid request: message_id.",
            details=[
                {"field": "message_id", "problem": "is the reader's message; only answers can be voted on"}
            ],
        )

    @app.errorhandler(ServiceUnavailable)
    def _unavailable(error: ServiceUnavailable) -> Response:
        status = 429 if error.http_status == 429 else 503
        headers = {"Retry-After": str(error.retry_after)} if error.retry_after else None
        return error_response(status, error.message, code=error.code, headers=headers)

    @app.errorhandler(SQLAlchemyError)
    def _database_error(error: SQLAlchemyError) -> Response:
        if not _database_unreachable(error):
            return _unexpected(error)
        # The type only: the message may carry the host and user of the database URL.
        log.warning("database unavailable: %s", type(getattr(error, "orig", None) or error).__name__)
        return error_response(
            503,
            "The database is unavailable right now; please retry shortly.",
            code=ErrorCode.DATABASE_UNAVAILABLE,
            headers={"Retry-After": "5"},
        )

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        status = error.code or 500
        response = error_response(status, error.description or error.name)
        if status == 405 and isinstance(error, MethodNotAllowed) and error.valid_methods:
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "Something went wrong on our side. Please try again.")


def _database_unreachable(error: SQLAlchemyError) -> bool:
    """A database that is down, restarting, out of connections or too slow (a statement timeout),
    as opposed to a query the code got wrong (a bug, 500)."""
    if isinstance(error, (OperationalError, InterfaceError, PoolTimeout)):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated
