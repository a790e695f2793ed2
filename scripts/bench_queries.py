"""Typed queries: how good the top of each ranking is for the short queries people type.

Queries are made from the corpora themselves: the subject line of each 20 Newsgroups
test post, the title (first line) of each Reuters test article; "Re:"/"Fwd:"
prefixes, duplicates (case-blind) and queries with no word of the vocabulary are
dropped.  The database is the index's train documents; a hit shares a label.
The queries are split at random (seed 0) into a validation half, on which the
ranking's constants were chosen, and a test half, reported here.  Rows: the codes
by Hamming distance, dense cosine over all codes, Hamming candidates re-ranked by
cosine, BM25 and exact TF-IDF cosine over the whole database, and the default
(fused) ranking.

    python scripts/bench_queries.py --index 20ng=runs/20ng-32 --index reuters=runs/reuters-32

An index given by a name that does not exist is built first with the defaults.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np

from semhash import SemanticIndex
from semhash.corpus import load_corpus
from semhash.lexical import TermCounts
from semhash.text import title

CORPORA = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"
SOURCES = {"20ng": "20newsgroups.jsonl.gz", "reuters": "reuters21578.jsonl.gz"}
REPLY = re.compile(r"^\s*((re|fwd?|fw)\s*:\s*)+", re.IGNORECASE)
ROWS = ("hamming", "dense", "cosine", "bm25", "tfidf", "fused (default)")


def typed_query(corpus: str, text: str) -> str:
    line = title(text, chars=10_000) if corpus == "20ng" else text.strip().split("\n", 1)[0]
    return REPLY.sub("", line).strip()


def queries_of(index: SemanticIndex, corpus: str) -> tuple[list[str], list[set[str]]]:
    """Each test document's typed query and labels (duplicates and unknown words dropped)."""
    seen: set[str] = set()
    texts, labels = [], []
    for record in index.docs.records():
        if record.split != "test":
            continue
        query = typed_query(corpus, record.text)
        if not query or query.lower() in seen:
            continue
        seen.add(query.lower())
        texts.append(query)
        labels.append(set(record.labels))
    known = np.diff(index.hasher.vectorizer.counts(texts).indptr) > 0
    return [t for t, k in zip(texts, known, strict=True) if k], [
        lab for lab, k in zip(labels, known, strict=True) if k
    ]


def database(index: SemanticIndex) -> SemanticIndex:
    """The index with its test documents removed (in memory): train posts answer."""
    index.remove([r.id for r in index.docs.records() if r.split == "test"])
    return index


def scores(found: list[list[str]], query_labels: list[set[str]], labels: dict) -> dict:
    """P@10, nDCG@10 (binary gains) and P@100 over the queries."""
    discount = 1.0 / np.log2(np.arange(2, 12))
    p10, ndcg, p100 = [], [], []
    for ids, wanted in zip(found, query_labels, strict=True):
        hits = np.array([bool(labels[i] & wanted) for i in ids[:100]], dtype=float)
        hits = np.pad(hits, (0, 100 - len(hits)))
        p10.append(hits[:10].mean())
        ndcg.append((hits[:10] * discount).sum() / discount.sum())
        p100.append(hits.mean())
    return {"P@10": np.mean(p10), "nDCG@10": np.mean(ndcg), "P@100": np.mean(p100)}


def rankings(index: SemanticIndex, texts: list[str]) -> dict[str, list[list[str]]]:
    """The top 100 ids of each row for each query."""
    ids = np.array(index.ids)
    out = {}
    for row, rank in (("hamming", "hamming"), ("dense", "dense"), ("cosine", "cosine")):
        out[row] = [[r.id for r in rs] for rs in index.search(texts, k=100, rank=rank)]
    vectorizer = index.hasher.vectorizer
    counts = vectorizer.counts(texts)
    terms = TermCounts(vectorizer.counts(index.texts))
    everyone = np.arange(len(index))
    out["bm25"] = [
        ids[np.lexsort((everyone, -terms.bm25(counts[i].indices, everyone)))[:100]].tolist()
        for i in range(len(texts))
    ]
    documents = vectorizer.weight(terms.matrix())
    cosine = (vectorizer.weight(counts) @ documents.T).toarray()
    out["tfidf"] = [ids[np.lexsort((everyone, -row))[:100]].tolist() for row in cosine]
    out["fused (default)"] = [[r.id for r in rs] for rs in index.search(texts, k=100)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", action="append", default=[], help="NAME=DIR (20ng, reuters)")
    parser.add_argument("--out", type=Path, help="also write the table (markdown) and JSON here")
    args = parser.parse_args()
    pairs = [item.split("=", 1) for item in args.index] or [
        ["20ng", "runs/20ng-32"], ["reuters", "runs/reuters-32"]
    ]  # fmt: skip
    header = "| corpus | queries | ranking | P@10 (val) | P@10 | nDCG@10 | P@100 |"
    lines = [header, "|---" * 7 + "|"]
    report = []
    for name, folder in pairs:
        if not Path(folder).exists():
            print(f"building {folder} from {SOURCES[name]} (defaults, 32 bits)", flush=True)
            SemanticIndex.build(load_corpus(CORPORA / SOURCES[name])).save(folder)
        index = SemanticIndex.load(folder)
        texts, query_labels = queries_of(index, name)
        index = database(index)
        labels = {r.id: set(r.labels) for r in index.docs.records()}
        order = np.random.default_rng(0).permutation(len(texts))
        halves = {"val": order[: len(order) // 2], "test": order[len(order) // 2 :]}
        started = time.perf_counter()
        found = rankings(index, texts)
        print(f"{name}: {len(texts)} queries ranked in {time.perf_counter() - started:.0f} s")
        for row in ROWS:
            result = {
                half: scores([found[row][i] for i in rows], [query_labels[i] for i in rows], labels)
                for half, rows in halves.items()
            }
            report.append({"corpus": name, "ranking": row, **result})
            test = result["test"]
            lines.append(
                f"| {name} | {len(halves['test'])} | {row} | {result['val']['P@10']:.3f} | "
                f"{test['P@10']:.3f} | {test['nDCG@10']:.3f} | {test['P@100']:.3f} |"
            )
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.with_suffix(".md").write_text(table + "\n")
        args.out.with_suffix(".json").write_text(json.dumps(report, indent=2, default=float))


if __name__ == "__main__":
    main()
