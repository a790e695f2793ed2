"""The README's images: the search page in headless Chromium, and the evaluation report's plots.

Serves INDEX on a loopback port, searches it in Debian's Chromium (through
Playwright), screenshots the results and a "more like this" page, then writes the
HTML evaluation report of INDEX and copies two of its plots.

    python scripts/docs_images.py runs/20ng-64 --out benchmarks/images
"""

from __future__ import annotations

import argparse
import shutil
import socket
import threading
import time
from pathlib import Path

import uvicorn
from playwright.sync_api import sync_playwright

from semhash import SemanticIndex
from semhash.eval.protocol import evaluate_index
from semhash.eval.report import Report
from semhash.serve import create_app

QUERY = "nasa space shuttle launch orbit"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("index", type=Path)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/images"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    index = SemanticIndex.load(args.index)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(index), port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    chromium = shutil.which("chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 820})
        page.goto(f"http://127.0.0.1:{port}/#q={QUERY}")
        page.wait_for_selector("#results li")
        page.wait_for_function("document.getElementById('about').textContent.length > 0")
        page.screenshot(path=str(args.out / "search-page.png"))
        browser.close()
    server.should_exit = True

    report = Report()
    rows = evaluate_index(index, report=report)
    folder = args.out / "report"
    summary = {"index": str(args.index), "k": 100, "rows": [r.to_dict() for r in rows]}
    report.write(folder, summary)
    for name in ("precision_at_k.png", "map.png"):
        shutil.copy(folder / name, args.out / f"report-{name}")
    shutil.rmtree(folder)
    print(f"wrote {args.out / 'search-page.png'} and report plots to {args.out}")


if __name__ == "__main__":
    main()
