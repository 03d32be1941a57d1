"""The front door: `GET /` answers JSON to API clients and a chat page to browsers; the page,
driven in headless Chromium (Debian's `chromium`, through Playwright), streams an answer with
source links and keeps the conversation for follow-ups.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import replace

import pytest
from werkzeug.serving import make_server

from app import create_app
from app.database import upgrade_database
from app.version import __version__
from tests.conftest import ROOT

# What API clients got from GET / before the page existed, and still get.
ROOT_JSON = {
    "service": "docusaurus-book-chat",
    "description": "Chat backend for a Docusaurus book: hybrid retrieval, grounded answers, SSE.",
    "version": __version__,
    "docs": "/docs",
    "endpoints": {
        "chat": "POST /api/chat",
        "conversation": "GET /api/conversation/<id>",
        "health": "GET /api/health",
        "liveness": "GET /api/health/live",
    },
}
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# --- content negotiation (no browser needed) ---------------------------------------------------


@pytest.mark.parametrize("accept", [None, "*/*", "application/json", "application/json, text/plain, */*"])
def test_api_clients_keep_getting_the_json(client, accept):
    response = client.get("/", headers={"Accept": accept} if accept else {})
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert json.loads(response.get_data()) == ROOT_JSON
    assert list(json.loads(response.get_data())) == list(ROOT_JSON)  # same order too
    assert "Accept" in response.headers["Vary"]


@pytest.mark.parametrize("accept", [BROWSER_ACCEPT, "text/html"])
def test_browsers_get_the_chat_page(client, accept):
    response = client.get("/", headers={"Accept": accept})
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert "Accept" in response.headers["Vary"]
    page = response.get_data(as_text=True)
    # The page is the book's widget, full page: one client to keep.
    assert '<script src="/widget.js" data-mode="page"' in page
    assert "<script>" not in page and "style=" not in page, "no inline script or style (CSP)"
    assert "http://" not in page and "https://" not in page, "no CDN: everything is served here"
    for asset, kind in [("/widget.js", "javascript"), ("/widget.css", "css")]:
        served = client.get(asset)
        assert served.status_code == 200 and kind in served.mimetype
        served.close()


def test_the_widget_reads_the_stream_like_the_seed_widget_and_never_writes_html():
    source = (ROOT / "app" / "static" / "widget.js").read_text(encoding="utf-8")
    assert "buffer.split('\\n')" in source and "line.indexOf('data: ') !== 0" in source
    assert "innerHTML" not in source and "insertAdjacentHTML" not in source and "document.write" not in source


# --- in headless Chromium ------------------------------------------------------------------------


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    reason = "Debian's chromium is not installed (apt-get install -y chromium; .ci/run installs it)"
    if os.environ.get("CI"):
        pytest.fail(reason + " — CI must run the browser test")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, driven by Playwright (its own browser download is never used)."""
    executable = _chromium()
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (requirements-dev.txt)"
    )
    profile = tempfile.mkdtemp(prefix="chat-page-chromium-")
    with sync_api.sync_playwright() as playwright:
        # A persistent context is how Playwright takes a --user-data-dir: a fresh, empty profile.
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=executable,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1000, "height": 800},
        )
        try:
            yield context
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def site_url() -> str:
    """BOOK_SITE_URL of the served app (overridden by tests of the no-site case)."""
    return "https://garden.example.com"


@pytest.fixture
def served(make_settings, tuning, site_url) -> Iterator[str]:
    """The app (fixture book, a typing pace so streaming is visible) on a real HTTP server."""
    typing = replace(tuning, token_delay_seconds=0.015)
    application = create_app(make_settings(book_site_url=site_url), typing)
    upgrade_database(application)
    services = application.extensions["services"]
    services.startup.run()
    assert services.startup.state == "ready"
    server = make_server("127.0.0.1", 0, application, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)
        with application.app_context():
            from app.extensions import db

            db.engine.dispose()


@pytest.fixture
def page(browser, served):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # Script errors fail the test; a failed request is the server's answer, checked by the tests.
    page.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and not msg.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.goto(served)
    yield page
    page.close()
    assert not errors, errors


def _ask(page, question: str, answers: int) -> None:
    """Type a question, send it with Enter, wait for the `answers`-th finished answer."""
    box = page.get_by_role("textbox", name="Your question")
    box.fill(question)
    box.press("Enter")
    page.locator("[data-role=assistant]:has([data-vote])").nth(answers - 1).wait_for(timeout=30_000)


