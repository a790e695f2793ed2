"""Training cost: wall time, peak memory and precision of `semhash index`, row by row.

Each row runs `semhash index` in its own process (as a user would) and reads its wall
time and peak RSS; P@100 is the index's own evaluation (`semhash eval INDEX`: its test
documents query its train documents, tie-aware).  `--baseline REF` runs the rows of
the 20NG corpus and small corpora again with the code of a git revision (the old
trainer), in the same run, for a ratio that does not depend on the machine's mood.

    python scripts/bench_train.py                               # 20NG, small, busy, encode
    python scripts/bench_train.py --rows 20ng-32,small --baseline df9cc8a
    python scripts/bench_train.py --rows blogs                   # 575k posts, about an hour
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from semhash.threads import cpu_name

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "corpora"
ALL_ROWS = ["20ng-32", "20ng-64", "20ng-128", "small", "busy", "encode", "blogs"]


def run_index(corpus: str, out: Path, bits: int, code: Path = ROOT, busy: bool = False) -> dict:
    """`semhash index` in a child process: its wall time, peak RSS and exit status."""
    command = [sys.executable, "-m", "semhash", "-v", "index", corpus, "-o", str(out)]
    command += ["--bits", str(bits), "--force"]
    env = {**os.environ, "PYTHONPATH": str(code), "TQDM_DISABLE": "1"}
    log = out.with_name(out.name + ".log")
    hog = subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) if busy else None
    start = time.perf_counter()
    with open(log, "w") as stderr:
        child = subprocess.Popen(command, cwd=code, env=env, stdout=stderr, stderr=stderr)
        _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    if hog:
        hog.kill()
    if status:
        raise SystemExit(f"semhash index {corpus} failed:\n{log.read_text()[-600:]}")
    return {"seconds": seconds, "peak_rss_gb": usage.ru_maxrss / 2**20}


def precision(index_dir: Path) -> float:
    """Tie-aware P@100 of the index's test documents querying its train documents."""
    from semhash import SemanticIndex
    from semhash.eval.protocol import evaluate_index

    rows = evaluate_index(SemanticIndex.load(index_dir), baselines=False)
    return next(r.tie_aware for r in rows if r.method == "semhash")


def sample_corpus(n: int, folder: Path) -> str:
    """``n`` posts of 20 Newsgroups drawn with seed 0 (both splits), as a JSONL file."""
    from semhash import load_corpus

    corpus = load_corpus("20newsgroups")
    picked = np.sort(np.random.default_rng(0).choice(len(corpus), n, replace=False))
    path = folder / f"20ng-{n}.jsonl"
    with open(path, "w", encoding="utf-8") as handle:
        for i in picked:
            row = {"id": corpus.ids[i], "text": corpus.texts[i], "labels": corpus.labels[i]}
            handle.write(json.dumps({**row, "split": corpus.splits[i]}) + "\n")
    return str(path)


def baseline_tree(ref: str, folder: Path) -> Path:
    """A checkout of ``ref`` to run the old trainer from, its C extensions built as ours are."""
    tree = folder / f"semhash-{ref}"
    subprocess.run(["git", "worktree", "add", "--detach", str(tree), ref], cwd=ROOT, check=True)
    build = [sys.executable, "setup.py", "build_ext", "--inplace"]
    subprocess.run(build, cwd=tree, check=True, capture_output=True)
    return tree


def index_rows(args: argparse.Namespace, folder: Path, old: Path | None) -> list[dict]:
    rows = []
    plans = [(f"20ng-{b}", "20newsgroups", b) for b in (32, 64, 128)]
    if "small" in args.rows or "busy" in args.rows:
        plans += [("small", sample_corpus(n, folder), 32) for n in (400, 2000)]
    for row, corpus, bits in plans:
        if row not in args.rows:
            continue
        name = "20 Newsgroups" if corpus == "20newsgroups" else Path(corpus).stem
        for label, code in [("semhash", ROOT)] + ([(f"old ({args.baseline})", old)] if old else []):
            out = folder / f"{label[:3]}-{name}-{bits}"
            measured = run_index(corpus, out, bits, code)
            rows.append(
                {
                    "corpus": name,
                    "trainer": label,
                    "bits": bits,
                    **measured,
                    "p_at_100": precision(out),
                }  # fmt: skip
            )
            print(json.dumps(rows[-1]), flush=True)
            if "busy" in args.rows and row == "small" and code == ROOT:
                loaded = run_index(corpus, folder / f"busy-{name}", bits, code, busy=True)
                rows.append({"corpus": name, "trainer": "semhash, busy core", "bits": bits,
                             **loaded, "p_at_100": precision(folder / f"busy-{name}")})  # fmt: skip
                print(json.dumps(rows[-1]), flush=True)
    return rows


