"""Retrieval quality benchmark: semhash's default model, its variants and baselines.

The text-hashing literature's protocol on ../shared/corpora: the official test
split is halved at random (seed 0) into a validation half (used only to choose
hyperparameters) and a test half (the queries reported here); the train split
is the database (in the small setting, 2,000 of its posts drawn with seed 0, so the
defaults are judged on a corpus a sixth the size too); a hit shares a label;
precision@100 by Hamming distance, ties both at random and tie-aware.  Each model
cell is the mean ± std over seeds.

    python scripts/bench_quality.py                       # everything, CPU, slow
    python scripts/bench_quality.py --device cuda --jobs 16
    python scripts/bench_quality.py --quick               # a few minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from semhash import (
    Corpus,
    HasherConfig,
    SemanticHasher,
    VectorizerConfig,
    load_corpus,
    set_threads,
)
from semhash.codes import binarize, pack
from semhash.eval.precision import hamming_precision
from semhash.eval.protocol import Split, baseline_rows, make_split, training_plan
from semhash.text import Vectorizer
from semhash.train.recipe import Recipe

SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpora"


@dataclass(frozen=True)
class Setting:
    name: str
    file: str
    strip: bool
    sample: int = 0  # train documents drawn at random as the database; 0: all


SETTINGS = [
    Setting("20NG headers kept", "20newsgroups.jsonl.gz", False),
    Setting("20NG stripped", "20newsgroups.jsonl.gz", True),
    Setting("Reuters 90 topics", "reuters21578.jsonl.gz", False),
    Setting("20NG 2000-post sample", "20newsgroups.jsonl.gz", False, sample=2000),
]
# Fixed rows (precision@100) from issue 6: AMMI's own code on our files, and as published.
REFERENCE = {
    ("20NG headers kept", "AMMI code on our files"): {32: 0.534, 64: 0.585},
    ("20NG headers kept", "AMMI as published"): {16: 0.5518, 32: 0.5956, 64: 0.6398, 128: 0.6618},
    ("20NG stripped", "AMMI code on our files"): {64: 0.463},
    ("Reuters 90 topics", "AMMI code on our files"): {32: 0.747},
    ("Reuters 90 topics", "AMMI as published (other label set)"): {32: 0.8446, 64: 0.8506},
}
# The ablation: each variant takes one part out of the recipe (recipe fields).
VARIANTS = {
    "semhash (default)": {},
    "  one model for all bits, no blocks": {"block_bits": 0},
    "  no refinement": {"refinements": 0},
    "  refined by the first block's codes alone": {"refine_blocks": 1},
    "  code neighbours from the whole corpus": {"candidate_factor": 0},
    "  every block from the whole neighbourhood (128 bits)": {"later_neighbour_share": 1.0},
    "  last step's weights, not averaged": {"ema_decay": 0.0},
    "  one word dropout rate for every corpus": {"dropout_keep_words": 0},
    "  own words only (no neighbours)": {"n_neighbours": 0},
    "  no code scale": {"code_scale": 0.0},
    "  no input dropout": {"dropout": 0.0},
}


def prepare(setting: Setting, corpora: Path, length_filter: bool) -> tuple[Split, Split]:
    """(validation split, test split): the test split halved at random, train as database."""
    corpus = load_corpus(corpora / setting.file)
    if length_filter:
        corpus = drop_by_length(corpus, setting.strip)
    test = [i for i, s in enumerate(corpus.splits) if s == "test"]
    perm = np.random.default_rng(0).permutation(len(test))
    halves = [{test[i] for i in perm[: len(test) // 2]}, {test[i] for i in perm[len(test) // 2 :]}]
    train = [i for i, s in enumerate(corpus.splits) if s == "train"]
    if setting.sample:
        train = sorted(np.random.default_rng(0).choice(train, setting.sample, replace=False))
    database = set(train)

    def queries_from(half: set[int]) -> Split:
        return make_split(
            corpus.subset([i for i in range(len(corpus)) if i in database or i in half])
        )

    return queries_from(halves[0]), queries_from(halves[1])


def drop_by_length(corpus: Corpus, strip: bool) -> Corpus:
    """The literature's filter: drop documents with <= 5 or > 500 in-vocabulary tokens."""
    vectorizer = Vectorizer(VectorizerConfig(strip_newsgroup=strip)).fit(
        corpus.split("train").texts
    )
    lengths = np.asarray(vectorizer.counts(corpus.texts).sum(axis=1)).ravel()
    return corpus.subset([i for i, n in enumerate(lengths) if 5 < n <= 500])


