"""Abuse limits and browser security: who the client is, how often it may call, how many answers
it may have in progress, and the headers every response carries.

- The client is its IP address. Behind a proxy (a Hugging Face Space sits behind one) the proxy's
  own address would be everyone's, so `X-Forwarded-For` is honoured for exactly `PROXY_HOPS`
  hops (werkzeug's ProxyFix) and ignored otherwise, so a client cannot pick its own identity.
- Rate limits (Flask-Limiter, moving window) per client and per route: `RATE_LIMIT_CHAT` for
  `POST /api/chat`; the app's tuning (app/tuning.py) for the probes and for the rest. With
  `REDIS_URL` the counters are shared by every worker; otherwise each worker counts in memory.
  A Redis outage never fails a request: after one timeout this worker stops asking Redis and
  counts in memory until Redis answers again (app/api/redis_breaker.py), logged once.
- At most `max_streams_per_client` answers in progress per client (shared through Redis too),
  each slot a lease renewed while its stream sends.
- The 429 has the API's JSON error shape and a `Retry-After` header.
- Every response carries nosniff, a Referrer-Policy and a same-origin Content-Security-Policy
  whose `frame-ancestors` lets the Space page on huggingface.co frame the service.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, cast

from flask import Blueprint, Flask, Response, current_app, request
from flask_limiter import Limiter, RateLimitExceeded
from werkzeug.middleware.proxy_fix import ProxyFix

from app.api.errors import ApiError, error_response
from app.config import ConfigError, Settings
from app.services.errors import ErrorCode
from app.tuning import Tuning

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)

# Credentials (cookies, Authorization) are never accepted cross-origin: the API has no sessions.
CORS_SUPPORTS_CREDENTIALS = False
# Headers a cross-origin widget may read (it needs Retry-After to back off politely).
CORS_EXPOSE_HEADERS = ["Retry-After", "X-Request-ID"]  # a widget on another origin may read them
_REDIS_PREFIX = "book-chat"


def check_cors(origins: list[str], supports_credentials: bool) -> None:
    """Refuse to start with a wildcard origin and credentials together (browsers would let any
    site act as the signed-in reader)."""
    if supports_credentials and "*" in origins:
        raise ConfigError("ALLOWED_ORIGINS: '*' cannot be combined with credentials; list the origins")


def client_address() -> str:
    """The client's IP (after ProxyFix has applied PROXY_HOPS), the key of every limit."""
    return request.remote_addr or "unknown"


def install(app: Flask, settings: Settings, tuning: Tuning) -> None:
    """Wire client identity, rate limits, the stream cap and security headers into the app, with
    the limits of `tuning`."""
    if settings.proxy_hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_hops)  # type: ignore[method-assign]  # ProxyFix wraps the WSGI callable, as Flask documents
    else:
        _warn_once_about_forwarded_for(app)
    # One Redis pool and breaker for both: an outage met by the limiter spares the stream cap's
    # call in the same request, and the other way round.
    shared = None
    if settings.redis_url is not None:
        from app.api.redis_breaker import shared_redis  # imports redis: only when it is used

        shared = shared_redis(settings.redis_url.get_secret_value())
    app.extensions["rate_limiter"] = _install_limiter(app, settings, tuning, shared)
    app.extensions["stream_slots"] = StreamSlots(
        tuning.max_streams_per_client,
        shared,
        lease=tuning.stream_lease_seconds,
        renew_every=tuning.stream_renew_seconds,
    )
    _install_headers(app, settings)


# --- rate limits -----------------------------------------------------------------------------------


def _install_limiter(app: Flask, settings: Settings, tuning: Tuning, shared: redis.Redis | None) -> Limiter:
    redis_options: dict[str, Any] = {}
    if shared is not None and settings.redis_url is not None:
        storage_uri = settings.redis_url.get_secret_value()
        # limits' RedisStorage takes a pool: ours, with its timeouts and its breaker.
        redis_options = {"connection_pool": shared.connection_pool}
    else:
        storage_uri = "memory://"
    # One limiter per app (not a module global): each app has its own storage and limits, so two
    # apps in one process (tests, flask shell) never share or overwrite each other's counters.
    limiter = Limiter(
        key_func=client_address,
        default_limits=[tuning.rate_limit_default],
        storage_uri=storage_uri,
        storage_options=redis_options,
        strategy="moving-window",
        # Flask-Limiter's own headers would put Retry-After on every response (and overwrite the
        # one an upstream 429 carries); the 429 handler below sets it where it belongs.
        headers_enabled=False,
        key_prefix=_REDIS_PREFIX,
        swallow_errors=True,
        # Flask-Limiter's own fallback: on a storage error it counts in memory, and asks the
        # storage (PING) again after 1, 2, 4 ... 32 s; the breaker makes those pings free while
        # Redis is out, so the limits are shared again at the first ping after Redis answers.
        in_memory_fallback_enabled=True,
    )
    limiter.init_app(app)
    for name, value in {"chat": settings.rate_limit_chat, "health": tuning.rate_limit_health}.items():
        blueprint = app.blueprints.get(name)
        # app.blueprints is typed with Flask's sans-IO base class; the ones registered here are
        # flask.Blueprint, which is what Flask-Limiter takes.
        if not isinstance(blueprint, Blueprint):
            continue
        if value:
            limiter.limit(value)(blueprint)
        else:
            limiter.exempt(blueprint)

    @limiter.request_filter
    def _preflight() -> bool:
        # A CORS preflight is the browser asking permission, not a call: never count it.
        return request.method == "OPTIONS"

    @app.errorhandler(RateLimitExceeded)
    def _rate_limited(error: RateLimitExceeded) -> Response:
        retry_after = _seconds_until_reset(limiter)
        return error_response(
            429,
            f"Too many requests: the limit is {error.description}. Try again in {retry_after} s.",
            code=ErrorCode.RATE_LIMITED,
            headers={"Retry-After": str(retry_after)},
        )

    return limiter


