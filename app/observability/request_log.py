"""Request ids, one log line per request, one per chat turn, and request metrics.

- Request id: the client's `X-Request-ID` when it is a sane token (letters, digits, `._:-`, at
  most 128 characters), else a new uuid4 hex; echoed in the `X-Request-ID` response header and
  carried by every log line written while the request is served.
- The request line (logger `app.request`): method, route (the URL rule, e.g.
  `/api/conversation/<conversation_id>`, never the raw path), status, duration_ms. It is
  written when the response is returned: for an SSE answer that is when its headers leave (after
  the first piece of the answer), not when the stream ends.
- The chat line (logger `app.chat`): written when a turn ends — for a stream, when the stream
  ends — with conversation_id, message_id, status, retrieval_ms, first_token_ms, total_ms,
  tokens and cached.
- `GET /metrics` is measured but not logged (a scraper calls it every few seconds).
- Health probes (`/api/health`, `/api/health/live`) that answer 200 are logged at DEBUG: the
  image's HEALTHCHECK and the platform probe every 30 s, forever. A probe that fails (503
  starting / degraded) stays at INFO, so a change of state is in the log.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, Response, g, request

from app.logging_setup import current_request_id
from app.observability.metrics import observe_request
from app.services.observer import Observer, TurnReport

request_log = logging.getLogger("app.request")
chat_log = logging.getLogger("app.chat")

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_QUIET_ROUTES = {"/metrics"}
_PROBE_ROUTES = {"/api/health", "/api/health/live"}


def request_id_from(header: str | None) -> str:
    """The client's id when it is a sane token, else a fresh one."""
    if header and _SANE_ID.match(header):
        return header
    return uuid.uuid4().hex


def install(app: Flask) -> None:
    """Give every request an id, log it once and measure it."""

    def start() -> None:
        g.request_started = time.perf_counter()
        g.request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        current_request_id.set(g.request_id)

    def finish(response: Response) -> Response:
        started = g.get("request_started")
        request_id = g.get("request_id") or request_id_from(None)
        response.headers[REQUEST_ID_HEADER] = request_id
        seconds = time.perf_counter() - started if started is not None else 0.0
        route = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
        observe_request(request.method, route, response.status_code, seconds)
        if route not in _QUIET_ROUTES:
            healthy_probe = route in _PROBE_ROUTES and response.status_code == 200
            request_log.log(
                logging.DEBUG if healthy_probe else logging.INFO,
                "%s %s %s",
                request.method,
                route,
                response.status_code,
                extra={
                    "fields": {
                        "event": "request",
                        "request_id": request_id,
                        "method": request.method,
                        "route": route,
                        "status": response.status_code,
                        "duration_ms": round(seconds * 1000, 1),
                    }
                },
            )
        # A stream is still being served after this returns: keep the id until it is closed.
        response.call_on_close(lambda: current_request_id.set(None))
        return response

    # First, so a request refused by another hook (a rate limit) still gets an id and a line.
    app.before_request_funcs.setdefault(None, []).insert(0, start)
    app.after_request(finish)


def log_chat_turn(report: TurnReport) -> None:
    """The chat line: one per turn, when it ends."""
    fields = {"event": "chat", "request_id": current_request_id.get(), **report.as_dict()}
    tokens = [t for t in (report.prompt_tokens, report.completion_tokens) if t is not None]
    fields["tokens"] = sum(tokens) if tokens else None
    chat_log.info("chat turn %s %s", report.status, report.message_id, extra={"fields": fields})


class ChatLogObserver(Observer):
    """Writes the chat line when a turn ends (every other event is the metrics' business)."""

    def turn_finished(self, report: TurnReport, *, streamed: bool) -> None:
        try:
            log_chat_turn(report)
        except Exception:
            logging.getLogger(__name__).debug("chat log line failed", exc_info=True)
