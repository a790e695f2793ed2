"""``semhash serve``: a JSON API and a search page over one index (Starlette + uvicorn).

Endpoints: ``GET /search?q=&k=&rank=&depth=&radius=&engine=``,
``GET /similar/{doc_id}`` (same parameters but q), ``GET /doc/{doc_id}``,
``GET /health``, ``GET /info`` and the page at ``/``.  Bad parameters answer 400,
unknown ids 404, both as ``{"error": "..."}``.

- **Follows the index.**  Served from a folder, the app notices a new live
  version (the manifest replaced by ``semhash add`` or ``remove`` in another
  process) and switches to it between requests: each request reads one
  version from start to end, and ``/info`` names the version served.
- **Bounded.**  At most ``Limits.pending`` searches run or wait at once; beyond
  that the answer is 503 with ``Retry-After`` at once, not a queue without end.
  The query length, ``k`` and the ranking depth are capped.
- **Authenticated when asked.**  With a token, every endpoint but ``/health``
  and the page wants ``Authorization: Bearer TOKEN`` (compared in constant time);
  the page reads the token from its address (``/#token=...``).
- Ids are data: ``/doc/{id}`` looks the id up in the index, whatever it holds.
- The page is sent with a Content-Security-Policy that allows its own inline
  script and style (by hash) and requests to this server only.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import anyio
import anyio.to_thread
import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from semhash.engine import QueryError, Result, SemanticIndex
from semhash.options import ENGINES, MAX_PENDING, SearchOptions
from semhash.store.versions import MANIFEST
from semhash.threads import cores, set_threads

WARM_UP = ["warm up the kernels and the word counts", "a second query"]
CHECK_EVERY = 0.1  # seconds between looks at the manifest


class JSONResponse(Response):
    """A JSON answer, encoded by orjson: a tenth of the time ``json`` takes for results."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


@dataclass(frozen=True)
class Limits:
    """What one request may ask for, and how many may wait."""

    query_chars: int = 10_000
    k: int = 1000
    depth: int = 10_000
    pending: int = MAX_PENDING  # searches running or waiting; more answer 503


class _Live:
    """The index being served and, for a folder, the manifest it was loaded from."""

    def __init__(self, index: SemanticIndex, folder: Path | None) -> None:
        self.index, self.folder = index, folder
        self._seen = self._stamp()
        self._checked = time.monotonic()
        self._lock = threading.Lock()

    def current(self) -> SemanticIndex:
        """The newest live version (loaded once, when the manifest changes)."""
        if self.folder is None or time.monotonic() - self._checked < CHECK_EVERY:
            return self.index
        with self._lock:
            self._checked = time.monotonic()
            stamp = self._stamp()
            if stamp != self._seen:
                with contextlib.suppress(Exception):  # a half-made version: keep serving the old
                    self.index = _warmed(SemanticIndex.load(self.folder))
                    self._seen = stamp
        return self.index

    def _stamp(self) -> tuple[int, int, int] | None:
        if self.folder is None:
            return None
        try:
            stat = (self.folder / MANIFEST).stat()
        except OSError:
            return None
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


def create_app(
    index: SemanticIndex | str | Path,
    limits: Limits | None = None,
    token: str | None = None,
) -> Starlette:
    """The ASGI application serving ``index`` (an index folder is followed as it changes)."""
    limits = limits or Limits()
    if isinstance(index, SemanticIndex):
        live = _Live(index, None)
    else:
        live = _Live(SemanticIndex.load(index), Path(index))
    page = resources.files("semhash").joinpath("page.html").read_text(encoding="utf-8")
    policy = _content_policy(page)
    pending = 0

    def search_options(request: Request) -> SearchOptions:
        params = request.query_params
        k = _integer(params, "k", 10)
        if not 1 <= k <= limits.k:
            raise HTTPException(400, f"k must be between 1 and {limits.k}, got {k}")
        depth = _integer(params, "depth", 0)
        if not 0 <= depth <= limits.depth:
            raise HTTPException(400, f"depth must be between 0 and {limits.depth}")
        radius = params.get("radius")
        return SearchOptions(
            k=k,
            rank=params.get("rank", "fused"),
            depth=depth,
            radius=None if radius in (None, "") else _integer(params, "radius", 0),
            engine=params.get("engine", "auto"),
        )

    running: anyio.CapacityLimiter | None = None  # made in the event loop, on first use

    async def bounded(work: Callable[[], Response]) -> Response:
        """Run ``work`` in a thread, one per core at a time; the rest wait their turn.

        More searches at once than cores only fight over the cores and the GIL, and
        every answer waits longer.  A worker with one core searches in the event loop
        itself: handing a search of a millisecond to a thread costs a good part of it.
        """
        nonlocal pending, running
        if pending >= limits.pending:
            return JSONResponse(
                {"error": f"busy: {pending} searches in progress; retry shortly"},
                status_code=503,
                headers={"Retry-After": "1"},
            )
        if cores() == 1:
            return work()
        pending += 1
        try:
            running = running or anyio.CapacityLimiter(cores())
            return await anyio.to_thread.run_sync(work, limiter=running)
        finally:
            pending -= 1

    def answer(
        results: list[Result], started: float, version: str | None, **extra: Any
    ) -> Response:
        return JSONResponse(
            {
                **extra,
                "version": version,
                "took_ms": round((time.perf_counter() - started) * 1000, 2),
                "results": [r.to_dict() for r in results],
            }
        )

    async def search(request: Request) -> Response:
        started = time.perf_counter()
        query = request.query_params.get("q", "")
        if not query.strip():
            raise HTTPException(400, "give a query: /search?q=...")
        if len(query) > limits.query_chars:
            raise HTTPException(400, f"the query is longer than {limits.query_chars} characters")
        options = search_options(request)

        def work() -> Response:
            index = live.current()
            return answer(index.search([query], options)[0], started, index.version, query=query)

        return await bounded(work)

    async def similar(request: Request) -> Response:
        started = time.perf_counter()
        doc_id = _path_id(request, "/similar/")
        options = search_options(request)

        def work() -> Response:
            index = live.current()
            position(index, doc_id)
            return answer(index.similar(doc_id, options), started, index.version, like=doc_id)

        return await bounded(work)

    def doc(request: Request) -> Response:
        index = live.current()
        record = index.docs.record(position(index, _path_id(request, "/doc/")))
        return JSONResponse(
            {"id": record.id, "labels": list(record.labels), "split": record.split,
             "text": record.text, "version": index.version}
        )  # fmt: skip

    def health(request: Request) -> Response:
        documents = len(live.current())  # the worker: which process of --workers answered
        return JSONResponse({"status": "ok", "documents": documents, "worker": os.getpid()})

    def info(request: Request) -> Response:
        index = live.current()
        return JSONResponse(
            {"n_bits": index.n_bits, "vocab_size": index.hasher.vectorizer.vocab_size,
             "created": index.created, "version": index.version, **index.stats()}
        )  # fmt: skip

    def home(request: Request) -> Response:
        return HTMLResponse(page, headers={"Content-Security-Policy": policy})

    async def error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 400
        return JSONResponse({"error": getattr(exc, "detail", str(exc))}, status_code=status)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await run_in_threadpool(_warmed, live.index)  # listening starts once this is done
        yield

    routes = [
        Route("/", home),
        Route("/search", search),
        Route("/similar/{doc_id:path}", similar),
        Route("/doc/{doc_id:path}", doc),
        Route("/health", health),
        Route("/info", info),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: error, QueryError: error},
        lifespan=lifespan,
    )
    if token:
        app.add_middleware(_BearerToken, token=token)
    return app


