"""The widget on a book's page of another origin, as a book owner adds it (one script tag), in
headless Chromium: nothing is fetched before the reader opens it, a citation opens the section in
place and the conversation survives the navigation, Esc closes, a selection is asked about once.
The full real-Docusaurus checks live with the browser tests of the built book.
"""

from __future__ import annotations

import html
import json
import threading
from collections.abc import Iterator

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from app import create_app
from app.database import upgrade_database
from tests.e2e.test_chat_page import browser  # noqa: F401 - the shared Chromium fixture

PAGE = """<!doctype html><html lang="en" data-theme="light"><head><meta charset="utf-8">
<title>Garden book</title><style>:root{{--ifm-color-primary:#7a3e9d}}</style></head>
<body><main><h1>Watering</h1><p id="text">Tomatoes want deep watering two or three times a week.</p>
<h2 id="how-often">How often</h2><p>More in a heat wave.</p></main>
<script src="{service}/widget.js" data-title="Garden help" async></script></body></html>"""


def _serve(application) -> tuple[str, object, threading.Thread]:
    server = make_server("127.0.0.1", 0, application, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{server.server_port}", server, thread


@pytest.fixture
def book_and_service(make_settings) -> Iterator[tuple[str, str]]:
    """A static 'book' on one port (every path the same page) and the service on another."""
    holder: dict[str, str] = {}

    @Request.application
    def book(request: Request) -> Response:
        return Response(PAGE.format(service=html.escape(holder["service"])), mimetype="text/html")

    book_url, book_server, book_thread = _serve(book)
    application = create_app(make_settings(book_site_url=book_url, allowed_origins=[book_url]))
    upgrade_database(application)
    application.extensions["services"].startup.run()
    holder["service"], server, thread = _serve(application)
    try:
        yield book_url, holder["service"]
    finally:
        for running, worker in [(server, thread), (book_server, book_thread)]:
            running.shutdown()
            worker.join(10)
        application.extensions["services"].live_turns.stop()
        with application.app_context():
            from app.extensions import db

            db.engine.dispose()


def test_the_widget_on_a_book_page(browser, book_and_service):  # noqa: F811 - pytest injects the imported fixture
    book_url, service = book_and_service
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    fetched: list[str] = []
    page.on("request", lambda r: fetched.append(r.url) if r.url.startswith(service) else None)
    chats: list[dict] = []
    page.on(
        "request", lambda r: chats.append(json.loads(r.post_data)) if r.url.endswith("/api/chat") else None
    )

    page.goto(book_url + "/guides/watering")
    launcher = page.get_by_role("button", name="Open chat")
    launcher.wait_for()
    page.wait_for_timeout(300)
    assert fetched == [service + "/widget.js"], "nothing but the script until the reader opens it"

    # Open: focus moves in, the stylesheet comes now, the book's primary colour is followed.
    launcher.click()
    panel = page.get_by_role("dialog", name="Garden help")
    panel.wait_for()
    assert (
        page.evaluate("document.activeElement.shadowRoot.activeElement.getAttribute('aria-label')")
        == "Your question"
    )
    assert any("/widget.css?v=" in url for url in fetched)
    assert page.evaluate("getComputedStyle(document.documentElement).marginRight") == "420px", (
        "the page reflows"
    )

    # Ask; the answer's citation opens the section of this same book in place.
    box = page.get_by_role("textbox", name="Your question")
    box.fill("How often should I water tomatoes?")
    box.press("Enter")
    page.locator("[data-role=assistant]:has([data-vote])").first.wait_for(timeout=30_000)
    assert chats[0]["page"] == book_url + "/guides/watering"
    citation = page.locator("[data-role=assistant] .text a.cite").first
    href = citation.get_attribute("href")
    assert href.startswith(book_url + "/") and "#" in href and citation.get_attribute("target") is None
    citation.click()
    page.wait_for_url(href)
    page.locator("[data-role=assistant]:has([data-vote])").first.wait_for(timeout=10_000)
    assert page.get_by_role("dialog", name="Garden help").is_visible(), "the conversation survived"

    # Dark mode follows the page's data-theme, live.
    page.evaluate("document.documentElement.setAttribute('data-theme', 'dark')")
    page.wait_for_selector("[data-book-chat][data-theme=dark]", state="attached")

    # A selection is asked about once, then the mode ends.
    page.get_by_role("button", name="Close chat").click()
    page.evaluate(
        "const r = document.createRange(); r.selectNodeContents(document.getElementById('text'));"
        "getSelection().removeAllRanges(); getSelection().addRange(r);"
    )
    page.get_by_role("button", name="Ask about this").click()
    box.fill("What does this mean?")
    box.press("Enter")
    page.locator("[data-role=assistant]:has([data-vote])").nth(1).wait_for(timeout=30_000)
    assert chats[1]["mode"] == "selection" and chats[1]["context"].startswith("Tomatoes want deep")
    box.fill("And basil?")
    box.press("Enter")
    page.locator("[data-role=assistant]:has([data-vote])").nth(2).wait_for(timeout=30_000)
    assert "mode" not in chats[2] and "context" not in chats[2]
    assert chats[1]["conversation_id"] and chats[2]["conversation_id"] == chats[1]["conversation_id"]

    # Esc closes and gives focus back to the launcher.
    box.press("Escape")
    assert not panel.is_visible()
    assert (
        page.evaluate("document.activeElement.shadowRoot.activeElement.getAttribute('aria-label')")
        == "Open chat"
    )
    page.close()
    assert not errors, errors
