"""``info`` and ``check``: what an index holds and whether it is whole."""

from __future__ import annotations

import json
from pathlib import Path

import click

from semhash.cli.app import (
    main,
    user_errors,
)
from semhash.engine import SemanticIndex
from semhash.index.popcount import available_kernels, kernel
from semhash.store.versions import read_version


@main.command()
@click.argument("index_dir", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@user_errors
def info(index_dir: Path, as_json: bool) -> None:
    """Describe an index: format, bits, vocabulary, documents, buckets, configuration.

    Also the popcount kernel this machine's scans run on (SEMHASH_KERNEL to force one).

    Example: semhash info index/
    """
    manifest = read_version(index_dir).manifest
    stats = manifest.get("stats") or SemanticIndex.load(index_dir).stats()  # format 1 had none
    keys = ("format_version", "version", "created", "updated", "n_bits", "vocab_size")
    shown = {key: manifest.get(key) for key in keys}
    shown["search kernel"] = f"{kernel()} (of {', '.join(available_kernels())})"
    if as_json:
        click.echo(json.dumps({**shown, **stats, "config": manifest["config"]}, indent=2))
        return
    for key, value in {**shown, **stats}.items():
        click.echo(f"{key.replace('_', ' '):<16} {value}")
    click.echo(f"{'config':<16} {json.dumps(manifest['config'])}")


@main.command()
@click.argument("index_dir", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the problems as JSON.")
@click.option(
    "--sample", type=click.IntRange(min=1),
    help="Milvus backend: compare the codes of this many documents (seeded), not all.",
)  # fmt: skip
@click.option(
    "--repair", is_flag=True, help="Milvus backend: make the collection hold the live version."
)
@user_errors
def check(index_dir: Path, as_json: bool, sample: int | None, repair: bool) -> None:
    """Verify every file's checksum and that codes, buckets and documents agree.

    With a Milvus backend, also that the collection holds the same ids and codes as
    the live version.  Exits 1 and prints one line per problem when anything is wrong.

    Example: semhash check index/ --sample 10000
    """
    if repair:
        fixed = SemanticIndex.repair(index_dir)
        click.echo(f"{index_dir}: Milvus brought to the live version ({fixed} documents)", err=True)
    found = SemanticIndex.check(index_dir, sample)
    if as_json:
        click.echo(json.dumps({"index": str(index_dir), "ok": not found, "problems": found}))
    for problem in found:
        click.echo(problem, err=True)
    if found:
        raise click.ClickException(f"{index_dir}: {len(found)} problem(s) found")
    if not as_json:
        click.echo(f"{index_dir}: ok")
