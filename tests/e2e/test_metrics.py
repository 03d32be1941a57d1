"""/metrics under a real gunicorn with 2 workers: it parses with Prometheus' own text parser and its
counters add up to the requests made, whichever worker served them."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from app.observability.metrics_folder import metrics_folder
from app.tuning import Tuning
from tests.support.service import METRICS_AUTH, NO_LIMITS, Service, typing_pace, widget_chat

pytestmark = pytest.mark.e2e

HEALTH_CALLS = 60
MISSES = 4
QUESTIONS = [
    "How do I deploy to Hugging Face Spaces?",
    "How do I configure CORS?",
    "What does the health endpoint report?",
    "How do I run the tests?",
]


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    svc = Service(
        tmp_path_factory.mktemp("metrics"),
        RATE_LIMIT_CHAT="100000/minute",
        tuning=Tuning(**typing_pace(5), **NO_LIMITS),
    )
    try:
        svc.wait_healthy()
        yield svc
    finally:
        svc.stop()


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics, keyed by (name, sorted labels)."""
    response = requests.get(f"{url}/metrics", headers=METRICS_AUTH, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def requests_of(samples, route, status) -> float:
    return value(
        samples,
        "http_request_duration_seconds_count",
        method="GET" if route != "/api/chat" else "POST",
        route=route,
        status=str(status),
    )


def fresh_get(url: str) -> int:
    # A new connection per call, so the two workers share the calls (keep-alive would pin one).
    return requests.get(url, timeout=10, headers={"Connection": "close"}).status_code


def worker_pids(service: Service) -> set[int]:
    children = Path(f"/proc/{service.proc.pid}/task/{service.proc.pid}/children").read_text().split()
    return {int(pid) for pid in children}


def test_metrics_add_up_across_two_workers(service):
    before = scrape(service.url)

    statuses: Counter[int] = Counter()
    lock = threading.Lock()

    def hammer(calls: int) -> None:
        for _ in range(calls):
            status = fresh_get(f"{service.url}/api/health/live")
            with lock:
                statuses[status] += 1

    threads = [threading.Thread(target=hammer, args=(HEALTH_CALLS // 6,)) for _ in range(6)]
    for thread in threads:
        thread.start()
    chats = [widget_chat(service.url, {"message": q}) for q in QUESTIONS]  # first time: misses
    chats += [
        widget_chat(service.url, {"message": q}) for q in QUESTIONS
    ]  # hits where the same worker answers
    for thread in threads:
        thread.join()
    missing = [fresh_get(f"{service.url}/no/such/page") for _ in range(3)]
    assert statuses == {200: HEALTH_CALLS} and missing == [404] * 3
    assert all(events[-1]["type"] == "done" for events in chats)

    scrapes = [scrape(service.url) for _ in range(4)]  # each scrape may be answered by either worker
    for after in scrapes:

        def delta(name, after=after, **labels):
            return value(after, name, **labels) - value(before, name, **labels)

        assert (
            requests_of(after, "/api/health/live", 200) - requests_of(before, "/api/health/live", 200)
            == HEALTH_CALLS
        )
        assert requests_of(after, "<unmatched>", 404) - requests_of(before, "<unmatched>", 404) == 3
        assert requests_of(after, "/api/chat", 200) - requests_of(before, "/api/chat", 200) == len(chats)
        assert delta("chat_turns_total", status="complete", source="offline") + delta(
            "chat_turns_total", status="complete", source="cache"
        ) == len(chats)
        hits = delta("answer_cache_lookups_total", result="hit")
        misses = delta("answer_cache_lookups_total", result="miss")
        assert hits + misses == len(chats) and misses >= MISSES
        assert delta("chat_turns_total", status="complete", source="cache") == hits
        assert delta("chat_first_token_seconds_count", source="offline") == misses
        assert delta("chat_retrieval_seconds_count") == misses  # a hit skips retrieval
        assert value(after, "chat_active_streams") == 0
        assert value(after, "db_pool_checked_out") == 0
        assert value(after, "db_pool_checked_out_peak") >= 1
        # A histogram's buckets agree with its count.
        assert value(
            after,
            "http_request_duration_seconds_bucket",
            method="GET",
            route="/api/health/live",
            status="200",
            le="+Inf",
        ) == requests_of(after, "/api/health/live", 200)

    # Both workers wrote samples: the sums above really are across processes.
    folder = metrics_folder(Path(service.env["INSTANCE_PATH"]))
    writers = {int(p.stem.rsplit("_", 1)[1]) for p in folder.glob("histogram_*.db")}
    assert len(writers & worker_pids(service)) == 2, (writers, worker_pids(service))


def test_metrics_is_not_rate_limited_and_not_logged(service):
    for _ in range(30):
        assert requests.get(f"{service.url}/metrics", headers=METRICS_AUTH, timeout=10).status_code == 200
    # A healthy probe is a DEBUG line (the image's HEALTHCHECK probes every 30 s); an ordinary
    # request still gets its INFO line.
    assert requests.get(f"{service.url}/api/health/live", timeout=10).status_code == 200
    assert requests.get(f"{service.url}/no/such/page", timeout=10).status_code == 404
    log = service.log()
    assert '"route": "<unmatched>"' in log
    assert '"route": "/metrics"' not in log
    assert '"route": "/api/health/live"' not in log


def test_metrics_are_not_public(service):
    # Traffic, Gemini calls and token counts are for the operator's scraper only.
    for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": "Basic dGVzdA=="}):
        response = requests.get(f"{service.url}/metrics", headers=headers, timeout=10)
        assert response.status_code == 401 and response.json()["error"] == "unauthorized"
        assert "chat_" not in response.text and response.headers["WWW-Authenticate"].startswith("Bearer")