def variant_config(kw: dict, train: dict, setting: Setting, seed: int) -> HasherConfig:
    """The default with a variant's changes to the recipe (and ``train``'s, for --quick)."""
    return HasherConfig(
        seed=seed,
        vectorizer=VectorizerConfig(strip_newsgroup=setting.strip),
        recipe=replace(Recipe(), **kw, **train),
    )


_CACHE: dict[tuple[str, bool], tuple[Split, Split]] = {}


def train_one(task: dict) -> dict:
    set_threads(task["threads"])
    setting = Setting(**task["setting"])
    key = (setting.name, task["length_filter"])
    if key not in _CACHE:
        _CACHE[key] = prepare(setting, Path(task["corpora"]), task["length_filter"])
    val, test = _CACHE[key]
    config = variant_config(task["variant_kw"], task["train"], setting, task["seed"])
    config = replace(config, n_bits=max(task["bits"]))
    # The default's rows also read its codes before the norms' recalibration: the same
    # weights, so the pair shows what the recalibration alone does.
    both = task["variant"].startswith("semhash (default)") and config.recipe.recalibrate_norms
    start = time.perf_counter()
    as_trained = replace(config.recipe, recalibrate_norms=not both)
    hasher = SemanticHasher(replace(config, recipe=as_trained)).fit(
        test.train.texts, progress=False, device=task["device"]
    )
    seconds_per_bit = (time.perf_counter() - start) / config.n_bits
    results = []
    if both:
        before = task | {"variant": f"{task['variant']}: norms as trained"}
        results += score(hasher, before, val, test, seconds_per_bit)
        hasher.recalibrate_norms(test.train.texts)
    return results + score(hasher, task, val, test, seconds_per_bit)


def score(
    hasher: SemanticHasher, task: dict, val: Split, test: Split, seconds_per_bit: float
) -> list[dict]:
    """One result per code length in ``task["bits"]``: validation and test P@100."""
    activations = {
        name: hasher.activations(texts)
        for name, texts in (
            ("db", test.train.texts),
            ("val", val.test.texts),
            ("test", test.test.texts),
        )
    }
    results = []
    for bits in task["bits"]:  # shorter codes are the longest's first blocks
        db = activations["db"][:, :bits]
        bit_means = (db > 0.5).mean(axis=0)
        result = {k: task[k] for k in ("setting_name", "variant", "seed")} | {"bits": bits}
        for name, split in (("val", val), ("test", test)):
            queries = pack(binarize(activations[name][:, :bits]))
            p = hamming_precision(
                queries, pack(binarize(db)), split.test_labels, split.train_labels
            )
            result[name] = p.tie_aware
            result[f"{name}_random"] = p.random
        result["constant_bits"] = float(np.mean((bit_means < 0.01) | (bit_means > 0.99)))
        result["seconds"] = seconds_per_bit * bits  # the time its blocks took
        print(json.dumps(result), file=sys.stderr, flush=True)
        results.append(result)
    return results


def main() -> None:
    args = parse_args()
    corpora = Path(args.corpora)
    wanted = [s for s in SETTINGS if not args.settings or s.name in args.settings]
    settings = [s for s in wanted if (corpora / s.file).exists()]
    for s in wanted:
        if s not in settings:
            print(f"skipping {s.name}: {corpora / s.file} not found", file=sys.stderr)
    if not settings:
        sys.exit(f"no corpora under {corpora}; nothing to measure")
    tasks = make_tasks(args, settings)
    with mp.get_context("spawn").Pool(args.jobs) as pool:
        results = [r for runs in pool.map(train_one, tasks, chunksize=1) for r in runs]
    baselines = {s.name: run_baselines(s, corpora, args.bits, args.length_filter) for s in settings}
    report = {"args": vars(args), "models": results, "baselines": baselines}
    Path(args.report).write_text(json.dumps(report, indent=2))
    print(format_markdown(results, baselines, settings, args.bits))