def test_a_question_streams_a_markdown_answer_with_cited_sections(page, served):
    import requests

    sent: list[dict] = []
    page.on(
        "request", lambda r: sent.append(json.loads(r.post_data)) if r.url.endswith("/api/chat") else None
    )
    assert page.title() == "Ask the book"
    page.get_by_role("dialog", name="Ask the book").wait_for()

    box = page.get_by_role("textbox", name="Your question")
    box.fill("How often should I water tomatoes?")
    page.get_by_role("button", name="Send").click()
    # Tokens show while the answer is still streaming (no vote buttons until `done`).
    page.wait_for_selector("[data-role=assistant]:not(:has([data-vote])) .text p")
    page.locator("[data-role=assistant]:has([data-vote])").first.wait_for(timeout=30_000)
    answer = page.locator("[data-role=assistant]").last
    assert "two or three times a week" in answer.inner_text()
    assert "**" not in answer.locator(".text").inner_text()  # Markdown rendered, not shown
    citation = answer.locator(".text a.cite").first
    href = citation.get_attribute("href")
    assert href.startswith("https://garden.example.com/guides/watering") and "#" in href, href
    assert answer.locator(".sources a").first.get_attribute("href").startswith("https://garden.example.com/")
    assert sent[0]["format"] == "markdown" and "conversation_id" not in sent[0]
    assert sent[0]["page"] == served + "/"

    # A vote reaches the service; a second replaces it.
    with page.expect_response("**/api/feedback") as first_vote:
        answer.get_by_role("button", name="Helpful", exact=True).click()
    assert first_vote.value.status == 201
    with page.expect_response("**/api/feedback") as second_vote:
        answer.get_by_role("button", name="Not helpful").click()
    assert second_vote.value.status == 200
    assert answer.get_by_role("button", name="Not helpful").get_attribute("aria-pressed") == "true"

    # A follow-up continues the conversation.
    _ask(page, "And herbs?", 2)
    cid = sent[1]["conversation_id"]
    stored = requests.get(f"{served}/api/conversation/{cid}", timeout=5).json()["messages"]
    assert [m["role"] for m in stored] == ["user", "assistant", "user", "assistant"]
    assert stored[1]["feedback"] == {"vote": "down", "comment": None}  # the second vote replaced the first

    # After a reload the conversation is restored from the service.
    page.reload()
    page.locator("[data-role=assistant]:has([data-vote])").nth(1).wait_for(timeout=10_000)
    first = page.locator("[data-role=assistant]").first
    assert first.get_by_role("button", name="Not helpful").get_attribute("aria-pressed") == "true"

    # New chat forgets it.
    page.get_by_role("button", name="New chat").click()
    assert page.locator("[data-role]").count() == 0
    _ask(page, "Basil?", 1)
    assert "conversation_id" not in sent[2]


def test_text_from_the_reader_and_the_server_is_never_markup(page):
    hostile = '<img src=x onerror="window.__owned = 1"><b>bold?</b>'
    _ask(page, hostile, 1)
    assert page.locator("[data-role=user] p").inner_text() == hostile
    assert page.locator("[data-part=log] img, [data-part=log] b").count() == 0
    assert page.evaluate("window.__owned") is None


def test_an_api_error_is_shown_and_the_question_kept(page):
    page.route(
        "**/api/chat",
        lambda route: route.fulfill(
            status=500,
            content_type="application/json",
            body=json.dumps({"status": 500, "error": "internal", "message": "Something broke."}),
        ),
    )
    box = page.get_by_role("textbox", name="Your question")
    box.fill("Anything?")
    box.press("Enter")
    assert page.get_by_role("alert").inner_text(timeout=10_000) == "Something broke."
    assert box.input_value() == "Anything?", "the reader can send it again"


@pytest.mark.parametrize("site_url", [""])
def test_without_a_book_site_a_citation_opens_the_sections_text(page, served):
    _ask(page, "How often should I water tomatoes?", 1)
    answer = page.locator("[data-role=assistant]").last
    assert answer.locator("a").count() == 0  # no link to a page this service does not serve
    citation = answer.get_by_role("button", name="Source 1:", exact=False).first
    section = answer.locator(".sources details").first
    assert section.get_attribute("open") is None
    citation.click()
    assert section.get_attribute("open") is not None
    assert "two or three times a week" in section.inner_text()


def test_stop_aborts_the_answer_and_the_finished_answer_is_announced(page, served):
    import requests

    sent: list[dict] = []
    page.on(
        "request", lambda r: sent.append(json.loads(r.post_data)) if r.url.endswith("/api/chat") else None
    )
    _ask(page, "How often should I water tomatoes?", 1)
    announced = page.locator("[data-part=announcer]").text_content()
    assert "two or three times a week" in announced
    box = page.get_by_role("textbox", name="Your question")
    box.fill("And herbs?")
    box.press("Enter")
    page.wait_for_selector("[data-role=assistant]:not(:has([data-vote])) .text p")
    page.get_by_role("button", name="Stop").click()
    page.get_by_role("button", name="Send").wait_for()
    cid = sent[1]["conversation_id"]
    for _ in range(50):  # the service notices the closed connection at its next token
        stored = requests.get(f"{served}/api/conversation/{cid}", timeout=5).json()["messages"]
        if stored[-1]["status"] == "interrupted":
            break
        page.wait_for_timeout(100)
    assert stored[-1]["status"] == "interrupted"


def _first_answered(status: int, body: str):
    """A route handler that answers its first request itself, then lets the rest through; and
    the list of the requests it has seen."""
    seen: list[int] = []

    def handle(route):
        seen.append(1)
        if len(seen) == 1:
            route.fulfill(status=status, content_type="application/json", body=body)
        else:
            route.continue_()

    return handle, seen


def test_a_waking_service_is_retried_and_a_rate_limit_says_when(page):
    waking_then_up, calls = _first_answered(503, '{"status": 503, "message": "starting"}')
    # A 503 is a cold start only when health says so: the widget asks, then polls until ready.
    starting_once, _ = _first_answered(503, '{"status": "starting"}')
    page.route("**/api/chat", waking_then_up)
    page.route("**/api/health", starting_once)
    box = page.get_by_role("textbox", name="Your question")
    box.fill("How often should I water tomatoes?")
    box.press("Enter")
    assert page.get_by_role("alert").inner_text(timeout=5_000).startswith("Waking up")
    page.locator("[data-role=assistant]:has([data-vote])").first.wait_for(timeout=30_000)
    assert len(calls) == 2 and page.get_by_role("alert").is_hidden()

    page.unroute("**/api/chat")
    page.route(
        "**/api/chat",
        lambda route: route.fulfill(
            status=429,
            headers={"Retry-After": "42"},
            content_type="application/json",
            body='{"status": 429, "error": "rate_limited", "message": "Too many"}',
        ),
    )
    box.fill("And herbs?")
    box.press("Enter")
    assert "42 s" in page.get_by_role("alert").inner_text(timeout=5_000)
    assert box.input_value() == "And herbs?"
