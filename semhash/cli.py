"""The ``semhash`` command: thin click commands over the public API.

Exit codes: 0 success, 1 a user error (bad input, bad index, bad query; one line
on stderr), 2 a usage error (unknown option, missing argument).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, TypeVar, cast

import click

from semhash.batch import FORMATS, read_queries, search_all, write
from semhash.corpus import CorpusError, load_corpus
from semhash.engine import TWO_STAGE, QueryError, Result, SemanticIndex
from semhash.hasher import HasherConfig
from semhash.index.milvus import MilvusError
from semhash.index.planner import ENGINES
from semhash.protocol import ProtocolError, Row, evaluate_corpus, evaluate_index
from semhash.report import Report
from semhash.store import MANIFEST, IndexFormatError, check_target, read_version
from semhash.text import VectorizerConfig
from semhash.threads import set_threads
from semhash.train import TrainConfig

logger = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])
USER_ERRORS = (
    CorpusError, IndexFormatError, QueryError, ProtocolError, MilvusError, ValueError, OSError,
)  # fmt: skip


def user_errors(command: F) -> F:
    """Turn the library's errors into one line on stderr and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except USER_ERRORS as err:
            raise click.ClickException(str(err)) from None

    return wrapper  # type: ignore[return-value]


@click.group()
@click.version_option(package_name="semhash")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or warnings.")
@click.option("-v", "--verbose", is_flag=True, help="Log what each step does.")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    envvar="SEMHASH_THREADS",
    help="CPU threads for training, encoding and search (default: one per core); "
    "1 when other work keeps the cores busy. Also $SEMHASH_THREADS.",
)
@click.pass_context
def main(ctx: click.Context, quiet: bool, verbose: bool, threads: int | None) -> None:
    """Semantic hashing search: index a corpus, query similar documents, evaluate precision."""
    level = logging.ERROR if quiet else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="semhash: %(message)s")
    if threads:
        set_threads(threads)
    ctx.obj = {"progress": not quiet}


_MODEL_KEYS = (
    "vocab",
    "epochs",
    "min_steps",
    "seed",
    "block_bits",
    "refinements",
    "ema_decay",
    "dropout_keep_words",
    "train_sample",
    "recalibrate_norms",
    "later_neighbor_share",
    "strip_newsgroup",
)


labels_from_folders_option = click.option(
    "--labels-from-folders", is_flag=True, help="Label .txt files by their folder."
)


def model_options(command: F) -> F:
    """Options that decide how a model is trained (shared by ``index`` and ``eval``).

    The command receives them as one ``model`` dict for :func:`hasher_config`, and
    ``device`` on its own.
    """

    @functools.wraps(command)
    def collected(*args: Any, **kwargs: Any) -> Any:
        kwargs["model"] = {key: kwargs.pop(key) for key in _MODEL_KEYS}
        return command(*args, **kwargs)

    options = [
        click.option("--vocab", default=10000, show_default=True, help="Vocabulary size."),
        click.option(
            "--epochs",
            default=TrainConfig.epochs,
            show_default=True,
            help="Epochs at least; a small corpus trains more to reach --min-steps.",
        ),
        click.option(
            "--min-steps",
            default=TrainConfig.min_steps,
            type=click.IntRange(min=0),
            show_default=True,
            help="Optimiser steps at least, however small the corpus (0: just --epochs).",
        ),
        click.option("--seed", default=0, show_default=True, help="Seed: same seed, same codes."),
        click.option(
            "--block-bits",
            default=HasherConfig.block_bits,
            show_default=True,
            help="Longer codes are blocks of this many bits, one model each (0: one model).",
        ),
        click.option(
            "--refinements",
            default=HasherConfig.refinements,
            show_default=True,
            help="Rounds that find neighbours again by two blocks' codes and train on.",
        ),
        click.option(
            "--ema-decay",
            default=TrainConfig.ema_decay,
            type=click.FloatRange(min=0.0, max=1.0, max_open=True),
            show_default=True,
            help="Keep a moving average of the weights, moved 1 - this a step (0: last step's).",
        ),
        click.option(
            "--dropout-keep-words",
            default=HasherConfig.dropout_keep_words,
            type=click.FloatRange(min=0.0),
            show_default=True,
            help="Long documents drop more words: the median keeps this many (0: all lose half).",
        ),
        click.option(
            "--train-sample",
            default=HasherConfig.train_sample,
            type=click.IntRange(min=0),
            show_default=True,
            help="Train on this many documents drawn at random, index all (0: train on all).",
        ),
        click.option(
            "--recalibrate-norms/--norms-as-trained",
            default=HasherConfig.recalibrate_norms,
            show_default=True,
            help="Measure the batch norms again on the whole documents once trained.",
        ),
        click.option(
            "--later-neighbor-share",
            default=HasherConfig.later_neighbor_share,
            type=click.FloatRange(min=0.0, max=1.0, min_open=True),
            show_default=True,
            help="Blocks past the two teachers learn from this nearest share of neighbours.",
        ),
        click.option(
            "--strip-newsgroup",
            is_flag=True,
            help="Ignore Usenet headers, signatures and quoted replies when learning.",
        ),
        click.option(
            "--device", default="cpu", show_default=True, help="Torch device to train on."
        ),
    ]
    for option in reversed(options):
        collected = option(collected)
    return cast(F, collected)


