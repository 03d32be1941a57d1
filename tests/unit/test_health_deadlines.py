"""HealthService: each check with its own deadline, a hung one reported as a timeout and never
run twice at once, and its real result shown as soon as it comes."""

from __future__ import annotations

import threading
import time

from app.services.health import HealthService

DEADLINE = 0.2


class Blocking:
    """A check that hangs until released, counting its runs."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.runs = 0

    def __call__(self) -> dict:
        self.runs += 1
        self.release.wait(10)
        return {"state": "up", "backend": "postgresql"}


def health(check: Blocking, cache_seconds: float = 0) -> HealthService:
    """A ready service with the blocking check as `database` and an instant one as `index`."""
    return HealthService(
        {"database": check, "index": lambda: {"state": "up", "points": 3}},
        startup_state=lambda: "ready",
        cache_seconds=cache_seconds,
        deadline_seconds=DEADLINE,
    )


def timed_report(service: HealthService):
    """The report and how long it took."""
    started = time.monotonic()
    report = service.report()
    return report, time.monotonic() - started


def test_a_hung_check_is_down_with_a_timeout_after_the_deadline_and_delays_nothing_else():
    check = Blocking()
    try:
        report, elapsed = timed_report(health(check))
        assert report.status == "degraded" and report.http_status == 503
        assert report.services["database"]["state"] == "down"
        assert report.services["database"]["error"] == "timeout"
        assert report.services["index"]["state"] == "up"
        assert report.services["index"]["latency_ms"] < DEADLINE * 1000
        assert DEADLINE <= elapsed < DEADLINE + 1
    finally:
        check.release.set()


def test_probes_during_a_hang_join_the_run_in_progress_instead_of_starting_another():
    check = Blocking()
    service = health(check)
    try:
        reports = []
        probes = [threading.Thread(target=lambda: reports.append(service.report())) for _ in range(5)]
        for probe in probes:
            probe.start()
        for probe in probes:
            probe.join(5)
        assert len(reports) == 5 and all(r.services["database"]["error"] == "timeout" for r in reports)
        assert check.runs == 1
        assert service.report().services["database"]["latency_ms"] >= DEADLINE * 1000  # still that run
        assert check.runs == 1
    finally:
        check.release.set()


def test_the_result_of_a_hung_check_is_the_next_answer_once_it_comes():
    check = Blocking()
    service = health(check, cache_seconds=60)
    assert service.report().status == "degraded"
    report, elapsed = timed_report(service)  # the timeout is remembered: no second wait
    assert report.services["database"]["error"] == "timeout" and elapsed < DEADLINE
    check.release.set()
    deadline = time.monotonic() + 5
    while service.report().status != "healthy":
        assert time.monotonic() < deadline, "health did not recover"
        time.sleep(0.02)
    database = service.report().services["database"]
    assert (database["state"], database["backend"], check.runs) == ("up", "postgresql", 1)


def test_a_check_that_raises_is_down_with_its_class_only():
    def broken() -> dict:
        raise ConnectionError("postgresql://user:hunter22@db/x")

    report = HealthService(
        {"database": broken}, startup_state=lambda: "ready", cache_seconds=0, deadline_seconds=DEADLINE
    ).report()
    assert report.services["database"]["state"] == "down"
    assert report.services["database"]["error"] == "ConnectionError"
    assert "hunter22" not in str(report.as_dict())
