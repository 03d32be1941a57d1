"""Both index engines behave alike: keyword and hybrid search, versions, atomic switches."""

import threading
import time

import pytest
from qdrant_client import QdrantClient

from app.services.index.base import IndexPoint, IndexSpec, SearchRequest, point_id
from app.services.index.cloud import QdrantIndex
from app.services.index.edge import EdgeIndex, EdgeIndexWriter
from app.services.retrieval.sparse import Bm25Encoder, term_id

ENCODER = Bm25Encoder(avgdl=8)
DOCS = {
    "deploy.md": "deploy the site to github pages with the gh-pages branch",
    "sidebar.md": "configure the sidebar items and categories",
    "search.md": "add search to the site with algolia docsearch",
}


def points(docs=DOCS, dense=True):
    return [
        IndexPoint(
            id=point_id(name),
            sparse=ENCODER.document([(text, 1.0)]),
            payload={"file": name, "content_hash": str(hash(text)), "text": text},
            dense=[1.0, float(i), 0.5] if dense else None,
        )
        for i, (name, text) in enumerate(docs.items())
    ]


@pytest.fixture(params=["edge", "qdrant-local"])
def engine(request, tmp_path):
    """(reader, writer) of each engine; Qdrant Cloud's code path runs on qdrant-client's local mode."""
    if request.param == "edge":
        root = tmp_path / "book"
        return EdgeIndex(root, recheck_seconds=0), EdgeIndexWriter(root)
    index = QdrantIndex(QdrantClient(location=":memory:"), "book", spec_ttl_seconds=0)
    return index, index


def files(hits):
    return [hit.payload["file"] for hit in hits]


def test_keyword_search_finds_the_matching_document(engine):
    reader, writer = engine
    writer.write(IndexSpec(dense_dim=None), points(dense=False), [], full=True)
    hits = reader.search(SearchRequest(sparse=ENCODER.query("How to deploy on GitHub?"), limit=3))
    assert files(hits)[0] == "deploy.md"
    assert reader.count() == 3
    asked = frozenset(term_id(t) for t in ("deploy", "sidebar", "github"))
    matched = reader.matching_terms([hits[0].id, "0b6f3e0a-0000-4000-8000-000000000000"], asked)
    assert matched == {
        hits[0].id: {term_id("deploy"), term_id("github")}
    }  # of the terms asked, those it holds; a gone point is left out


def test_hybrid_search_fuses_dense_and_keyword(engine):
    reader, writer = engine
    writer.write(IndexSpec(dense_dim=3), points(), [], full=True)
    hits = reader.search(SearchRequest(sparse=ENCODER.query("sidebar"), dense=[1.0, 1.0, 0.5], limit=3))
    assert files(hits)[0] == "sidebar.md"  # first by both vectors
    assert len(hits) == 3


@pytest.mark.parametrize("dense", [None, [1.0, 1.0, 0.5]])
def test_search_returns_only_the_fields_asked_for_and_payloads_fetch_the_rest(engine, dense):
    reader, writer = engine
    writer.write(IndexSpec(dense_dim=3), points(), [], full=True)
    hits = reader.search(
        SearchRequest(sparse=ENCODER.query("sidebar"), dense=dense, limit=3, fields=("file",))
    )
    assert hits[0].payload == {"file": "sidebar.md"}
    ids = [hit.id for hit in hits] + [point_id("gone.md")]
    payloads = reader.payloads(ids)
    assert set(payloads) == {hit.id for hit in hits}  # a point no longer there is left out
    assert payloads[hits[0].id]["text"] == DOCS["sidebar.md"]


def test_the_fields_searches_return_follow_each_new_version(engine):
    reader, writer = engine
    writer.write(IndexSpec(dense_dim=None), points(dense=False), [], full=True)
    asked = SearchRequest(sparse=ENCODER.query("sidebar"), limit=1, fields=("file",))
    assert reader.search(asked)[0].payload == {"file": "sidebar.md"}
    moved = IndexPoint(
        id=point_id("sidebar.md"),
        sparse=ENCODER.document([(DOCS["sidebar.md"], 1.0)]),
        payload={"file": "guides/sidebar.md", "content_hash": "moved", "text": DOCS["sidebar.md"]},
    )
    writer.write(IndexSpec(dense_dim=None), [moved], [], full=False)
    reader.refresh()
    assert reader.search(asked)[0].payload == {
        "file": "guides/sidebar.md"
    }  # not the old version's, kept in memory


def test_term_frequencies_count_the_sections_holding_each_term(engine):
    reader, writer = engine
    writer.write(IndexSpec(dense_dim=3), points(), [], full=True)
    sections, frequencies = reader.term_frequencies()
    assert sections == 3  # chunks only (Qdrant's manifest point is not one)
    assert frequencies[term_id("site")] == 2 and frequencies[term_id("sidebar")] == 1
    assert term_id("banana") not in frequencies
    writer.write(IndexSpec(dense_dim=3), [], [point_id("search.md")], full=False)
    assert reader.term_frequencies()[1][term_id("site")] == 1  # the new version is counted anew