def encode_rate(folder: Path) -> dict:
    """Documents a second through text -> codes, and whether the dense path gives the same."""
    import torch

    from semhash import SemanticIndex, load_corpus
    from semhash.codes import binarize, pack
    from semhash.train.loss import dense

    index_dir = folder / "sem-20 Newsgroups-32"
    if not index_dir.exists():
        run_index("20newsgroups", index_dir, 32)
    hasher = SemanticIndex.load(index_dir).hasher
    texts = load_corpus("20newsgroups").texts
    seconds = float("inf")
    for _ in range(3):  # the best of three: the first also builds the word table and pools
        start = time.perf_counter()
        codes = hasher.encode(texts)
        seconds = min(seconds, time.perf_counter() - start)
    inputs = hasher.vectorizer.weight(hasher.vectorizer.counts(texts))
    with torch.no_grad():
        units = [model.encode(dense(inputs[:4096])).numpy() for model in hasher.models]
    same = bool(np.array_equal(pack(binarize(np.hstack(units))), codes[:4096]))
    return {"documents": len(texts), "docs_per_s": len(texts) / seconds, "same_as_dense": same}


def blogs_row(folder: Path) -> dict:
    """The blog corpus whole at 32 bits, with P@10 / P@100 of 2,000 test posts and TF-IDF."""
    from semhash import SemanticIndex
    from semhash.eval.precision import cosine_precision, hamming_precision, label_matrix

    path = SHARED / "blogs.jsonl.gz"
    if not path.exists():
        raise SystemExit(f"{path} is missing: the blogs row needs ../shared/corpora")
    out = folder / "blogs-32"
    measured = run_index(str(path), out, 32)
    index = SemanticIndex.load(out)
    splits = np.array(index.splits)
    train, test = np.flatnonzero(splits == "train"), np.flatnonzero(splits == "test")
    queries = np.sort(np.random.default_rng(0).choice(test, 2000, replace=False))
    labels = index.labels
    vocabulary = {x: i for i, x in enumerate(sorted({x for ls in labels for x in ls}))}
    q_labels = label_matrix([labels[i] for i in queries], vocabulary)
    db_labels = label_matrix([labels[i] for i in train], vocabulary)
    codes = np.asarray(index.codes)
    row = {"corpus": "blogs", "trainer": "semhash", "bits": 32, **measured}
    for k in (10, 100):
        p = hamming_precision(codes[queries], codes[train], q_labels, db_labels, k)
        row[f"p_at_{k}"] = p.tie_aware
    vectorizer, texts = index.hasher.vectorizer, index.texts
    tfidf = vectorizer.weight(vectorizer.counts([texts[i] for i in train]))
    q_tfidf = vectorizer.weight(vectorizer.counts([texts[i] for i in queries]))
    for k in (10, 100):
        row[f"tfidf_p_at_{k}"] = cosine_precision(q_tfidf, tfidf, q_labels, db_labels, k).tie_aware
    row["neighbour_recall"] = neighbour_recall(tfidf)
    return row


def neighbour_recall(tfidf, k: int = 100, n_checked: int = 1000) -> float:
    """How many of the exact ``k`` TF-IDF neighbours the approximate search finds.

    Measured for ``n_checked`` rows drawn with seed 1; the exact ones by brute force.
    """
    from semhash.train.approximate import approximate_neighbours

    found = approximate_neighbours(tfidf, k)
    checked = np.sort(np.random.default_rng(1).choice(tfidf.shape[0], n_checked, replace=False))
    transposed = tfidf.T.tocsr()
    hits = 0
    for start in range(0, n_checked, 100):
        rows = checked[start : start + 100]
        sims = (tfidf[rows] @ transposed).toarray()
        sims[np.arange(len(rows)), rows] = -np.inf
        exact = np.argpartition(-sims, k, axis=1)[:, :k]
        hits += sum(len(set(a) & set(b)) for a, b in zip(found[rows], exact, strict=True))
    return hits / (n_checked * k)


def table(rows: list[dict]) -> str:
    lines = ["| corpus | trainer | bits | wall | peak RSS | P@100 |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['corpus']} | {r['trainer']} | {r['bits']} | {r['seconds']:.0f} s "
            f"| {r['peak_rss_gb']:.1f} GB | {r.get('p_at_100', float('nan')):.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=lambda s: s.split(","), default=ALL_ROWS[:-1],
                        help=f"comma-separated, of {','.join(ALL_ROWS)}")  # fmt: skip
    parser.add_argument("--baseline", help="a git revision whose trainer runs the same rows")
    parser.add_argument("--report", default="bench_train.json")
    args = parser.parse_args()
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        folder = Path(tmp)
        old = baseline_tree(args.baseline, folder) if args.baseline else None
        try:
            rows = index_rows(args, folder, old)
            extra = {}
            if "encode" in args.rows:
                extra["encode"] = encode_rate(folder)
                print(json.dumps(extra["encode"]), flush=True)
            if "blogs" in args.rows:
                rows.append(blogs_row(folder))
                print(json.dumps(rows[-1]), flush=True)
        finally:
            if old:
                subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT)
    Path(args.report).write_text(json.dumps({"cpu": cpu_name(), "rows": rows, **extra}, indent=2))
    print(table(rows))
    if "encode" in extra:
        e = extra["encode"]
        print(f"\nencoding: {e['docs_per_s']:,.0f} documents/s over {e['documents']:,} posts; "
              f"codes equal to the dense path's: {e['same_as_dense']}")  # fmt: skip


if __name__ == "__main__":
    main()