def _seconds_until_reset(limiter: Limiter) -> int:
    try:
        current = limiter.current_limit
        if current is not None:
            return max(1, math.ceil(current.reset_at - time.time()))
    except Exception:  # noqa: BLE001 - storage trouble: a sane default beats a 500
        pass
    return 60


def _warn_once_about_forwarded_for(app: Flask) -> None:
    warned = threading.Event()

    @app.before_request
    def _check_forwarded() -> None:
        if not warned.is_set() and "X-Forwarded-For" in request.headers:
            warned.set()
            log.warning(
                "requests carry X-Forwarded-For but PROXY_HOPS is 0: behind a proxy every client "
                "shares the proxy's rate limits; set PROXY_HOPS to the number of proxies"
            )


# --- concurrent answers per client -------------------------------------------------------------------


class StreamSlots:
    """Counts the answers each client has in progress; `acquire` refuses past the cap.

    In memory the count is per worker; with Redis it is shared: a sorted set per client whose
    members are leases (score: when it expires), renewed while the answer lives. If Redis fails,
    or its breaker is open, the count falls back to this worker's memory rather than failing the
    request (the breaker logs the outage, once).

    An acquire that failed on our side may still run on Redis later (a hung Redis runs the
    scripts it had received when it resumes): its token is remembered and removed from Redis
    at the first call once Redis answers again, and the lease frees it anyway within a minute.
    """

    _ACQUIRE = """
        redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
        if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
        redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
        redis.call('EXPIRE', KEYS[1], ARGV[5])
        return 1
    """

    def __init__(
        self, limit: int, redis_client: redis.Redis | None = None, *, lease: float, renew_every: float
    ) -> None:
        self.limit = limit
        self.lease = lease  # a slot nobody releases frees itself after this long
        self.renew_every = renew_every  # how often a live stream renews its slot's lease
        self._lock = threading.Lock()
        self._held: dict[str, dict[str, float]] = {}
        # Tokens whose acquire may have reached Redis without us hearing back: client -> token ->
        # when its lease would end (past that, Redis has dropped it by itself).
        self._unsettled: dict[str, dict[str, float]] = {}
        self._redis = redis_client
        self._acquire_script = redis_client.register_script(self._ACQUIRE) if redis_client else None

    def acquire(self, client: str) -> str | None:
        """A token for a new answer, or None when the client already has `limit` in progress."""
        token = uuid.uuid4().hex
        now = time.time()
        if self._redis is not None:
            from app.api.redis_breaker import RedisSkipped

            assert self._acquire_script is not None  # registered whenever there is a Redis client
            try:
                self._settle()
                ok = self._acquire_script(
                    keys=[self._key(client)],
                    args=[now, now + self.lease, self.limit, token, math.ceil(self.lease) + 1],
                )
                return token if ok else None
            except RedisSkipped:
                pass  # never sent: nothing to undo
            except Exception:  # noqa: BLE001 - Redis down: count in memory instead
                with self._lock:
                    self._unsettled.setdefault(client, {})[token] = now + self.lease
        with self._lock:
            held = self._held.setdefault(client, {})
            for stale in [t for t, expires in held.items() if expires <= now]:
                del held[stale]
            if len(held) >= self.limit:
                return None
            held[token] = now + self.lease
            return token

    def renew(self, client: str, token: str) -> None:
        """Extend a slot's lease by `lease` from now (a live stream calls this as it sends)."""
        expires = time.time() + self.lease
        with self._lock:
            held = self._held.get(client)
            if held is not None and token in held:
                held[token] = expires
                return
        if self._redis is not None:
            try:
                pipe = self._redis.pipeline(transaction=False)
                pipe.zadd(self._key(client), {token: expires}, xx=True)  # XX: never revive a released one
                pipe.expire(self._key(client), math.ceil(self.lease) + 1)
                pipe.execute()
            except Exception:  # noqa: BLE001 - the lease still runs; the breaker logged the outage
                pass

    def release(self, client: str, token: str) -> None:
        """Give the slot back (idempotent)."""
        with self._lock:
            held = self._held.get(client)
            if held is not None and held.pop(token, None) is not None:
                if not held:
                    del self._held[client]
                return
        if self._redis is not None:
            try:
                self._redis.zrem(self._key(client), token)
            except Exception:  # noqa: BLE001 - the lease frees it within a minute
                pass

    def in_use(self, client: str) -> int:
        """Answers this client has in progress (for tests and diagnostics)."""
        now = time.time()
        if self._redis is not None:
            try:
                # redis-py types every reply as `Awaitable | Any`; a synchronous client's is the reply.
                return int(cast(int, self._redis.zcount(self._key(client), now, "+inf")))
            except Exception:  # noqa: BLE001 - Redis down: count this process's own leases
                pass
        with self._lock:
            return sum(1 for expires in self._held.get(client, {}).values() if expires > now)

    def _settle(self) -> None:
        # Remove the tokens of acquires whose answer was lost. This runs only once Redis answers
        # again, after it has run what it had queued, so a late acquire is not re-added after its
        # removal. The request that holds such a token counts in memory, where its slot is.
        with self._lock:
            if not self._unsettled:
                return
            unsettled, self._unsettled = self._unsettled, {}
        now = time.time()
        assert self._redis is not None  # only acquire calls this, and only with a Redis client
        pipe = self._redis.pipeline(transaction=False)
        for client, tokens in unsettled.items():
            live = [token for token, expires in tokens.items() if expires > now]
            if live:
                pipe.zrem(self._key(client), *live)
        try:
            pipe.execute()
        except Exception:
            with self._lock:  # still out: try again next time
                for client, tokens in unsettled.items():
                    self._unsettled.setdefault(client, {}).update(tokens)
            raise

    @staticmethod
    def _key(client: str) -> str:
        return f"{_REDIS_PREFIX}:streams:{client}"


