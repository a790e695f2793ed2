"""A writer killed at any moment, or read while it writes, never leaves a broken index."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from semhash import Corpus, SemanticIndex
from semhash.store import versions as store

TINY = Path(__file__).parent / "data" / "index-v2"

# Alternately adds three documents and removes one, forever, printing each committed step.
WRITER = """
import itertools, sys
from semhash import Corpus, SemanticIndex
print("ready", flush=True)
for step in itertools.count():
    with SemanticIndex.update(sys.argv[1]) as index:
        if step % 2 == 0:
            ids = [f"w{step}-{j}" for j in range(3)]
            index.add(Corpus(ids, ["space shuttle orbit"] * 3, [("x",)] * 3, ["train"] * 3))
        else:
            index.remove([index.ids[0]])
    print(step, flush=True)
"""


@pytest.fixture
def tiny(tmp_path) -> Path:
    path = tmp_path / "idx"
    shutil.copytree(TINY, path)
    return path


def assert_whole(path: Path) -> SemanticIndex:
    """The index loads, every checksum holds, and its parts agree with each other."""
    assert SemanticIndex.check(path) == []
    index = SemanticIndex.load(path)
    manifest = json.loads((path / "manifest.json").read_text())
    assert len(index) == manifest["n_docs"] == len(set(index.ids))
    assert len(index.search(["space shuttle"], k=3)[0]) == min(3, len(index))
    return index


def start_writer(path: Path) -> subprocess.Popen:
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
    return writer


@pytest.mark.slow
def test_sigkill_at_random_moments_leaves_the_previous_index_readable(tiny) -> None:
    rng = random.Random(0)
    for _ in range(6):
        writer = start_writer(tiny)
        time.sleep(rng.uniform(0.0, 0.4))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        assert_whole(tiny)
    index = assert_whole(tiny)
    with SemanticIndex.update(tiny) as again:  # and the next writer cleans up and goes on
        again.remove([index.ids[0]])
    assert not [p for p in tiny.iterdir() if ".tmp-" in p.name]
    assert len(list(tiny.glob("v*"))) <= 2


@pytest.mark.slow
def test_readers_see_whole_versions_while_a_writer_commits(tiny) -> None:
    writer = start_writer(tiny)
    seen = set()
    try:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            index = SemanticIndex.load(tiny)  # verifies checksums of what it opens
            assert index.buckets.problems() == [] and index.docs.problems() == []
            assert len(index.ids) == len(index.codes) == len(set(index.ids))
            seen.add(len(index))
    finally:
        writer.kill()
        writer.wait()
    assert len(seen) > 2  # the writer really did commit versions while we read


class Crash(BaseException):
    """Stands for SIGKILL: nothing after it runs, not even cleanup."""


def crash_at(monkeypatch, step: int) -> None:
    """Make the ``step``-th file-system commit operation of a save die, leaving its debris."""
    count = {"n": 0}

    def fatal(real):
        def call(*args, **kwargs):
            count["n"] += 1
            if count["n"] == step:
                raise Crash
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr(store, "_fsync", fatal(store._fsync))
    monkeypatch.setattr(store.os, "rename", fatal(os.rename))
    monkeypatch.setattr(store.os, "replace", fatal(os.replace))
    monkeypatch.setattr(store.shutil, "rmtree", lambda *a, **k: None)  # a killed process
    monkeypatch.setattr(store.Path, "unlink", lambda *a, **k: None)  # cleans up nothing


def test_a_crash_between_any_two_steps_of_a_save_keeps_old_or_new(tiny, monkeypatch) -> None:
    old_ids = SemanticIndex.load(tiny).ids
    addition = Corpus(["n1", "n2"], ["space shuttle", "hockey goalie"], [(), ()], ["", ""])
    outcomes = set()
    for step in range(1, 40):
        path = tiny.parent / f"crash{step}"
        shutil.copytree(tiny, path)
        with monkeypatch.context() as patch:
            crash_at(patch, step)
            try:
                with SemanticIndex.update(path) as index:
                    index.add(addition)
                    index.remove([old_ids[0]])
                finished = True
            except Crash:
                finished = False
        ids = assert_whole(path).ids
        assert ids in (old_ids, old_ids[1:] + ["n1", "n2"])
        outcomes.add((finished, ids == old_ids))
        with SemanticIndex.update(path) as index:  # a later writer succeeds and tidies up
            pass
        assert not [p for p in path.iterdir() if ".tmp-" in p.name]
        if finished:
            break
    assert step > 15  # a crash point before each of the save's fsyncs, renames and replace
    assert outcomes == {(False, True), (False, False), (True, False)}
