"""The long-running service: it follows new versions, stays bounded, and is safe to expose."""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import httpx2 as httpx
import numpy as np
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from semhash import SemanticIndex
from semhash.cli import main
from semhash.serve import Limits, create_app


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_server_follows_versions_written_by_another_process(saved_index, tmp_path) -> None:
    folder = tmp_path / "live"
    shutil.copytree(saved_index, folder)
    new_posts = tmp_path / "new.jsonl"
    texts = ["nasa space shuttle orbit launch"] * 3
    new_posts.write_text(
        "".join(json.dumps({"id": f"airship/{i}", "text": t}) + "\n" for i, t in enumerate(texts))
    )
    answers: list[dict] = []
    stop = threading.Event()
    with TestClient(create_app(folder)) as client:
        first = client.get("/info").json()["version"]

        def keep_searching() -> None:
            while not stop.is_set():
                answers.append(client.get("/search", params={"q": texts[0], "k": 50}).json())

        searcher = threading.Thread(target=keep_searching)
        searcher.start()
        try:
            added = subprocess.run(
                [sys.executable, "-m", "semhash", "add", str(folder), str(new_posts)],
                capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            assert added.returncode == 0, added.stderr
            written = time.monotonic()
            while time.monotonic() - written < 5:
                found = client.get("/search", params={"q": texts[0], "k": 50}).json()
                if any(r["id"].startswith("airship/") for r in found["results"]):
                    break
            seen_after = time.monotonic() - written
        finally:
            stop.set()
            searcher.join()
        second = client.get("/info").json()["version"]
    assert second != first and seen_after < 1.0
    versions = {first: set(SemanticIndex.load(saved_index).ids)}
    versions[second] = set(SemanticIndex.load(folder).ids)
    assert {a["version"] for a in answers} <= set(versions) and len(answers) > 1
    for answer in answers:  # every answer wholly from the version it names
        ids = {r["id"] for r in answer["results"]}
        assert ids <= versions[answer["version"]]
        assert any(i.startswith("airship/") for i in ids) == (answer["version"] == second)


def test_beyond_the_pending_limit_the_answer_is_503_at_once(trained_index) -> None:
    with TestClient(create_app(trained_index, Limits(pending=0))) as client:
        response = client.get("/search", params={"q": "space"})
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
        assert "busy" in response.json()["error"]
        assert client.get("/health").status_code == 200


def test_a_token_guards_every_endpoint_but_the_page_and_health(trained_index) -> None:
    with TestClient(create_app(trained_index, token="s3cret")) as client:
        assert client.get("/search", params={"q": "space"}).status_code == 401
        wrong = {"Authorization": "Bearer guess"}
        assert client.get("/info", headers=wrong).status_code == 401
        right = {"Authorization": "Bearer s3cret"}
        assert client.get("/search", params={"q": "space"}, headers=right).status_code == 200
        assert client.get(f"/doc/{trained_index.ids[0]}", headers=right).status_code == 200
        assert client.get("/health").status_code == 200
        page = client.get("/")
        assert page.status_code == 200
        policy = page.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src 'sha256-" in policy
        assert "unsafe-inline" not in policy


def test_binding_beyond_loopback_needs_a_token_or_no_auth(saved_index) -> None:
    refused = CliRunner().invoke(main, ["serve", str(saved_index), "--host", "0.0.0.0"])
    assert refused.exit_code == 2 and "--token" in refused.output


def test_ids_are_data_never_paths(trained_index) -> None:
    odd = ["a/b", "../../etc/passwd", "x.y", "with space", "percent%00nul", "100%"]
    codes = np.asarray(trained_index.codes[: len(odd)])
    index = SemanticIndex.from_codes(trained_index.hasher, odd, codes, [()] * len(odd))
    with TestClient(create_app(index)) as client:
        for doc_id in odd:
            response = client.get("/doc/" + quote(doc_id, safe=""))
            assert response.status_code == 200 and response.json()["id"] == doc_id, doc_id
            similar = client.get("/similar/" + quote(doc_id, safe=""), params={"k": 3})
            assert similar.status_code == 200, doc_id
        for missing in ("%00", "..%2F..%2Fetc%2Fhosts", "a%2Fb%2F..", "a/b/"):
            response = client.get("/doc/" + missing)
            assert response.status_code == 404 and "no document" in response.json()["error"]


def _fuzzed(rng: random.Random, ids: list[str]) -> str:
    """One request path: valid searches and lookups mixed with hostile parameters."""
    values = [
        "", "0", "-1", "10", "99999999999999999999", "1e9", "nan", "\x00", "%00", "%ff%fe",
        "a" * 20_000, "space shuttle", "\u2603 snow", "../..", "%C0%AF",
    ]  # fmt: skip
    kind = rng.random()
    if kind < 0.4:
        return "/search?q=" + quote(rng.choice(["space shuttle", "gun law", "windows", "hockey"]))
    if kind < 0.5:
        return "/doc/" + quote(rng.choice(ids), safe="")
    name = rng.choice(["q", "k", "rank", "depth", "radius", "engine", "x"])
    value = rng.choice(values + ["hamming", "dense", "warp", "two-stage", "mih"])
    encoded = value if "%" in value else quote(value)
    base = rng.choice(["/search?q=space&", "/similar/" + quote(rng.choice(ids), safe="") + "?"])
    return f"{base}{name}={encoded}"


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads memory from /proc")
def test_soak_ten_thousand_mixed_requests_no_500_and_flat_memory(saved_index) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "semhash", "serve", str(saved_index), "--port", str(port)],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "SEMHASH_TOKEN": ""},
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        ids = SemanticIndex.load(saved_index).ids[:50]
        rng = random.Random(0)
        statuses: dict[int, int] = {}

        def send(paths: list[str]) -> None:
            with httpx.Client(base_url=url, timeout=30) as client:
                for path in paths:
                    code = client.get(path).status_code
                    statuses[code] = statuses.get(code, 0) + 1

        send([_fuzzed(rng, ids) for _ in range(500)])  # warm-up
        warm = _rss_kb(server.pid)
        batches = [[_fuzzed(rng, ids) for _ in range(2500)] for _ in range(4)]
        threads = [threading.Thread(target=send, args=(b,)) for b in batches]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        after = _rss_kb(server.pid)
    finally:
        server.terminate()
        server.wait(10)
    assert sum(statuses.values()) == 10_500
    assert not any(code >= 500 and code != 503 for code in statuses), statuses
    assert statuses.get(200, 0) > 3000 and statuses.get(400, 0) > 1000, statuses
    print(f"soak: {statuses}, RSS {warm} kB after warm-up, {after} kB after 10,000")
    assert after <= 1.10 * warm, (warm, after)
