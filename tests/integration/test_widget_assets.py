"""GET /widget.js and /widget.css: the widget a book loads with one script tag, served cacheably."""

from __future__ import annotations

import gzip
import re

import pytest

from tests.conftest import ROOT

SIZE_BUDGET = 30 * 1024  # issue 21: JavaScript and CSS together, gzipped


def test_the_widget_fits_its_size_budget_gzipped():
    static = ROOT / "app" / "static"
    total = sum(len(gzip.compress((static / name).read_bytes(), 9)) for name in ("widget.js", "widget.css"))
    assert total <= SIZE_BUDGET, f"{total} bytes gzipped"


def test_the_script_is_javascript_revalidated_often_with_an_etag(client):
    response = client.get("/widget.js")
    assert response.status_code == 200 and response.mimetype == "text/javascript"
    assert response.cache_control.public and response.cache_control.max_age == 300
    assert not response.cache_control.immutable, "its URL is fixed in books: it must be able to change"
    assert response.headers["ETag"] and response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    again = client.get("/widget.js", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304 and not again.get_data()


def test_the_script_names_the_stylesheet_by_its_content_hash(client):
    script = client.get("/widget.js").get_data(as_text=True)
    assert "__WIDGET_CSS_VERSION__" not in script
    version = re.search(r"/widget\.css\?v=([0-9a-f]{16})'", script).group(1)
    hashed = client.get(f"/widget.css?v={version}")
    assert hashed.status_code == 200 and hashed.mimetype == "text/css"
    assert hashed.cache_control.immutable and hashed.cache_control.max_age == 31536000
    assert hashed.headers["ETag"].strip('"') == version
    assert (
        client.get(f"/widget.css?v={version}", headers={"If-None-Match": f'"{version}"'}).status_code == 304
    )


@pytest.mark.parametrize("query", ["", "?v=stale"])
def test_a_stylesheet_url_without_the_current_hash_is_not_cached_for_long(client, query):
    response = client.get(f"/widget.css{query}")
    assert response.status_code == 200 and not response.cache_control.immutable
    assert response.cache_control.max_age == 300


def test_the_assets_carry_the_services_security_headers(client):
    response = client.get("/widget.js")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