def make_tasks(args: argparse.Namespace, settings: list[Setting]) -> list[dict]:
    train = {"epochs": 3, "min_steps": 0, "noise_warmup": 2} if args.quick else {}
    variants = VARIANTS if args.variants else {"semhash (default)": {}}
    if args.config:  # every row trained with these changes to the default
        variants = {
            f"{name} with {json.dumps(args.config)}": kw | args.config
            for name, kw in variants.items()
        }
    tasks = []
    for setting in settings:
        for variant, kw in variants.items():
            default = variant.startswith("semhash (default)")
            if not default and setting is not settings[0]:
                continue  # variants: first setting only, 32 and 64 bits
            bits = args.bits if default else [b for b in args.bits if b in (32, 64)]
            plan = training_plan(variant_config(kw, train, setting, 0), bits) if bits else {}
            for lengths in plan.values():  # shorter codes read off a longer one's blocks
                for seed in range(args.seeds if default else 1):
                    tasks.append(
                        {
                            "setting": vars(setting),
                            "setting_name": setting.name,
                            "variant": variant,
                            "variant_kw": kw,
                            "bits": lengths,
                            "seed": seed,
                            "train": train,
                            "device": args.device,
                            "threads": args.threads,
                            "corpora": str(args.corpora),
                            "length_filter": args.length_filter,
                        }
                    )
    return tasks


def run_baselines(
    setting: Setting, corpora: Path, bits: list[int], length_filter: bool
) -> list[dict]:
    _, test = prepare(setting, corpora, length_filter)
    vectorizer = Vectorizer(VectorizerConfig(strip_newsgroup=setting.strip)).fit(test.train.texts)
    return [row.to_dict() for row in baseline_rows(vectorizer, test, bits, k=100)]


def format_markdown(
    results: list[dict], baselines: dict, settings: list[Setting], bits: list[int]
) -> str:
    cells: dict[tuple[str, str], dict[int, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        cells[(r["setting_name"], r["variant"])][r["bits"]].append(r)
    head = (
        "| setting | method | "
        + " | ".join(f"{b} bits" for b in bits)
        + f" | train s ({min(bits)} bits) |"
    )
    lines = [head, "|" + "---|" * (len(bits) + 3)]
    for setting in settings:
        for (name, variant), by_bits in cells.items():
            if name == setting.name:
                lines.append(model_line(name, variant, by_bits, bits))
        for row in baselines[setting.name]:
            if row["n_bits"] == 0:
                values = " | ".join(f"{row['tie_aware']:.3f}" for _ in bits)
                lines.append(f"| {setting.name} | {row['method']} | {values} | |")
        for method in ("itq", "lsh"):
            by = {
                r["n_bits"]: r["tie_aware"]
                for r in baselines[setting.name]
                if r["method"] == method
            }
            lines.append(
                f"| {setting.name} | {method} | "
                + " | ".join(f"{by[b]:.3f}" for b in bits)
                + " | |"
            )
        for (name, method), values in REFERENCE.items():
            if name == setting.name:
                cols = " | ".join(f"{values[b]:.4f}" if b in values else "–" for b in bits)
                lines.append(f"| {name} | {method} (fixed) | {cols} | |")
    return "\n".join(lines)


def model_line(name: str, variant: str, by_bits: dict[int, list[dict]], bits: list[int]) -> str:
    cols = []
    for b in bits:
        runs = by_bits.get(b, [])
        if not runs:
            cols.append("–")
            continue
        test = np.array([r["test"] for r in runs])
        rnd = np.mean([r["test_random"] for r in runs])
        spread = f" ± {test.std():.3f}" if len(runs) > 1 else ""
        cols.append(f"{test.mean():.3f}{spread} (rand {rnd:.3f})")
    timed_runs = by_bits.get(min(bits), [])  # the training time of the shortest code's blocks
    secs = f"{np.mean([r['seconds'] for r in timed_runs]):.0f}" if timed_runs else "–"
    return f"| {name} | {variant} | " + " | ".join(cols) + f" | {secs} |"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpora", default=str(SHARED))
    parser.add_argument(
        "--bits", type=lambda s: [int(b) for b in s.split(",")], default=[16, 32, 64, 128]
    )
    parser.add_argument(
        "--settings",
        type=lambda s: s.split(","),
        default=[],
        help="comma-separated setting names (default: all), e.g. '20NG headers kept'",
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--jobs", type=int, default=1, help="training processes in parallel")
    parser.add_argument(
        "--threads", type=int, default=2, help="threads per process (training and scoring)"
    )
    parser.add_argument("--no-variants", dest="variants", action="store_false")
    parser.add_argument(
        "--config",
        type=json.loads,
        default={},
        help="changes to the recipe for every row, as JSON: '{\"refinements\": 0}'",
    )
    parser.add_argument(
        "--length-filter", action="store_true", help="drop docs with <=5 or >500 tokens"
    )
    parser.add_argument(
        "--quick", action="store_true", help="3 epochs, 1 seed, 32 bits, no variants"
    )
    parser.add_argument("--report", default="bench_quality.json")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.bits, args.variants = 1, [32], False
    return args


if __name__ == "__main__":
    main()
