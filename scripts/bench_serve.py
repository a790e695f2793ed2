"""Load test of ``semhash serve``: requests/second and latency percentiles of ``/search``.

Starts ``semhash serve INDEX`` on a free loopback port in a subprocess, waits
until every worker answers, then sends at most ``--requests`` queries (the titles
of 2,000 of the index's documents that have a word of its vocabulary, in turn)
from ``--clients`` concurrent keep-alive connections, each its own process,
stopping after ``--seconds`` at most.
Loopback only; nothing leaves the machine.

    python scripts/bench_serve.py runs/20ng-32 --clients 4 --workers 2
"""

from __future__ import annotations

import argparse
import collections
import http.client
import itertools
import json
import multiprocessing
import socket
import subprocess
import sys
import time
import urllib.parse
from typing import Any

import numpy as np

from semhash import SemanticIndex
from semhash.text import title


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_up(port: int, workers: int, seconds: float = 120) -> None:
    """Until each of the ``workers`` processes answers (each warms up before it listens).

    A connection stays with the worker that accepted it: measuring while one worker
    still warms up would send every client to the other.
    """
    deadline, seen = time.monotonic() + seconds, set()
    while time.monotonic() < deadline and len(seen) < workers:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/health")
            response = connection.getresponse()
            if response.status == 200:
                seen.add(json.loads(response.read())["worker"])
            connection.close()
        except OSError:
            time.sleep(0.2)
    if len(seen) < workers:
        raise SystemExit(f"{len(seen)} of {workers} server processes came up")


def client(port: int, queries: list[str], query: str, deadline: float, out: Any) -> None:
    """One keep-alive connection sending ``queries`` in turn; its latencies go to ``out``.

    Raw HTTP/1.1 over a socket, in its own process: the load generator should cost
    the two cores as little as it can, so that the server is what is measured.
    """
    connection = socket.create_connection(("127.0.0.1", port), timeout=30)
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = connection.makefile("rb")
    requests = [
        f"GET /search?q={urllib.parse.quote(q)}&{query} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
        for q in queries
    ]
    connection.sendall(b"GET /health HTTP/1.1\r\nHost: bench\r\n\r\n")
    worker = json.loads(answer(reader)[1])["worker"]  # which process this connection has
    times, failed = [], 0
    for request in requests:
        if time.monotonic() > deadline:
            break
        start = time.perf_counter()
        connection.sendall(request)
        status, _ = answer(reader)
        if status.split(b" ", 2)[1:2] == [b"200"]:
            times.append(time.perf_counter() - start)
        else:
            failed += 1
    out.put((times, failed, worker))
    connection.close()


def answer(reader: Any) -> tuple[bytes, bytes]:
    """One HTTP/1.1 answer read off the connection: its status line and body."""
    status, length = reader.readline(), 0
    while (line := reader.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return status, reader.read(length)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("index")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument("--rank", default="fused", help="the ranking asked for (default: fused)")
    args = parser.parse_args()
    index = SemanticIndex.load(args.index)
    rng = np.random.default_rng(0)
    picks = rng.choice(len(index), min(2000, len(index)), replace=False)
    titles = [title(index.docs.record(int(i)).text) for i in picks]
    known = np.diff(index.hasher.vectorizer.counts(titles).indptr) > 0  # else a 400 answer
    titles = [t for t, k in zip(titles, known, strict=True) if k and t.strip()]
    queries = list(itertools.islice(itertools.cycle(titles), args.requests))
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "semhash",
            "serve",
            args.index,
            "--port",
            str(port),
            "--workers",
            str(args.workers),
        ],  # fmt: skip
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_until_up(port, args.workers)
        results: Any = multiprocessing.get_context("fork").Queue()
        shares = [queries[i :: args.clients] for i in range(args.clients)]
        deadline = time.monotonic() + args.seconds
        clients = [
            multiprocessing.get_context("fork").Process(
                target=client, args=(port, share, f"k={args.k}&rank={args.rank}", deadline, results)
            )
            for share in shares
        ]
        start = time.perf_counter()
        for process in clients:
            process.start()
        answers = [results.get() for _ in clients]
        elapsed = time.perf_counter() - start
        for process in clients:
            process.join()
    finally:
        server.terminate()
        server.wait(10)
    latencies = [t for times, _, _ in answers for t in times]
    failed = sum(f for _, f, _ in answers)
    per_worker = sorted(collections.Counter(w for _, _, w in answers).values(), reverse=True)
    ms = np.array(latencies) * 1000
    result = {
        "index": args.index,
        "documents": len(index),
        "clients": args.clients,
        "clients_per_worker": per_worker,  # the kernel hands each connection to one worker
        "rank": args.rank,
        "requests": len(ms),
        "not_200": failed,  # e.g. 400: a title with no word of the vocabulary
        "seconds": round(elapsed, 2),
        "requests_per_second": round(len(ms) / elapsed, 1),
        **{f"p{p}_ms": round(float(np.percentile(ms, p)), 2) for p in (50, 90, 99)},
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
