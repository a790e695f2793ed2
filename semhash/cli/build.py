"""``index``, ``add``, ``remove`` and ``encode``: commands that write codes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from semhash.cli.app import (
    done,
    hasher_config,
    labels_from_folders_option,
    main,
    milvus_uri,
    model_options,
    user_errors,
)
from semhash.corpus import load_corpus
from semhash.engine import SemanticIndex
from semhash.store.versions import check_target


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
    """Train a hasher on CORPUS and index its documents.

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
        built.use_milvus(milvus_uri(uri), collection or output.resolve().name)
    built.save(output, overwrite=force)
    seconds = time.perf_counter() - started
    summary = {"index": str(output), "documents": len(built), "n_bits": bits}
    summary |= {"buckets": built.buckets.n_buckets, "seconds": round(seconds, 1)}
    done(
        as_json,
        f"indexed {len(built)} documents as {bits}-bit codes in {output} "
        f"({built.buckets.n_buckets} buckets, {seconds:.0f} s)",
        summary,
    )


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
    done(
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
    done(
        as_json,
        f"removed {len(doc_ids)} documents; {index_dir} now holds {len(opened)}",
        {"removed": len(doc_ids), "documents": len(opened)},
    )


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
    done(
        as_json,
        f"encoded {count} documents into {out} ({seconds:.1f} s, {count / seconds:.0f} docs/s)",
        {"documents": count, "out": str(out), "seconds": round(seconds, 2)},
    )
