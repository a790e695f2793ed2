"""The ``semhash`` command: thin click commands over the public API.

Exit codes: 0 success, 1 a user error (bad input, bad index, bad query; one line
on stderr), 2 a usage error (unknown option, missing argument).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar, cast

import click

from semhash.corpus import CorpusError
from semhash.engine import QueryError, Result
from semhash.eval.protocol import ProtocolError
from semhash.hasher import HasherConfig
from semhash.index.milvus import MilvusError
from semhash.store.versions import IndexFormatError
from semhash.text import VectorizerConfig
from semhash.threads import set_threads
from semhash.train.loop import TrainConfig

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


def label_filter(label: str) -> str:
    """Milvus expression: ``label`` is one of the ';'-joined labels."""
    quoted = json.dumps(label)[1:-1]
    return (
        f'labels == "{quoted}" or labels like "{quoted};%" '
        f'or labels like "%;{quoted}" or labels like "%;{quoted};%"'
    )


def milvus_uri(uri: str) -> str:
    """A Milvus Lite file as an absolute path (the index may be opened from elsewhere)."""
    return uri if "://" in uri else str(Path(uri).resolve())


def done(as_json: bool, message: str, summary: dict[str, Any]) -> None:
    """The command's final line: a sentence, or the same facts as JSON."""
    click.echo(json.dumps(summary) if as_json else message)


def print_results(results: Sequence[Result], score_name: str) -> None:
    if not results:
        click.echo("no results")
        return
    width = max(len(r.id) for r in results)
    click.echo(f"{'rank':>4}  {score_name:>6}  {'id':<{width}}  [labels] title")
    for r in results:
        score = f"{r.score:.3f}" if score_name == "score" else f"{int(r.score)}"
        labels = ",".join(r.labels) or "-"
        click.echo(f"{r.rank:>4}  {score:>6}  {r.id:<{width}}  [{labels}] {r.title[:100]}")
