"""What a client gets when the worker refuses its request before the app sees it.

One (status, reason, error code, message) per refusal, so gunicorn's own parse errors answer in
the same JSON error shape as the app's (app/api/errors.py).
"""

from __future__ import annotations

from gunicorn.http import errors as herrors

from app.services.errors import ErrorCode

INTERNAL_ERROR = (
    500,
    "Internal Server Error",
    ErrorCode.INTERNAL_ERROR,
    "Something went wrong on our side. Please try again.",
)
# (status, reason, code, message) per gunicorn parse error; anything else a client sends wrong is 400.
CLIENT_ERRORS: list[tuple[type[Exception], int, str, ErrorCode, str]] = [
    (herrors.LimitRequestLine, 414, "URI Too Long", ErrorCode.URI_TOO_LONG, "The request line is too long."),
    (
        herrors.LimitRequestHeaders,
        431,
        "Request Header Fields Too Large",
        ErrorCode.HEADERS_TOO_LARGE,
        "The request headers are too large.",
    ),
    (
        herrors.UnsupportedTransferCoding,
        501,
        "Not Implemented",
        ErrorCode.NOT_IMPLEMENTED,
        "This Transfer-Encoding is not supported.",
    ),
    (
        herrors.ExpectationFailed,
        417,
        "Expectation Failed",
        ErrorCode.EXPECTATION_FAILED,
        "This Expect header is not supported.",
    ),
    (herrors.ForbiddenProxyRequest, 403, "Forbidden", ErrorCode.FORBIDDEN, "Request forbidden."),
    # gunicorn's own settings contradict each other: not the client's fault.
    (herrors.ConfigurationProblem, *INTERNAL_ERROR),
]
INVALID_REQUEST = (400, "Bad Request", ErrorCode.BAD_REQUEST, "The request is not valid HTTP.")
TOO_LARGE = (413, "Content Too Large", ErrorCode.PAYLOAD_TOO_LARGE, "The body is too large.")
TIMEOUT = (408, "Request Timeout", ErrorCode.REQUEST_TIMEOUT, "The request did not arrive in time.")


def error_for(exc: BaseException) -> tuple[int, str, str, str]:
    """The (status, reason, code, message) answering one of gunicorn's parse errors."""
    for kind, status, reason, code, message in CLIENT_ERRORS:
        if isinstance(exc, kind):
            return status, reason, code, message
    if isinstance(exc, herrors.ParseException):
        return INVALID_REQUEST
    return INTERNAL_ERROR