def cap_streams(view: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a view that produces an answer: 429 when the client already has
    `limit` answers in progress. The slot is held until a streamed response is
    closed (finished, or the reader went away) or, for a plain response, until the view returns.
    """

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        slots: StreamSlots = current_app.extensions["stream_slots"]
        client = client_address()
        token = slots.acquire(client)
        if token is None:
            raise ApiError(
                429,
                f"Too many answers in progress from this client (at most {slots.limit}); "
                "wait for one to finish.",
                code=ErrorCode.TOO_MANY_STREAMS,
                headers={"Retry-After": "5"},
            )
        try:
            response = current_app.make_response(view(*args, **kwargs))
        except BaseException:
            slots.release(client, token)
            raise
        if response.is_streamed:
            response.response = _hold_while_streaming(response.response, slots, client, token)
        else:
            slots.release(client, token)
        return response

    return wrapper


def _hold_while_streaming(body: Iterable[Any], slots: StreamSlots, client: str, token: str) -> Iterator[Any]:
    # Renews the slot's lease as the stream sends, and releases it when the stream ends, is closed
    # by the server (the reader left: the answer's own generator is closed first, as `yield from`
    # would), or is garbage-collected unsent.
    renewed = time.monotonic()
    iterator = iter(body)
    try:
        for chunk in iterator:
            yield chunk
            if time.monotonic() - renewed >= slots.renew_every:
                renewed = time.monotonic()
                slots.renew(client, token)
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
        slots.release(client, token)


# --- security headers ---------------------------------------------------------------------------------


def content_security_policy(frame_ancestors: list[str]) -> str:
    """Same-origin everything; inline styles allowed (Swagger UI sets style attributes), no inline
    scripts; framing by the service itself and the listed origins (the Space page)."""
    ancestors = " ".join(["'self'", *frame_ancestors])
    return (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; "
        f"base-uri 'self'; form-action 'self'; frame-ancestors {ancestors}"
    )


def security_headers(settings: Settings) -> dict[str, str]:
    """The headers every response carries (the gunicorn worker adds them to its own errors too)."""
    return {
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "strict-origin-when-cross-origin",
        "Content-Security-Policy": content_security_policy(settings.frame_ancestors),
        # No X-Frame-Options: it cannot name huggingface.co, and it would stop the Space page
        # from showing the app; frame-ancestors above is the modern, precise form.
    }


def _install_headers(app: Flask, settings: Settings) -> None:
    headers = security_headers(settings)
    app.extensions["security_headers"] = headers

    @app.after_request
    def _security_headers(response: Response) -> Response:
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        return response