def hasher_config(
    n_bits: int,
    *,
    vocab: int,
    epochs: int,
    min_steps: int,
    seed: int,
    block_bits: int,
    refinements: int,
    ema_decay: float,
    dropout_keep_words: float,
    train_sample: int,
    recalibrate_norms: bool,
    later_neighbor_share: float,
    strip_newsgroup: bool,
) -> HasherConfig:
    return HasherConfig(
        n_bits=n_bits,
        block_bits=block_bits,
        refinements=refinements,
        dropout_keep_words=dropout_keep_words,
        train_sample=train_sample,
        recalibrate_norms=recalibrate_norms,
        later_neighbor_share=later_neighbor_share,
        vectorizer=VectorizerConfig(max_features=vocab, strip_newsgroup=strip_newsgroup),
        train=replace(
            TrainConfig(), epochs=epochs, min_steps=min_steps, ema_decay=ema_decay, seed=seed
        ),
    )


@main.command()
@click.argument("corpus")
@click.option(
    "-o", "--output", required=True, type=click.Path(path_type=Path), help="Index folder."
)
@click.option("--bits", default=32, show_default=True, help="Code length, 1 to 128.")
@model_options
@labels_from_folders_option
@click.option("--force", is_flag=True, help="Replace an existing index at OUTPUT.")
@click.option(
    "--backend",
    type=click.Choice(["local", "milvus"]),
    default="local",
    show_default=True,
    help="Also keep the codes in Milvus, and search there.",
)
@click.option("--uri", help="Milvus address (http://host:19530) or a Milvus Lite file (.db).")
@click.option(
    "--from-codes",
    is_flag=True,
    help="CORPUS is a Parquet file from 'semhash encode'; --model names the index that made it.",
)
@click.option(
    "--model", "model_dir", type=click.Path(path_type=Path), help="With --from-codes: its index."
)
@click.option("--collection", help="Milvus collection (default: the index folder's name).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@click.pass_obj
@user_errors
def index(
    obj: dict[str, Any],
    corpus: str,
    output: Path,
    bits: int,
    model: dict[str, Any],
    device: str,
    labels_from_folders: bool,
    force: bool,
    backend: str,
    uri: str | None,
    from_codes: bool,
    model_dir: Path | None,
    collection: str | None,
    as_json: bool,
) -> None:
    r"""Train a hasher on CORPUS and index its documents.

    CORPUS is a bundled corpus name, a .jsonl(.gz) file or a folder of .txt files.

    \b
    Examples:
      semhash index 20newsgroups -o index/ --bits 32
      semhash index 20newsgroups -o index/ --backend milvus --uri milvus.db
      semhash index codes.parquet --from-codes --model index/ -o big/ --backend milvus --uri URI
    """
    if backend == "milvus" and not uri:
        raise click.UsageError("--backend milvus needs --uri")
    if from_codes != (model_dir is not None):
        raise click.UsageError("--from-codes and --model go together")
    started = time.perf_counter()
    config = hasher_config(bits, **model)
    check_target(output, overwrite=force)  # fail before training, not after
    if model_dir is not None:
        from semhash.encode import read_codes  # needs the scale extra (pyarrow)

        ids, codes, labels = read_codes(corpus)
        built = SemanticIndex.from_codes(SemanticIndex.load(model_dir).hasher, ids, codes, labels)
        bits = built.n_bits
    else:
        docs = load_corpus(corpus, labels_from_folders=labels_from_folders)
        built = SemanticIndex.build(docs, config, progress=obj["progress"], device=device)
    if backend == "milvus" and uri:
        built.use_milvus(_milvus_uri(uri), collection or output.resolve().name)
    built.save(output, overwrite=force)
    seconds = time.perf_counter() - started
    summary = {"index": str(output), "documents": len(built), "n_bits": bits}
    summary |= {"buckets": built.buckets.n_buckets, "seconds": round(seconds, 1)}
    _done(
        as_json,
        f"indexed {len(built)} documents as {bits}-bit codes in {output} "
        f"({built.buckets.n_buckets} buckets, {seconds:.0f} s)",
        summary,
    )


@main.command()
@click.argument("index_dir", type=click.Path(path_type=Path))
@click.argument("text", required=False)
@click.option("--like", "like", help="Find documents similar to this indexed document id.")
@click.option("-k", default=10, show_default=True, help="Number of results.")
@click.option("--radius", type=int, help="Only results within this Hamming distance.")
@click.option("--dense", is_flag=True, help="Rank by cosine of the real-valued codes (faiss).")
@click.option(
    "--rerank",
    default=0,
    show_default=True,
    help="Take this many Hamming neighbours, then order them by dense cosine.",
)
@click.option(
    "--engine",
    type=click.Choice([*ENGINES, TWO_STAGE]),
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
    radius: int | None,
    dense: bool,
    rerank: int,
    engine: str,
    as_json: bool,
    batch: Path | None,
    fmt: str,
    tag: str,
    output: Path | None,
    filter_: str | None,
    label: str | None,
) -> None:
    r"""Search INDEX_DIR for documents like TEXT, like an indexed document, or a file of queries.

    \b
    Examples:
      semhash query index/ "nasa space shuttle launch" -k 5
      semhash query index/ --like train/sci.space/60233 --json
      semhash query index/ --batch queries.txt --format trec -k 100 -o run.trec
    """
    if sum(x is not None for x in (text, like, batch)) != 1:
        raise click.UsageError("give exactly one of TEXT, --like DOC_ID or --batch FILE")
    loaded = SemanticIndex.load(index_dir)
    where = " and ".join(f"({x})" for x in (filter_, label and _label_filter(label)) if x) or None
    if batch is not None:
        started = time.perf_counter()
        queries = read_queries(batch)
        options = {"radius": radius, "dense": dense, "rerank": rerank, "engine": engine,
                   "filter": where}  # fmt: skip
        hits = search_all(loaded, queries, k, obj["progress"], **options)
        hamming_bits = None if dense or rerank else loaded.n_bits
        with click.open_file(str(output or "-"), "w", encoding="utf-8", atomic=True) as out:
            written = write(out, hits, fmt, tag, hamming_bits)
        if obj["progress"]:
            seconds = time.perf_counter() - started
            click.echo(f"answered {written} queries in {seconds:.1f} s", err=True)
        return
    if like is not None:
        results = loaded.similar(like, k, radius, dense, rerank, engine, where)
    else:
        results = loaded.search([str(text)], k, radius, dense, rerank, engine, where)[0]
    if as_json:
        click.echo(
            json.dumps({"query": text, "like": like, "results": [r.to_dict() for r in results]})
        )
    else:
        _print_results(results, "score" if dense or rerank else "dist")


def _label_filter(label: str) -> str:
    """Milvus expression: ``label`` is one of the ';'-joined labels."""
    quoted = json.dumps(label)[1:-1]
    return (
        f'labels == "{quoted}" or labels like "{quoted};%" '
        f'or labels like "%;{quoted}" or labels like "%;{quoted};%"'
    )


def _milvus_uri(uri: str) -> str:
    """A Milvus Lite file as an absolute path (the index may be opened from elsewhere)."""
    return uri if "://" in uri else str(Path(uri).resolve())


def _done(as_json: bool, message: str, summary: dict[str, Any]) -> None:
    """The command's final line: a sentence, or the same facts as JSON."""
    click.echo(json.dumps(summary) if as_json else message)


def _print_results(results: Sequence[Result], score_name: str) -> None:
    if not results:
        click.echo("no results")
        return
    width = max(len(r.id) for r in results)
    click.echo(f"{'rank':>4}  {score_name:>6}  {'id':<{width}}  [labels] title")
    for r in results:
        score = f"{r.score:.3f}" if score_name == "score" else f"{int(r.score)}"
        labels = ",".join(r.labels) or "-"
        click.echo(f"{r.rank:>4}  {score:>6}  {r.id:<{width}}  [{labels}] {r.title[:100]}")


@main.command()
@click.argument("index_dir", type=click.Path(path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, help="TCP port.")
@user_errors
def serve(index_dir: Path, host: str, port: int) -> None:
    """Serve INDEX_DIR: a JSON API and a search page at http://HOST:PORT/.

    Endpoints: /search?q=&k=&radius=&dense=&rerank=&engine=, /similar/DOC_ID,
    /doc/DOC_ID, /health, /info.

    Example: semhash serve index/ --port 8000
    """
    from semhash.serve import serve as run  # starlette and uvicorn load only here

    loaded = SemanticIndex.load(index_dir)
    click.echo(f"serving {len(loaded)} documents from {index_dir} at http://{host}:{port}/")
    run(loaded, host, port)


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
    _print_results(found.neighbours, "dist")


@main.command()
@click.argument("corpus")
@click.option(
    "--index",
    "index_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="The index whose trained model encodes.",
)
@click.option(
    "--out", required=True, type=click.Path(path_type=Path), help="Parquet file to write."
)
@click.option("--workers", default=2, show_default=True, help="Local Dask worker processes.")
@click.option("--scheduler", help="Address of a running Dask scheduler (instead of --workers).")
@click.option("--chunk", default=5000, show_default=True, help="Documents per task.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@user_errors
def encode(
    corpus: str,
    index_dir: Path,
    out: Path,
    workers: int,
    scheduler: str | None,
    chunk: int,
    as_json: bool,
) -> None:
    """Encode CORPUS with an index's model on a Dask cluster into Parquet (id, code, labels).

    The corpus is streamed in chunks, never loaded whole; codes are the same bytes a
    single process would compute.  Needs the scale extra: pip install 'semhash[scale]'.

    Example: semhash encode big.jsonl.gz --index index/ --out codes.parquet --workers 2
    """
    try:
        from semhash.encode import encode_to_parquet
    except ImportError as err:
        raise click.ClickException(
            f"semhash encode needs Dask and pyarrow ({err.name} is missing): "
            "pip install 'semhash[scale]'"
        ) from None
    if workers < 1 or chunk < 1:
        raise click.BadParameter("--workers and --chunk must be at least 1")
    started = time.perf_counter()
    count = encode_to_parquet(index_dir, corpus, out, workers, scheduler, chunk)
    seconds = time.perf_counter() - started
    _done(
        as_json,
        f"encoded {count} documents into {out} ({seconds:.1f} s, {count / seconds:.0f} docs/s)",
        {"documents": count, "out": str(out), "seconds": round(seconds, 2)},
    )


@main.command(name="eval")
@click.argument("target")
@click.option("--bits", help="Bit lengths to train, e.g. 8,16,32,64,128 (default 32).")
@click.option("-k", default=100, show_default=True, help="Precision at k.")
@model_options
@click.option("--no-baselines", is_flag=True, help="Skip TF-IDF, LSH and ITQ.")
@labels_from_folders_option
@click.option(
    "--test-fraction",
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    default=0.2,
    show_default=True,
    help="A corpus with no train/test split: the share of its documents, drawn by --seed, "
    "that query the rest.",
)
@click.option(
    "--report",
    type=click.Path(path_type=Path),
    default="semhash-eval.json",
    show_default=True,
    help="A .json file for the numbers, or a folder for an HTML report with plots.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON, not a table.")
@click.pass_obj
@user_errors
def eval_(
    obj: dict[str, Any],
    target: str,
    bits: str | None,
    k: int,
    model: dict[str, Any],
    device: str,
    no_baselines: bool,
    labels_from_folders: bool,
    test_fraction: float,
    report: Path,
    as_json: bool,
) -> None:
    """Precision@k of test documents querying train documents (a hit shares a label).

    TARGET is an index folder (its stored codes are scored) or a corpus (trained at
    each bit length; a length made of a longer one's first 32-bit blocks is read off
    it).  Baselines run on the same split in the same run.  A corpus without a
    train/test split holds out --test-fraction of its documents as the queries.

    Example: semhash eval 20newsgroups --bits 16,32,64
    """
    if k < 1:
        raise click.BadParameter(f"must be at least 1, got {k}", param_hint="-k")
    html = report.suffix != ".json"
    if not report.parent.is_dir() or (report.is_dir() != html and report.exists()):
        problem = (
            "is in a folder that does not exist"
            if not report.parent.is_dir()
            else "is a file; give a folder for an HTML report"
            if html
            else "is a folder; give a .json file or a folder name"
        )
        raise click.BadParameter(f"{report} {problem}", param_hint="--report")
    collected = Report() if html else None
    is_index = (Path(target) / MANIFEST).exists()
    bit_lengths = _parse_bits(bits or "32")
    if is_index:
        loaded = SemanticIndex.load(target)
        if bits is not None and bit_lengths != [loaded.n_bits]:
            raise click.BadParameter(
                f"{target} holds {loaded.n_bits}-bit codes; --bits {bits} does not match",
                param_hint="--bits",
            )
    started = time.perf_counter()
    show = (lambda row: None) if as_json else (lambda row: click.echo(table_line(row)))
    if not as_json:
        click.echo(table_header(k))
    if is_index:
        rows = evaluate_index(loaded, k=k, baselines=not no_baselines, report=collected)
        for row in rows:
            show(row)
        source: dict[str, Any] = {"index": target}
    else:
        config = hasher_config(bit_lengths[0], **model)
        loaded_corpus = load_corpus(target, labels_from_folders=labels_from_folders)
        corpus = loaded_corpus.held_out(test_fraction, model["seed"])  # itself if it has a split
        held_out = corpus is not loaded_corpus
        if held_out:
            logger.warning(
                "%s has no train/test split: %d of its %d documents, drawn with seed %d, "
                "query the rest (--test-fraction, --seed)",
                target,
                corpus.splits.count("test"),
                len(corpus),
                model["seed"],
            )
        rows = evaluate_corpus(
            corpus,
            bit_lengths,
            config,
            k,
            not no_baselines,
            obj["progress"],
            device,
            on_row=show,  # each row as soon as it is measured
            report=collected,
        )
        source = {"corpus": target, "config": config.to_dict()}
        if held_out:
            source["held_out"] = {"test_fraction": test_fraction, "seed": model["seed"]}
    summary = {**source, "k": k, "rows": [r.to_dict() for r in rows]}
    if collected is None:
        _write_json(report, summary)
        written = f"{report}"
    else:
        page = collected.write(report, summary, progress=obj["progress"])
        written = f"{page} (plots and report.json beside it)"
    seconds = time.perf_counter() - started
    _done(as_json, f"report written to {written} ({seconds:.0f} s)", summary)


def _parse_bits(bits: str) -> list[int]:
    try:
        values = [int(b) for b in bits.split(",") if b.strip()]
    except ValueError:
        raise click.BadParameter(
            f"expected numbers like 16,32,64, got {bits!r}", param_hint="--bits"
        ) from None
    for value in values:
        if not 1 <= value <= 128:
            raise click.BadParameter(
                f"bit lengths must be 1 to 128, got {value}", param_hint="--bits"
            )
    if not values:
        raise click.BadParameter("no bit length given", param_hint="--bits")
    return values


def table_header(k: int) -> str:
    return f"{'method':<24} {'bits':>4} {f'P@{k}':>7} {'tie-aware':>9} {'seconds':>8}"


def table_line(row: Row) -> str:
    """One row of the precision table; seconds are training time for semhash rows."""
    bits = str(row.n_bits) if row.n_bits else "-"
    scores = f"{row.precision:>7.4f} {row.tie_aware:>9.4f}"
    return f"{row.method:<24} {bits:>4} {scores} {row.seconds:>8.1f}"


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)


@main.command()
@click.argument("index_dir", type=click.Path(path_type=Path))
@click.argument("corpus")
@click.option("--no-replace", is_flag=True, help="Refuse ids already indexed instead of replacing.")
@labels_from_folders_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@click.pass_obj
@user_errors
def add(
    obj: dict[str, Any],
    index_dir: Path,
    corpus: str,
    no_replace: bool,
    labels_from_folders: bool,
    as_json: bool,
) -> None:
    """Encode CORPUS with the index's trained model and add its documents (no retraining).

    A document whose id is already indexed replaces the old one unless --no-replace.
    The index changes as one new version: readers see the old or the new one whole.

    Example: semhash add index/ new-posts.jsonl
    """
    started = time.perf_counter()
    docs = load_corpus(corpus, labels_from_folders=labels_from_folders)
    with SemanticIndex.update(index_dir) as opened:
        replaced = opened.add(docs, replace=not no_replace, progress=obj["progress"])
    seconds = time.perf_counter() - started
    _done(
        as_json,
        f"added {len(docs) - replaced} documents, replaced {replaced}; "
        f"{index_dir} now holds {len(opened)} ({seconds:.1f} s)",
        {"added": len(docs) - replaced, "replaced": replaced, "documents": len(opened)},
    )


@main.command()
@click.argument("index_dir", type=click.Path(path_type=Path))
@click.argument("doc_ids", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@user_errors
def remove(index_dir: Path, doc_ids: tuple[str, ...], as_json: bool) -> None:
    """Remove documents by id (an unknown id removes nothing and exits 1).

    Example: semhash remove index/ train/sci.space/60154 train/sci.space/60155
    """
    with SemanticIndex.update(index_dir) as opened:
        opened.remove(doc_ids)
    _done(
        as_json,
        f"removed {len(doc_ids)} documents; {index_dir} now holds {len(opened)}",
        {"removed": len(doc_ids), "documents": len(opened)},
    )


@main.command()
@click.argument("index_dir", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@user_errors
def info(index_dir: Path, as_json: bool) -> None:
    """Describe an index: format, bits, vocabulary, documents, buckets, configuration.

    Example: semhash info index/
    """
    manifest = read_version(index_dir).manifest
    stats = manifest.get("stats") or SemanticIndex.load(index_dir).stats()  # format 1 had none
    keys = ("format_version", "version", "created", "updated", "n_bits", "vocab_size")
    shown = {key: manifest.get(key) for key in keys}
    if as_json:
        click.echo(json.dumps({**shown, **stats, "config": manifest["config"]}, indent=2))
        return
    for key, value in {**shown, **stats}.items():
        click.echo(f"{key.replace('_', ' '):<16} {value}")
    click.echo(f"{'config':<16} {json.dumps(manifest['config'])}")


@main.command()
@click.argument("index_dir", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the problems as JSON.")
@user_errors
def check(index_dir: Path, as_json: bool) -> None:
    """Verify every file's checksum and that codes, buckets and documents agree.

    Exits 1 and prints one line per problem when anything is wrong.

    Example: semhash check index/
    """
    found = SemanticIndex.check(index_dir)
    if as_json:
        click.echo(json.dumps({"index": str(index_dir), "ok": not found, "problems": found}))
    for problem in found:
        click.echo(problem, err=True)
    if found:
        raise click.ClickException(f"{index_dir}: {len(found)} problem(s) found")
    if not as_json:
        click.echo(f"{index_dir}: ok")


@main.command()
@click.option(
    "-o", "--output", default="semhash-demo", show_default=True, type=click.Path(path_type=Path)
)
@click.option("--epochs", default=TrainConfig.epochs, show_default=True)
@click.pass_context
def demo(ctx: click.Context, output: Path, epochs: int) -> None:
    """Index the bundled 20 Newsgroups at 32 bits, query and explain it, write an HTML report.

    Example: semhash demo -o semhash-demo/
    """
    steps: list[tuple[str, Callable[..., Any], dict[str, Any]]] = [
        (
            "index",
            index,
            {
                "corpus": "20newsgroups",
                "output": output,
                "bits": 32,
                "epochs": epochs,
                "force": True,
            },
        ),
        ("query", query, {"index_dir": output, "text": "nasa space shuttle launch orbit", "k": 5}),
        ("query --like", query, {"index_dir": output, "like": "test/rec.autos/103007", "k": 5}),
        ("explain", explain, {"index_dir": output, "doc_id": "test/rec.autos/103007", "k": 3}),
        (
            "eval",
            eval_,
            {"target": str(output), "report": output.with_name(f"{output.name}-report")},
        ),
    ]
    for title, command, kwargs in steps:
        click.secho(f"\n== semhash {title} ==", bold=True)
        ctx.invoke(command, **kwargs)
