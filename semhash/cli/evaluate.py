"""``eval`` and ``demo``: retrieval precision by the literature's protocol."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from semhash.cli.app import (
    done,
    hasher_config,
    labels_from_folders_option,
    main,
    model_options,
    user_errors,
)
from semhash.corpus import load_corpus
from semhash.engine import SemanticIndex
from semhash.eval.protocol import Row, evaluate_corpus, evaluate_index
from semhash.eval.report import Report
from semhash.store.versions import MANIFEST

logger = logging.getLogger(__name__)


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
    done(as_json, f"report written to {written} ({seconds:.0f} s)", summary)


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
@click.option(
    "-o", "--output", default="semhash-demo", show_default=True, type=click.Path(path_type=Path)
)
@click.option(
    "--epochs", type=click.IntRange(min=1), help="Epochs per code block (default: the recipe's)."
)
@click.pass_context
def demo(ctx: click.Context, output: Path, epochs: int | None) -> None:
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


from semhash.cli.build import index  # noqa: E402
from semhash.cli.search import explain, query  # noqa: E402
