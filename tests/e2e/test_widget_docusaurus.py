"""Issue 21's widget in a real Docusaurus book: the `classic` template built in the test (cached,
tests/support/docusaurus_site.py) with the one `scripts` line, served on a free port, talking to a
real gunicorn of this service (offline answerer, then the fake Gemini streaming Markdown with
citations), driven by Playwright in Debian's Chromium. One browser, one site build, module-scoped
services; tests that change a service's state (rate limit, cold start) get their own.

Screenshots for docs/deployment/img/:
    WIDGET_SCREENSHOTS=1 pytest tests/e2e/test_widget_docusaurus.py -k screenshots
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import threading
import time
from pathlib import Path

import pytest
import requests

from app.tuning import Tuning
from tests.conftest import ROOT
from tests.e2e.test_chat_page import CHROMIUM_FLAGS
from tests.fakes.gemini_server import FakeGemini
from tests.support import docusaurus_site
from tests.support.service import NO_LIMITS, Service

pytestmark = pytest.mark.e2e

GEMINI_KEY = "widget-test-key"
MARKDOWN_ANSWER = (
    "The Kalman filter fuses the IMU and odometry [1]:\n\n"
    "- predict the state\n- correct it with each measurement\n\n"
    "Start it with `ekf_node`:\n\n"
    "```bash\nros2 run robot_localization ekf_node\n```\n\n"
    "Inverse kinematics is in the arm chapter [2]."
)
HOSTILE_ANSWER = (
    "Careful: <img src=x onerror=alert(1)> and <script>alert(2)</script> "
    'and [click me](javascript:alert(3)) and <a href="javascript:alert(4)">raw</a> [1].'
)

HOSTILE_BLOCKS_ANSWER = (
    "| Part | Payload |\n|---|:-:|\n"
    "| image | <img src=x onerror=alert(5)> |\n"
    "| script | <script>alert(6)</script> [go](javascript:alert(7)) |\n\n"
    "> Quoted <svg onload=alert(8)></svg> with `<iframe src=javascript:alert(9)>` [1]\n"
    "> - a <b onmouseover=alert(10)>listed</b> item\n"
)


# --- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site():
    why = docusaurus_site.missing_tools()
    if why:
        if os.environ.get("CI"):
            pytest.fail(why + " — CI must run the widget tests")
        pytest.skip(why)
    return docusaurus_site.site_dir()


@pytest.fixture(scope="module")
def static_site(site):
    served = docusaurus_site.StaticSite(site / "site" / "build")
    yield served
    served.stop()


def _book_settings(site: Path, static_site) -> dict[str, str]:
    return dict(
        DOCS_PATH=str(site / "site" / "docs"),
        BOOK_SITE_URL=static_site.url,
        BOOK_ROUTE_BASE_PATH="/docs",
        ALLOWED_ORIGINS=static_site.url,
        RATE_LIMIT_CHAT="10000/minute",
    )


@pytest.fixture(scope="module")
def offline_service(site, static_site, tmp_path_factory):
    service = Service(
        tmp_path_factory.mktemp("widget-offline"),
        tuning=Tuning(**NO_LIMITS),
        **_book_settings(site, static_site),
    )
    try:
        service.wait_healthy()
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="module")
def fake_gemini():
    with FakeGemini(api_key=GEMINI_KEY) as fake:
        yield fake


@pytest.fixture(scope="module")
def gemini_service(site, static_site, fake_gemini, tmp_path_factory):
    service = Service(
        tmp_path_factory.mktemp("widget-gemini"),
        tuning=Tuning(**NO_LIMITS),
        GEMINI_API_KEY=GEMINI_KEY,
        GEMINI_BASE_URL=fake_gemini.base_url,
        **_book_settings(site, static_site),
    )
    try:
        service.wait_healthy()
        yield service
    finally:
        service.stop()


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is not installed — CI must run the widget tests")
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    return found


@pytest.fixture(scope="module")
def browser():
    executable = _chromium()
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (requirements-dev.txt)"
    )
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


class Tab:
    """A fresh browser context on the book, every request recorded, any dialog a failure."""

    def __init__(self, browser, static_site, service_url: str, **context_options) -> None:
        static_site.set_widget_origin(service_url)
        self.service_url = service_url
        self.context = browser.new_context(**({"viewport": {"width": 1280, "height": 800}} | context_options))
        self.context.set_default_timeout(10_000)
        self.page = self.context.new_page()
        self.requests: list = []
        self.dialogs: list[str] = []
        self.page.on("request", lambda request: self.requests.append(request))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.site = static_site.url

    def goto(self, path: str = "/docs/intro") -> None:
        self.page.goto(self.site + path, wait_until="networkidle")

    def chat_requests(self) -> list[dict]:
        return [json.loads(r.post_data) for r in self.requests if r.url == f"{self.service_url}/api/chat"]

    def open_chat(self):
        script = requests.get(f"{self.service_url}/widget.js", timeout=10)  # fail fast, not on a 5 s wait
        assert script.status_code == 200, f"GET /widget.js: {script.status_code}"
        self.page.get_by_role("button", name="Open chat").click(timeout=5_000)
        return self.page.get_by_role("dialog")

    def ask(self, question: str) -> None:
        box = self.page.get_by_role("textbox").last
        box.fill(question)
        self.page.get_by_role("button", name="Send").click()
        self.wait_answered()

    def wait_answered(self, timeout: float = 30_000) -> None:
        # Done when Stop is gone and the Helpful button of the last answer is there.
        self.page.get_by_role("button", name="Helpful").last.wait_for(timeout=timeout)

    def close(self) -> None:
        assert not self.dialogs, f"a dialog opened: {self.dialogs}"
        self.context.close()


@pytest.fixture
def offline_tab(browser, static_site, offline_service):
    tab = Tab(browser, static_site, offline_service.url)
    yield tab
    tab.close()


@pytest.fixture
def gemini_tab(browser, static_site, gemini_service, fake_gemini):
    fake_gemini.reset()
    tab = Tab(browser, static_site, gemini_service.url)
    yield tab
    tab.close()


def _conversation(service, conversation_id: str) -> dict:
    response = requests.get(f"{service.url}/api/conversation/{conversation_id}", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def _db_rows(service, sql: str) -> list[dict]:
    from sqlalchemy import create_engine, text

    from app.config import normalise_database_url

    url = service.env.get("DATABASE_URL") or f"sqlite:///{Path(service.env['INSTANCE_PATH']) / 'chat.db'}"
    engine = create_engine(normalise_database_url(url))
    try:
        with engine.connect() as conn:
            return [dict(r) for r in conn.execute(text(sql)).mappings()]
    finally:
        engine.dispose()


# --- the build itself (no widget needed) -----------------------------------------------------------


def test_the_book_is_a_real_docusaurus_build_with_the_one_script_line(site, static_site):
    config = (site / "site" / "docusaurus.config.js").read_text()
    assert f"scripts: [{{src: '{docusaurus_site.WIDGET_PLACEHOLDER}/widget.js', async: true}}]" in config
    static_site.set_widget_origin("http://127.0.0.1:1")
    page = requests.get(f"{static_site.url}/docs/sensor-fusion", timeout=10).text
    assert re.search(r'<script src="?http://127\.0\.0\.1:1/widget\.js"? async', page) and "Docusaurus" in page
    assert docusaurus_site.WIDGET_PLACEHOLDER not in page
    assert (site / "site" / "node_modules" / "axe-core" / "axe.min.js").exists()
    assert re.search(r'id="?kalman-filter', page), "headings have anchors for citations"


def test_the_sources_of_the_book_point_at_the_served_site(offline_service, static_site):
    response = requests.post(
        f"{offline_service.url}/api/chat",
        json={"message": "What does the Kalman filter do?"},
        timeout=30,
        stream=True,
    )
    events = [
        json.loads(line[6:]) for line in response.iter_lines(decode_unicode=True) if line.startswith("data: ")
    ]
    urls = [s["url"] for e in events for s in e.get("sources", []) if isinstance(s, dict) and "url" in s]
    assert urls and all(u.startswith(static_site.url + "/docs/") for u in urls), events
    assert any("/docs/sensor-fusion" in u for u in urls)


# --- the widget ------------------------------------------------------------------------------------


def test_no_request_beyond_the_script_until_opened(offline_tab):
    offline_tab.goto()
    offline_tab.page.wait_for_timeout(1000)
    to_service = [r.url for r in offline_tab.requests if r.url.startswith(offline_tab.service_url)]
    assert to_service == [f"{offline_tab.service_url}/widget.js"], to_service
    offline_tab.open_chat()
    offline_tab.page.wait_for_timeout(300)


def test_open_ask_and_markdown_is_rendered_with_a_copy_button(gemini_tab, fake_gemini):
    fake_gemini.reply_with(MARKDOWN_ANSWER)
    gemini_tab.goto()
    panel = gemini_tab.open_chat()
    gemini_tab.ask("How does the Kalman filter fuse sensors?")
    answer = panel.locator("li", has_text="predict the state")
    assert answer.count() >= 1
    assert panel.locator("code", has_text="ekf_node").count() >= 1
    assert panel.locator("pre code", has_text="ros2 run robot_localization").count() == 1
    assert panel.get_by_role("button", name=re.compile("copy", re.I)).count() >= 1
    assert panel.get_by_role("status").count() + panel.locator("[aria-live=polite]").count() >= 1


def test_a_citation_opens_the_section_in_place_and_the_conversation_survives(gemini_tab, fake_gemini):
    fake_gemini.reply_with(MARKDOWN_ANSWER)
    gemini_tab.goto("/docs/intro")
    panel = gemini_tab.open_chat()
    gemini_tab.ask("How does the Kalman filter fuse sensors?")
    link = panel.get_by_role("link", name=re.compile(r"Kalman filter|\[?1\]?|Sensor fusion")).first
    href = link.get_attribute("href")
    assert href and "/docs/sensor-fusion#" in href
    link.click()
    gemini_tab.page.wait_for_url(re.compile(r"/docs/sensor-fusion#"))
    assert gemini_tab.page.get_by_role("dialog").is_visible(), "panel restored open"
    assert gemini_tab.page.get_by_role("dialog").get_by_text("predict the state").is_visible()


def test_a_follow_up_carries_the_conversation_id(offline_tab, offline_service):
    offline_tab.goto()
    offline_tab.open_chat()
    offline_tab.ask("What does the Kalman filter do?")
    offline_tab.ask("And how do I calibrate the IMU?")
    first, second = offline_tab.chat_requests()[-2:]
    assert "conversation_id" not in first or not first["conversation_id"]
    assert second["conversation_id"]
    stored = _conversation(offline_service, second["conversation_id"])
    assert len([m for m in stored["messages"] if m["role"] == "user"]) == 2


def test_reload_restores_and_new_chat_starts_over(offline_tab):
    offline_tab.goto()
    offline_tab.open_chat()
    offline_tab.ask("What does the Kalman filter do?")
    offline_tab.page.reload(wait_until="networkidle")
    if not offline_tab.page.get_by_role("dialog").is_visible():
        offline_tab.open_chat()
    panel = offline_tab.page.get_by_role("dialog")
    panel.get_by_text("What does the Kalman filter do?").wait_for(timeout=10_000)
    assert any(r.url.startswith(f"{offline_tab.service_url}/api/conversation/") for r in offline_tab.requests)
    panel.get_by_role("button", name="New chat").click()
    assert panel.get_by_text("What does the Kalman filter do?").count() == 0
    offline_tab.ask("How do I calibrate the IMU?")
    assert not offline_tab.chat_requests()[-1].get("conversation_id")


def test_ask_about_a_selection_then_general_again(offline_tab):
    offline_tab.goto("/docs/sensor-fusion")
    offline_tab.page.locator("article p", has_text="Calibrate the IMU").first.select_text()
    offline_tab.page.get_by_role("button", name="Ask about this").click()
    offline_tab.ask("What does this mean?")
    offline_tab.ask("What is inverse kinematics?")
    selected, general = offline_tab.chat_requests()[-2:]
    assert selected["mode"] == "selection" and "Calibrate the IMU" in selected["context"]
    assert general.get("mode", "general") == "general" and not general.get("context")


def test_a_selection_question_keeps_its_quote_after_a_reload(offline_tab, offline_service):
    offline_tab.goto("/docs/sensor-fusion")
    offline_tab.page.locator("article p", has_text="Calibrate the IMU").first.select_text()
    offline_tab.page.get_by_role("button", name="Ask about this").click()
    offline_tab.ask("What does this mean?")
    offline_tab.ask("What is inverse kinematics?")
    offline_tab.page.reload(wait_until="networkidle")
    panel = offline_tab.page.get_by_role("dialog")
    asked = panel.locator("[data-role=user]")
    asked.nth(1).get_by_text("What is inverse kinematics?").wait_for(timeout=10_000)
    offline_tab.page.wait_for_timeout(500)  # the service's copy has replaced the tab's
    assert "Calibrate the IMU" in asked.nth(0).locator("blockquote").inner_text()
    assert asked.nth(1).locator("blockquote").count() == 0, "the general question has no quote"
    saved = offline_tab.page.evaluate(
        "() => Object.values(sessionStorage).map(v => JSON.parse(v)).find(s => s.id)"
    )
    stored = _conversation(offline_service, saved["id"])
    assert [m["mode"] for m in stored["messages"] if m["role"] == "user"] == ["selection", "general"]
    assert [bool(m.get("context")) for m in saved["messages"]] == [True, False, False, False]


def test_votes_reach_the_database_and_a_second_replaces_the_first(offline_tab, offline_service):
    offline_tab.goto()
    panel = offline_tab.open_chat()
    offline_tab.ask("What does the Kalman filter do?")
    for name in ("Helpful", "Not helpful"):  # drawn icons: an emoji glyph is an empty box with no emoji font
        icon = panel.get_by_role("button", name=name, exact=True).last.locator("svg")
        assert icon.count() == 1 and icon.bounding_box()["width"] >= 12
    panel.get_by_role("button", name="Helpful").last.click()
    panel.get_by_role("button", name="Not helpful").last.click()
    panel.get_by_role("textbox", name=re.compile("comment", re.I)).fill("missed the covariance")
    panel.get_by_role("button", name="Send comment").last.click()
    offline_tab.page.wait_for_timeout(1000)
    rows = _db_rows(offline_service, "SELECT vote, comment FROM feedback")
    assert {"vote": "down", "comment": "missed the covariance"} in rows


def test_stop_aborts_and_the_answer_is_stored_interrupted(browser, static_site, site, tmp_path):
    service = Service(
        tmp_path,
        tuning=Tuning(**NO_LIMITS, token_delay_seconds=0.3),
        **_book_settings(site, static_site),
    )
    tab = Tab(browser, static_site, service.url)
    try:
        service.wait_healthy()
        tab.goto()
        panel = tab.open_chat()
        tab.page.get_by_role("textbox").last.fill("What does the Kalman filter do?")
        tab.page.get_by_role("button", name="Send").click()
        # Stop once the answer is streaming (the question is stored): earlier, nothing is kept.
        panel.locator("[data-role=assistant]").last.filter(has_text=re.compile(r"\w")).wait_for(
            timeout=10_000
        )
        panel.get_by_role("button", name="Stop").click(timeout=10_000)
        tab.page.wait_for_timeout(1500)
        conversation_id = tab.page.evaluate(
            "() => Object.values(sessionStorage).map(v => "
            "{ try { return JSON.parse(v).id; } catch (e) { return null; } })"
            ".find(Boolean)"
        )  # the widget's saved state: its `id` is the conversation's
        stored = _conversation(service, conversation_id)
        assert stored["messages"][-1]["status"] == "interrupted"
    finally:
        tab.close()
        service.stop()


def test_dark_mode_follows_the_book_live(offline_tab):
    offline_tab.goto()
    panel = offline_tab.open_chat()

    def background() -> str:
        return panel.evaluate("el => getComputedStyle(el).backgroundColor")

    offline_tab.page.evaluate("() => document.documentElement.setAttribute('data-theme', 'light')")
    light = background()
    offline_tab.page.evaluate("() => document.documentElement.setAttribute('data-theme', 'dark')")
    offline_tab.page.wait_for_timeout(300)
    assert background() != light


class ColdStartProxy:
    """The service behind a front that answers as the app does while it indexes, for its first
    `seconds`: health 503 `{"status": "starting"}` and chat 503 `index_not_ready`; then it passes
    everything through (streaming). CORS preflights always pass: the app answers them whatever its
    state (flask-cors, before any view), so a browser does send the POST that gets the 503."""

    def __init__(self, target: str, seconds: float) -> None:
        self.target, self.until = target, time.monotonic() + seconds
        self.starting_health = self.starting_chats = 0
        front = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _starting(self) -> None:
                if self.path.startswith("/api/health"):
                    front.starting_health += 1
                    payload = b'{"status": "starting"}'
                else:
                    front.starting_chats += 1
                    payload = (
                        b'{"status": 503, "error": "index_not_ready", '
                        b'"message": "The book\'s index is not built yet."}'
                    )
                self.send_response(503)
                for k, v in [
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(payload))),
                    ("Access-Control-Allow-Origin", self.headers.get("Origin") or "*"),
                ]:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)

            def _pass(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if (
                    time.monotonic() < front.until
                    and self.path.startswith("/api/")
                    and self.command != "OPTIONS"
                ):
                    self._starting()
                    return
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
                }
                upstream = requests.request(
                    self.command,
                    front.target + self.path,
                    headers=headers,
                    data=body,
                    stream=True,
                    timeout=60,
                )
                self.send_response(upstream.status_code)
                for k, v in upstream.headers.items():
                    if k.lower() not in (
                        "transfer-encoding",
                        "connection",
                        "content-length",
                        "content-encoding",
                    ):
                        self.send_header(k, v)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for chunk in upstream.raw.stream(1024, decode_content=True):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")

            do_GET = do_POST = do_OPTIONS = _pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_cold_start_shows_waking_up_then_answers_with_the_question_kept(
    browser, static_site, offline_service
):
    question = "What does the Kalman filter do?"
    proxy = ColdStartProxy(offline_service.url, seconds=3600)
    tab = Tab(browser, static_site, proxy.url)
    try:
        tab.goto()
        panel = tab.open_chat()
        tab.page.get_by_role("textbox").last.fill(question)
        proxy.until = time.monotonic() + 4
        tab.page.get_by_role("button", name="Send").click()
        panel.get_by_role("alert").filter(has_text=re.compile("^Waking up")).wait_for(timeout=10_000)
        assert tab.page.get_by_role("textbox").last.input_value() == question, "the question waits in the box"
        assert not panel.locator("[data-role=user]").count(), "nothing is shown as asked before it is sent"
        tab.wait_answered(timeout=40_000)
        assert panel.locator("[data-role=user]").last.inner_text() == question
        assert (
            panel.locator("[data-role=assistant]").last.get_by_text(re.compile("Kalman", re.I)).count() >= 1
        )
        assert not panel.get_by_role("alert").is_visible(), "the waking banner is gone once answered"
        assert proxy.starting_chats == 1 and proxy.starting_health >= 2, "health polled, not the chat"
        assert [r["message"] for r in tab.chat_requests()] == [question, question]
    finally:
        tab.close()
        proxy.stop()


def test_429_says_when_to_retry(browser, static_site, site, tmp_path):
    settings = {**_book_settings(site, static_site), "RATE_LIMIT_CHAT": "1/minute"}
    service = Service(tmp_path, **settings)
    tab = Tab(browser, static_site, service.url)
    try:
        service.wait_healthy()
        tab.goto()
        tab.open_chat()
        tab.ask("What does the Kalman filter do?")
        tab.page.get_by_role("textbox").last.fill("How do I calibrate the IMU?")
        tab.page.get_by_role("button", name="Send").click()
        tab.page.get_by_text(re.compile(r"(try again|retry).*\d+\s*(s|sec|second|minute)", re.I)).wait_for(
            timeout=10_000
        )
        assert tab.page.get_by_role("textbox").last.input_value() == "How do I calibrate the IMU?"
    finally:
        tab.close()
        service.stop()


def test_hostile_markup_from_the_model_never_runs(gemini_tab, fake_gemini):
    fake_gemini.reply_with(HOSTILE_ANSWER)
    gemini_tab.goto()
    panel = gemini_tab.open_chat()
    gemini_tab.ask("How does the Kalman filter fuse sensors?")
    gemini_tab.page.wait_for_timeout(1000)
    assert panel.locator("img, script, iframe").count() == 0
    hrefs = panel.locator("a").evaluate_all("els => els.map(a => a.getAttribute('href') || '')")
    assert not [h for h in hrefs if not h.startswith(("http://", "https://", "#"))], hrefs
    assert not gemini_tab.dialogs


def test_tables_and_blockquotes_render_and_markup_in_them_never_runs(gemini_tab, fake_gemini):
    fake_gemini.reply_with(HOSTILE_BLOCKS_ANSWER)
    gemini_tab.goto()
    panel = gemini_tab.open_chat()
    gemini_tab.ask("How does the Kalman filter fuse sensors?")
    answer = panel.locator("[data-role=assistant]").last
    table = answer.locator("table")
    assert table.locator("thead th").all_inner_texts() == ["Part", "Payload"]
    assert table.locator("tbody tr").count() == 2
    assert table.locator("tbody td").nth(1).inner_text() == "<img src=x onerror=alert(5)>", (
        "markup shown as text"
    )
    assert table.locator("tbody td").nth(1).evaluate("td => td.style.textAlign") == "center"
    quote = answer.locator("blockquote")
    assert quote.count() == 1 and quote.locator("li", has_text="listed").count() == 1
    assert quote.locator("code").inner_text() == "<iframe src=javascript:alert(9)>"
    gemini_tab.page.mouse.move(0, 0)
    quote.locator("li").hover()
    gemini_tab.page.wait_for_timeout(500)
    assert (
        answer.locator(".text").locator("img, script, iframe, svg, b").count() == 0
    )  # the model's text only
    assert panel.locator("img, script, iframe").count() == 0
    hrefs = panel.locator("a").evaluate_all("els => els.map(a => a.getAttribute('href') || '')")
    assert not [h for h in hrefs if not h.startswith(("http://", "https://", "#"))], hrefs
    assert not gemini_tab.dialogs


def test_hostile_markup_from_the_book_never_runs(offline_tab):
    offline_tab.goto("/docs/hostile-page")
    panel = offline_tab.open_chat()
    offline_tab.ask("What do the escaping rules say about markup in code?")
    offline_tab.page.wait_for_timeout(1000)
    assert panel.locator("img, script, iframe").count() == 0
    hrefs = panel.locator("a").evaluate_all("els => els.map(a => a.getAttribute('href') || '')")
    assert all(h.startswith(("http://", "https://", "#")) for h in hrefs), hrefs
    assert not offline_tab.dialogs


def test_keyboard_only_end_to_end(offline_tab):
    page = offline_tab.page
    offline_tab.goto()
    launcher = page.get_by_role("button", name="Open chat")
    for _ in range(80):
        page.keyboard.press("Tab")
        if launcher.evaluate("el => el.matches(':focus') || el.getRootNode().activeElement === el"):
            break
    else:
        pytest.fail("Tab never reached the launcher")
    page.keyboard.press("Enter")
    page.get_by_role("dialog").wait_for()
    page.keyboard.type("line one")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("line two")
    assert page.get_by_role("textbox").last.input_value() == "line one\nline two"
    page.keyboard.press("Enter")
    offline_tab.wait_answered()
    assert offline_tab.chat_requests()[-1]["message"] == "line one\nline two"
    page.keyboard.press("Escape")
    assert not page.get_by_role("dialog").is_visible()
    assert launcher.evaluate("el => el.getRootNode().activeElement === el")


def test_axe_finds_no_serious_or_critical_violation_with_the_widget_open(offline_tab, site):
    offline_tab.goto()
    offline_tab.open_chat()
    offline_tab.ask("What does the Kalman filter do?")
    offline_tab.page.add_script_tag(path=str(site / "site" / "node_modules" / "axe-core" / "axe.min.js"))
    result = offline_tab.page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    bad = [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    # axe names a node inside a shadow root by a nested list [host, inner]; the template's own
    # markup is not this project's to fix, the widget's is (its host and everything in it).
    widget_bad = [b for b in bad if any(any(isinstance(part, list) for part in target) for target in b[2])]
    assert not widget_bad, widget_bad


def test_the_panel_is_full_screen_on_a_phone(browser, static_site, offline_service):
    tab = Tab(
        browser,
        static_site,
        offline_service.url,
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
    )
    try:
        tab.goto()
        box = tab.open_chat().bounding_box()
        assert box["width"] >= 388 and box["height"] >= 840, box
    finally:
        tab.close()


def test_the_panel_docks_beside_the_text_on_a_wide_screen(offline_tab):
    offline_tab.goto("/docs/sensor-fusion")
    box = offline_tab.open_chat().bounding_box()
    text = offline_tab.page.locator("article").bounding_box()
    assert box["x"] >= text["x"] + text["width"] - 1, (box, text)


@pytest.mark.skipif(
    not os.environ.get("WIDGET_SCREENSHOTS"), reason="WIDGET_SCREENSHOTS=1 writes docs/ images"
)
def test_screenshots_for_the_docs(browser, static_site, gemini_service, fake_gemini):
    out = ROOT / "docs" / "deployment" / "img"
    out.mkdir(parents=True, exist_ok=True)
    for size, viewport in [
        ("wide", {"width": 1280, "height": 800}),
        ("phone", {"width": 390, "height": 844}),
    ]:
        for theme in ("light", "dark"):
            fake_gemini.reply_with(MARKDOWN_ANSWER)
            tab = Tab(browser, static_site, gemini_service.url, viewport=viewport, color_scheme=theme)
            try:
                tab.goto("/docs/sensor-fusion")
                tab.page.evaluate(f"() => document.documentElement.setAttribute('data-theme', '{theme}')")
                tab.open_chat()
                tab.ask("How does the Kalman filter fuse sensors?")
                tab.page.screenshot(path=str(out / f"widget-{size}-{theme}.png"))
            finally:
                tab.close()
