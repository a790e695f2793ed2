"""``semhash serve``: a JSON API and a search page over one index (Starlette + uvicorn).

Endpoints: ``GET /search?q=&k=&radius=&dense=&rerank=&engine=``,
``GET /similar/{doc_id}`` (same parameters but q), ``GET /doc/{doc_id}``,
``GET /health``, ``GET /info`` and the page at ``/``.  Bad parameters answer 400,
unknown ids 404, both as ``{"error": "..."}``.  Limits keep one request from
exhausting the server: the query length, ``k`` and the re-rank depth are capped.
Searches run one at a time (the index builds some structures lazily).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from semhash.engine import TWO_STAGE, QueryError, Result, SemanticIndex
from semhash.index.planner import ENGINES


@dataclass(frozen=True)
class Limits:
    """What one request may ask for."""

    query_chars: int = 10_000
    k: int = 1000
    rerank: int = 10_000


def create_app(index: SemanticIndex, limits: Limits | None = None) -> Starlette:
    """The ASGI application serving ``index``."""
    limits = limits or Limits()
    lock = threading.Lock()
    page = resources.files("semhash").joinpath("page.html").read_text(encoding="utf-8")

    def search_options(request: Request) -> dict[str, Any]:
        params = request.query_params
        k = _integer(params, "k", 10)
        if not 1 <= k <= limits.k:
            raise HTTPException(400, f"k must be between 1 and {limits.k}, got {k}")
        rerank = _integer(params, "rerank", 0)
        if not 0 <= rerank <= limits.rerank:
            raise HTTPException(400, f"rerank must be between 0 and {limits.rerank}")
        engine = params.get("engine", "auto")
        if engine not in (*ENGINES, TWO_STAGE):
            raise HTTPException(400, f"engine must be one of {', '.join((*ENGINES, TWO_STAGE))}")
        radius = params.get("radius")
        return {
            "k": k,
            "radius": None if radius in (None, "") else _integer(params, "radius", 0),
            "dense": params.get("dense", "").lower() in ("1", "true", "yes", "on"),
            "rerank": rerank,
            "engine": engine,
        }

    def answer(results: list[Result], started: float, **extra: Any) -> JSONResponse:
        return JSONResponse(
            {
                **extra,
                "took_ms": round((time.perf_counter() - started) * 1000, 2),
                "results": [r.to_dict() for r in results],
            }
        )

    def search(request: Request) -> JSONResponse:
        started = time.perf_counter()
        query = request.query_params.get("q", "")
        if not query.strip():
            raise HTTPException(400, "give a query: /search?q=...")
        if len(query) > limits.query_chars:
            raise HTTPException(400, f"the query is longer than {limits.query_chars} characters")
        options = search_options(request)
        with lock:
            results = index.search([query], **options)[0]
        return answer(results, started, query=query)

    def similar(request: Request) -> JSONResponse:
        started = time.perf_counter()
        doc_id = request.path_params["doc_id"]
        position(doc_id)
        options = search_options(request)
        with lock:
            results = index.similar(doc_id, **options)
        return answer(results, started, like=doc_id)

    def position(doc_id: str) -> int:
        try:
            return index.position(doc_id)
        except QueryError as err:
            raise HTTPException(404, str(err)) from None

    def doc(request: Request) -> JSONResponse:
        record = index.docs.record(position(request.path_params["doc_id"]))
        return JSONResponse(
            {"id": record.id, "labels": list(record.labels), "split": record.split,
             "text": record.text}
        )  # fmt: skip

    def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "documents": len(index)})

    def info(request: Request) -> JSONResponse:
        return JSONResponse(
            {"n_bits": index.n_bits, "vocab_size": index.hasher.vectorizer.vocab_size,
             "created": index.created, **index.stats()}
        )  # fmt: skip

    def home(request: Request) -> HTMLResponse:
        return HTMLResponse(page)

    async def error(request: Request, exc: Exception) -> JSONResponse:
        status = exc.status_code if isinstance(exc, HTTPException) else 400
        return JSONResponse({"error": getattr(exc, "detail", str(exc))}, status_code=status)

    routes = [
        Route("/", home),
        Route("/search", search),
        Route("/similar/{doc_id:path}", similar),
        Route("/doc/{doc_id:path}", doc),
        Route("/health", health),
        Route("/info", info),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: error, QueryError: error})


def _integer(params: Any, name: str, default: int) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise HTTPException(400, f"{name} must be an integer, got {raw!r}") from None


def serve(index: SemanticIndex, host: str, port: int) -> None:
    """Run the service until interrupted."""
    import uvicorn  # imported here: only the serve command needs it

    uvicorn.run(create_app(index), host=host, port=port, log_level="warning")