class _BearerToken:
    """ASGI middleware: requests other than the page and ``/health`` need the token."""

    OPEN = ("/", "/health")

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in self.OPEN:
            return await self.app(scope, receive, send)
        given = dict(scope["headers"]).get(b"authorization", b"")
        if hmac.compare_digest(given, self.expected):
            return await self.app(scope, receive, send)
        response = JSONResponse(
            {"error": "this server wants 'Authorization: Bearer TOKEN'"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
        await response(scope, receive, send)


def position(index: SemanticIndex, doc_id: str) -> int:
    try:
        return index.position(doc_id)
    except QueryError as err:
        raise HTTPException(404, str(err)) from None


def _path_id(request: Request, prefix: str) -> str:
    """The id in the path, percent-decoded exactly once (from the raw path when there is one)."""
    raw = request.scope.get("raw_path")
    if not raw:
        return request.path_params["doc_id"]
    return unquote(raw.decode("latin-1").split("?", 1)[0][len(prefix) :], errors="replace")


def _warmed(index: SemanticIndex) -> SemanticIndex:
    """``index`` after a few searches: kernels compiled, word counts and tables built."""
    if len(index):
        # One typed query takes its own (compiled) encoding path.  Every exact engine is
        # warmed, not only the planner's pick: a new version's codes may tip its choice,
        # and a first compile there would hold the switch to that version for seconds.
        for queries in (WARM_UP[:1], WARM_UP):
            with contextlib.suppress(QueryError):
                index.search(queries, k=10, rank="fused")
            for engine in ENGINES:
                with contextlib.suppress(QueryError):
                    index.search(queries, k=10, rank="hamming", engine=engine)
    return index


def _content_policy(page: str) -> str:
    """Only this page's own inline script and style (by hash), and requests to this server."""

    def hashes(tag: str) -> str:
        bodies = re.findall(rf"<{tag}>(.*?)</{tag}>", page, flags=re.DOTALL)
        return " ".join(
            f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'"
            for b in bodies
        )

    return (
        f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    )


def _integer(params: Any, name: str, default: int) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise HTTPException(400, f"{name} must be an integer, got {raw!r}") from None


def app_from_environment() -> Starlette:
    """The app for each ``--workers`` process: the index folder and token from the environment.

    Each of several workers takes its share of the cores: pools of threads that wait for
    each other on a core another worker holds cost more than they add.
    """
    if threads := int(os.environ.get("SEMHASH_SERVE_THREADS") or 0):
        set_threads(threads)
    return create_app(
        Path(os.environ["SEMHASH_SERVE_INDEX"]),
        Limits(pending=int(os.environ.get("SEMHASH_SERVE_PENDING", MAX_PENDING))),
        token=os.environ.get("SEMHASH_SERVE_TOKEN") or None,
    )


def serve(
    folder: Path,
    host: str,
    port: int,
    workers: int = 1,
    token: str | None = None,
    pending: int = MAX_PENDING,
) -> None:
    """Run the service until interrupted; ``workers`` processes share the mapped index."""
    import uvicorn  # imported here: only the serve command needs it

    os.environ["SEMHASH_SERVE_INDEX"] = str(folder)
    os.environ["SEMHASH_SERVE_PENDING"] = str(pending)
    os.environ["SEMHASH_SERVE_TOKEN"] = token or ""
    os.environ["SEMHASH_SERVE_THREADS"] = str(max(1, cores() // workers)) if workers > 1 else ""
    uvicorn.run(
        "semhash.serve:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,  # warnings only: no line a request to format
    )