def test_filter_by_file(engine):
    reader, writer = engine
    writer.write(IndexSpec(dense_dim=None), points(dense=False), [], full=True)
    hits = reader.search(SearchRequest(sparse=ENCODER.query("site"), files=("search.md",), limit=5))
    assert files(hits) == ["search.md"]


def test_incremental_write_changes_only_what_it_names(engine):
    reader, writer = engine
    first = writer.write(IndexSpec(dense_dim=None), points(dense=False), [], full=True)
    assert writer.write(IndexSpec(dense_dim=None), [], [], full=False) is None  # nothing to do
    second = writer.write(IndexSpec(dense_dim=None), [], [point_id("deploy.md")], full=False)
    assert second != first
    assert reader.count() == 2
    assert set(writer.live_hashes()) == {point_id("sidebar.md"), point_id("search.md")}


def test_full_rebuild_switches_while_queries_keep_answering(engine):
    reader, writer = engine
    writer.write(IndexSpec(dense_dim=None), points(dense=False), [], full=True)
    failures, answered = [], []
    stop = threading.Event()

    def query_forever():
        while not stop.is_set():
            try:
                answered.append(files(reader.search(SearchRequest(sparse=ENCODER.query("site"), limit=3))))
            except Exception as exc:  # noqa: BLE001 - the test counts every failure
                failures.append(repr(exc))

    threads = [threading.Thread(target=query_forever) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for _ in range(3):
            renamed = {f"v2-{k}": v for k, v in DOCS.items()}
            writer.write(IndexSpec(dense_dim=None), points(renamed, dense=False), [], full=True)
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    assert answered and all(len(result) >= 1 for result in answered)
    assert all(
        name.startswith("v2-")
        for name in files(reader.search(SearchRequest(sparse=ENCODER.query("site"), limit=3)))
    )


def test_edge_index_is_shared_by_processes(tmp_path):
    """Two worker processes open the same embedded index (a WAL lock would forbid it)."""
    import subprocess
    import sys

    root = tmp_path / "book"
    EdgeIndexWriter(root).write(IndexSpec(dense_dim=None), points(dense=False), [], full=True)
    code = (
        "from pathlib import Path; from app.services.index.edge import EdgeIndex;"
        f"print(EdgeIndex(Path({str(root)!r})).count())"
    )
    holder = EdgeIndex(root)
    assert holder.count() == 3
    procs = [
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        for _ in range(2)
    ]
    assert [p.stdout.strip() for p in procs] == ["3", "3"], [p.stderr for p in procs]


def test_qdrant_replaces_a_plain_collection_named_like_the_alias():
    """The first backend left a plain `book` collection: a rebuild turns the name into an alias."""
    from qdrant_client import models

    client = QdrantClient(location=":memory:")
    client.create_collection(
        "book", vectors_config={"dense": models.VectorParams(size=3, distance=models.Distance.COSINE)}
    )
    index = QdrantIndex(client, "book", spec_ttl_seconds=0)
    assert index.spec() is None  # not ours: treated as "not built"
    index.write(IndexSpec(dense_dim=None), points(dense=False), [], full=False)
    assert index.count() == 3
    assert [a.alias_name for a in client.get_aliases().aliases] == ["book"]


def test_the_next_write_removes_the_staging_folder_a_killed_ingest_left(tmp_path):
    """kill -9 in the middle of a full rebuild skips its cleanup: the next write (under the same
    lock, so no other writer is at work) removes the half-built copy."""
    import signal
    import subprocess
    import sys

    root = tmp_path / "book"
    EdgeIndexWriter(root).write(IndexSpec(dense_dim=None), points(dense=False), [], full=True)
    # The rebuild stalls once its staging copy exists (a slow build), so the kill lands mid-way.
    code = (
        "import time\n"
        "from pathlib import Path\n"
        "import qdrant_edge as qe\n"
        "from app.services.index.base import IndexSpec\n"
        "from app.services.index.edge import EdgeIndexWriter\n"
        "create = qe.EdgeShard.create\n"
        "def stalled(*args, **kwargs):\n"
        "    shard = create(*args, **kwargs)\n"
        "    time.sleep(600)\n"
        "    return shard\n"
        "qe.EdgeShard.create = stalled\n"
        f"EdgeIndexWriter(Path({str(root)!r})).write(IndexSpec(dense_dim=None), [], [], full=True)\n"
    )
    ingest = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 60
        while not list((root / "versions").glob(".*.tmp")):
            assert ingest.poll() is None and time.monotonic() < deadline, "the rebuild never started staging"
            time.sleep(0.01)
        ingest.send_signal(signal.SIGKILL)
    finally:
        ingest.kill()
        ingest.wait(timeout=30)
    assert list((root / "versions").glob(".*.tmp"))  # what a killed ingest leaves
    EdgeIndexWriter(root).write(IndexSpec(dense_dim=None), points(dense=False)[:1], [], full=False)
    assert not list((root / "versions").glob(".*.tmp"))
    assert EdgeIndex(root).count() == 3
