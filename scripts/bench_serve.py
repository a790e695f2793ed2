"""Load test of ``semhash serve``: requests/second and latency percentiles of ``/search``.

Starts ``semhash serve INDEX`` on a free loopback port in a subprocess, then
sends at most ``--requests`` queries (the titles of the index's documents) from
``--clients`` concurrent connections, stopping after ``--seconds`` at most.
Loopback only; nothing leaves the machine.

    python scripts/bench_serve.py runs/20ng-32 --requests 2000 --clients 4 --workers 2
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

import numpy as np

from semhash import SemanticIndex
from semhash.text import title


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_up(port: int, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the server did not come up")


def client(port: int, queries: list[str], k: int, deadline: float, out: list[float]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for query in queries:
        if time.monotonic() > deadline:
            return
        start = time.perf_counter()
        connection.request("GET", f"/search?q={urllib.parse.quote(query)}&k={k}")
        response = connection.getresponse()
        response.read()
        if response.status == 200:
            out.append(time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("index")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    args = parser.parse_args()
    index = SemanticIndex.load(args.index)
    rng = np.random.default_rng(0)
    picks = rng.choice(len(index), min(args.requests, len(index)), replace=False)
    queries = [q for q in (title(index.docs.record(int(i)).text) for i in picks) if q.strip()]
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
        wait_until_up(port)
        latencies: list[float] = []
        shares = [queries[i :: args.clients] for i in range(args.clients)]
        deadline = time.monotonic() + args.seconds
        threads = [
            threading.Thread(target=client, args=(port, share, args.k, deadline, latencies))
            for share in shares
        ]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(10)
    ms = np.array(latencies) * 1000
    result = {
        "index": args.index,
        "documents": len(index),
        "clients": args.clients,
        "requests": len(ms),
        "seconds": round(elapsed, 2),
        "requests_per_second": round(len(ms) / elapsed, 1),
        **{f"p{p}_ms": round(float(np.percentile(ms, p)), 2) for p in (50, 90, 99)},
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
