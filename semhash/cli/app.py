"""The ``semhash`` command: thin click commands over the public API.

Exit codes: 0 success, 1 a user error (bad input, bad index, bad query; one line
on stderr), 2 a usage error (unknown option, missing argument).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Sequence
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
from semhash.train.recipe import Recipe

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


_MODEL_KEYS = ("vocab", "epochs", "seed", "train_sample", "strip_newsgroup", "recipe")


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
            type=click.IntRange(min=1),
            help="Epochs each code block trains, exactly (default: the recipe's 60; 90 for "
            "codes under 32 bits, 80 for brief documents; more to make 750 steps of 512 "
            "documents, 1,200 from 5,000 documents on; fewer for a large corpus).",
        ),
        click.option("--seed", default=0, show_default=True, help="Seed: same seed, same codes."),
        click.option(
            "--train-sample",
            default=0,
            type=click.IntRange(min=0),
            show_default=True,
            help="Train on this many documents drawn at random, index all (0: train on all).",
        ),
        click.option(
            "--strip-newsgroup",
            is_flag=True,
            help="Ignore Usenet headers, signatures and quoted replies when learning.",
        ),
        click.option(
            "--recipe",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="A JSON file of training settings to change from the tuned recipe.",
        ),
        click.option(
            "--device",
            default="auto",
            show_default=True,
            help="Torch device to train on (auto: CUDA when present, else the CPU).",
        ),
    ]
    for option in reversed(options):
        collected = option(collected)
    return cast(F, collected)


def hasher_config(
    n_bits: int,
    *,
    vocab: int,
    epochs: int | None,
    seed: int,
    train_sample: int,
    strip_newsgroup: bool,
    recipe: Path | None,
) -> HasherConfig:
    return HasherConfig(
        n_bits=n_bits,
        seed=seed,
        epochs=epochs,
        train_sample=train_sample,
        vectorizer=VectorizerConfig(max_features=vocab, strip_newsgroup=strip_newsgroup),
        recipe=Recipe.load(recipe) if recipe else Recipe(),
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
