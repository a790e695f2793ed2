"""The HTTP API (in process) and the search page (headless Chromium against a live server)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
import uvicorn
from starlette.testclient import TestClient

from semhash.serve import Limits, create_app

ARTIFACTS = Path(os.environ.get("SEMHASH_ARTIFACTS", Path(__file__).parent / "artifacts"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def client(trained_index) -> TestClient:
    return TestClient(create_app(trained_index, Limits(query_chars=500, k=50)))


def test_search_returns_ranked_results_with_titles(client, trained_index) -> None:
    body = client.get("/search", params={"q": "nasa space shuttle orbit", "k": 5}).json()
    assert [r["rank"] for r in body["results"]] == [1, 2, 3, 4, 5]
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)  # fused scores: higher is closer
    assert body["results"] == [
        {**vars(r), "labels": list(r.labels)}
        for r in trained_index.search(["nasa space shuttle orbit"], k=5)[0]
    ]
    assert all(r["title"] and r["snippet"] for r in body["results"])


def test_similar_doc_health_info(client, trained_index) -> None:
    doc_id = trained_index.ids[3]
    params = {"k": 4, "rank": "cosine", "depth": 20}
    similar = client.get(f"/similar/{doc_id}", params=params).json()
    assert len(similar["results"]) == 4 and doc_id not in [r["id"] for r in similar["results"]]
    doc = client.get(f"/doc/{doc_id}").json()
    assert doc["id"] == doc_id and doc["text"] == trained_index.texts[3]
    health = {"status": "ok", "documents": len(trained_index), "worker": os.getpid()}
    assert client.get("/health").json() == health
    info = client.get("/info").json()
    assert info["n_bits"] == 32 and info["n_docs"] == len(trained_index)


@pytest.mark.parametrize(
    ("url", "status", "message"),
    [
        ("/search", 400, "give a query"),
        ("/search?q=space&k=0", 400, "k must be between 1 and 50"),
        ("/search?q=space&k=51", 400, "k must be between 1 and 50"),
        ("/search?q=space&k=ten", 400, "k must be an integer"),
        ("/search?q=space&radius=99", 400, "radius must be between 0 and 32"),
        ("/search?q=space&engine=warp", 400, "engine must be one of"),
        ("/search?q=" + "space " * 100, 400, "longer than 500 characters"),
        ("/search?q=qwxzv", 400, "no words in the index's vocabulary"),
        ("/similar/no-such-id", 404, "no document with id"),
        ("/doc/no-such-id", 404, "no document with id"),
        ("/nowhere", 404, "Not Found"),
    ],
)
def test_errors_are_json_with_status_codes(client, url, status, message) -> None:
    response = client.get(url)
    assert response.status_code == status
    assert message in response.json()["error"]


@pytest.fixture(scope="module")
def live_server(trained_index):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(trained_index), host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_search_page_in_a_real_browser(live_server, trained_index) -> None:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(live_server)
        # The page runs under its Content-Security-Policy: waits use locators, not eval.
        expect(page.locator("#about")).to_contain_text("documents")
        page.fill("#q", "nasa space shuttle launch orbit")
        page.press("#q", "Enter")
        page.wait_for_selector("#results li")
        items = page.locator("#results li")
        assert items.count() == 20
        expected = trained_index.search(["nasa space shuttle launch orbit"], k=20)[0]
        assert items.first.get_attribute("data-id") == expected[0].id
        assert "sci.space" in page.locator("#results").inner_text()
        page.screenshot(path=str(ARTIFACTS / "search-page.png"), full_page=False)

        first = items.first.get_attribute("data-id")
        items.first.locator("a.more").click()  # "more like this": search by that document
        expect(page.locator("#status")).to_contain_text(first)
        page.wait_for_selector("#results li")
        like = [r.id for r in trained_index.similar(first, k=20)]
        assert page.locator("#results li").first.get_attribute("data-id") == like[0]

        page.goto(live_server + "/#q=qwxzv")  # an error is shown, not a blank page
        page.wait_for_selector("#status.error")
        assert "vocabulary" in page.locator("#status").inner_text()
        browser.close()
