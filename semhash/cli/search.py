"""``query``, ``explain`` and ``serve``: commands that read an index."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from semhash.batch import FORMATS, read_queries, search_all, write
from semhash.cli.app import (
    label_filter,
    main,
    print_results,
    user_errors,
)
from semhash.engine import SemanticIndex
from semhash.options import DEPTH, MAX_PENDING, RANKS, SEARCH_ENGINES, SearchOptions


@main.command()
@click.argument("index_dir", type=click.Path(path_type=Path))
@click.argument("text", required=False)
@click.option("--like", "like", help="Find documents similar to this indexed document id.")
@click.option("-k", default=10, show_default=True, help="Number of results.")
@click.option(
    "--rank",
    type=click.Choice(RANKS),
    default="fused",
    show_default=True,
    help="fused: Hamming candidates ordered by code cosine and BM25; hamming: exact Hamming "
    "order (the literature's); cosine: candidates by code cosine; dense: cosine over all (faiss).",
)
@click.option(
    "--depth",
    default=0,
    help=f"Hamming candidates that fused or cosine ranking reads (0: {DEPTH:,}).",
)
@click.option("--radius", type=int, help="Only candidates within this Hamming distance.")
@click.option(
    "--engine",
    type=click.Choice(SEARCH_ENGINES),
    default="auto",
    show_default=True,
    help="Hamming search: auto picks the fastest exact one; two-stage is approximate.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--batch",
    type=click.Path(path_type=Path),
    help="Answer every query in this file (one per line, or .jsonl with id and text).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="jsonl",
    show_default=True,
    help="Output of --batch: JSON lines, or a TREC run file (qid Q0 docid rank score tag).",
)
@click.option("--tag", default="semhash", show_default=True, help="Run tag of a TREC run.")
@click.option("--filter", "filter_", help="Milvus backend: a boolean expression over labels, id.")
@click.option("--label", help="Milvus backend: only documents with this label.")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write --batch results here.")
@click.pass_obj
@user_errors
def query(
    obj: dict[str, Any],
    index_dir: Path,
    text: str | None,
    like: str | None,
    k: int,
    rank: str,
    depth: int,
    radius: int | None,
    engine: str,
    as_json: bool,
    batch: Path | None,
    fmt: str,
    tag: str,
    output: Path | None,
    filter_: str | None,
    label: str | None,
) -> None:
    """Search INDEX_DIR for documents like TEXT, like an indexed document, or a file of queries.

    \b
    Examples:
      semhash query index/ "nasa space shuttle launch" -k 5
      semhash query index/ --like train/sci.space/60233 --json
      semhash query index/ --batch queries.txt --format trec -k 100 -o run.trec
    """
    if sum(x is not None for x in (text, like, batch)) != 1:
        raise click.UsageError("give exactly one of TEXT, --like DOC_ID or --batch FILE")
    where = " and ".join(f"({x})" for x in (filter_, label and label_filter(label)) if x) or None
    options = SearchOptions(k, rank, depth, radius, engine, where)
    loaded = SemanticIndex.load(index_dir)
    if batch is not None:
        started = time.perf_counter()
        queries = read_queries(batch)
        hits = search_all(loaded, queries, options, obj["progress"])
        hamming_bits = loaded.n_bits if rank == "hamming" else None
        with click.open_file(str(output or "-"), "w", encoding="utf-8", atomic=True) as out:
            written = write(out, hits, fmt, tag, hamming_bits)
        if obj["progress"]:
            seconds = time.perf_counter() - started
            click.echo(f"answered {written} queries in {seconds:.1f} s", err=True)
        return
    if like is not None:
        results = loaded.similar(like, options)
    else:
        results = loaded.search([str(text)], options)[0]
    if as_json:
        click.echo(
            json.dumps({"query": text, "like": like, "results": [r.to_dict() for r in results]})
        )
    else:
        print_results(results, "dist" if rank == "hamming" else "score")


@main.command()
@click.argument("index_dir", type=click.Path(path_type=Path))
@click.argument("doc_id")
@click.option("-k", default=10, show_default=True, help="Number of neighbours.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@user_errors
def explain(index_dir: Path, doc_id: str, k: int, as_json: bool) -> None:
    """Show which words drive DOC_ID's code, bit by bit, and its nearest neighbours.

    Example: semhash explain index/ train/sci.space/60233
    """
    from semhash.explain import explain as explain_doc

    found = explain_doc(SemanticIndex.load(index_dir), doc_id, k=k)
    if as_json:
        neighbours = [r.to_dict() for r in found.neighbours]
        click.echo(json.dumps({**asdict(found), "neighbours": neighbours}, indent=2))
        return
    click.echo(f"{found.doc_id}  [{', '.join(found.labels)}]  {found.title}")
    click.echo(f"code            {found.code}")
    click.echo("code words      " + ", ".join(w for w, _ in found.code_words))
    click.echo("document words  " + ", ".join(w for w, _ in found.document_words))
    click.echo("active bits")
    for bit, words in found.bit_words:
        click.echo(f"  bit {bit:>3}       {', '.join(words)}")
    click.echo("nearest neighbours")
    print_results(found.neighbours, "dist")


@main.command()
@click.argument("index_dir", type=click.Path(path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, help="TCP port.")
@click.option(
    "--workers", default=1, show_default=True, type=click.IntRange(min=1),
    help="Server processes; they share the memory-mapped index.",
)  # fmt: skip
@click.option(
    "--token", envvar="SEMHASH_TOKEN",
    help="Require 'Authorization: Bearer TOKEN' (or set SEMHASH_TOKEN).",
)  # fmt: skip
@click.option("--no-auth", is_flag=True, help="Serve another interface than loopback openly.")
@click.option(
    "--max-pending", default=MAX_PENDING, show_default=True, type=click.IntRange(min=1),
    help="Searches running or waiting per process; more are answered 503 at once.",
)  # fmt: skip
@user_errors
def serve(
    index_dir: Path,
    host: str,
    port: int,
    workers: int,
    token: str | None,
    no_auth: bool,
    max_pending: int,
) -> None:
    """Serve INDEX_DIR: a JSON API and a search page at http://HOST:PORT/.

    Endpoints: /search?q=&k=&rank=&depth=&radius=&engine=, /similar/DOC_ID,
    /doc/DOC_ID, /health, /info.  New versions of the index (semhash add, remove)
    are served as soon as they are written.  Any other host than loopback needs
    --token (or SEMHASH_TOKEN), or --no-auth to publish the index to everyone.

    Example: semhash serve index/ --port 8000
    """
    from semhash.serve import serve as run  # starlette and uvicorn load only here

    if not _loopback(host) and not token and not no_auth:
        raise click.UsageError(
            f"--host {host} publishes the index beyond this machine: give --token TOKEN "
            "(clients send 'Authorization: Bearer TOKEN') or --no-auth"
        )
    loaded = SemanticIndex.load(index_dir)  # a clear error now, before the workers start
    where = f"http://{host}:{port}/" + ("#token=..." if token else "")
    click.echo(f"serving {len(loaded)} documents from {index_dir} at {where}", err=True)
    run(index_dir, host, port, workers, token, max_pending)


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
