"""The reader's page matched to indexed section URLs."""

from __future__ import annotations

import pytest

from app.services.retrieval.current_page import page_key, same_page

INDEXED = "https://garden.example.com/guides/watering#herbs"


@pytest.mark.parametrize(
    "page",
    [
        "https://garden.example.com/guides/watering",
        "https://GARDEN.example.com/guides/watering/",
        "https://garden.example.com/guides/watering?utm_source=x",
        "/guides/watering",
        "/guides/watering/",
    ],
)
def test_the_same_page_written_as_a_reader_sends_it(page):
    assert same_page(INDEXED, page_key(page))


@pytest.mark.parametrize(
    "page",
    [
        "https://elsewhere.example.org/guides/watering",
        "https://garden.example.com/guides",
        "/guides/watering/herbs",
    ],
)
def test_another_host_or_path_is_not_the_page(page):
    assert not same_page(INDEXED, page_key(page))


def test_an_index_without_a_site_url_matches_by_path():
    assert same_page("/guides/watering#herbs", page_key("http://localhost:3000/guides/watering"))


@pytest.mark.parametrize("page", ["javascript:alert(1)", "guides/watering", "ftp://garden.example.com/x"])
def test_not_a_page(page):
    assert page_key(page) is None
