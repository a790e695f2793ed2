"""``semhash eval --report DIR``: one self-contained HTML page of plots, the PNGs and the JSON.

The protocol hands every method it scores to a :class:`Report` (test queries and
train database, as codes or unit rows, plus each trained model's codes and
losses); :meth:`Report.write` then draws, with matplotlib:

- precision@k for k = 1..1000, our models against the baselines;
- precision-recall over Hamming radius, one panel per bit length;
- bit usage (how often each bit is 1) and bucket sizes of each model's codes;
- training and validation loss per epoch;
- a 2-D map (PCA) of the test documents' real-valued codes, coloured by label.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from semhash.codes import centred_unit_rows, hamming, unpack
from semhash.eval.precision import precision_curve, radius_curve
from semhash.train.loop import History

MAX_K = 1000
MAP_POINTS = 3000


@dataclass
class Method:
    """Query and database representations of one method: packed codes, or unit rows (cosine)."""

    name: str
    n_bits: int  # 0: exact, not hashed
    queries: Any
    db: Any
    hamming: bool


@dataclass
class Model:
    """A trained semhash model's outputs on the split."""

    n_bits: int
    db_codes: np.ndarray
    query_activations: np.ndarray
    history: History | None


@dataclass
class Report:
    """Collects what the protocol measured; :meth:`write` turns it into plots and a page."""

    query_labels: sp.csr_matrix = field(default_factory=lambda: sp.csr_matrix((0, 0)))
    db_labels: sp.csr_matrix = field(default_factory=lambda: sp.csr_matrix((0, 0)))
    query_label_names: list[tuple[str, ...]] = field(default_factory=list)
    methods: list[Method] = field(default_factory=list)
    models: list[Model] = field(default_factory=list)

    def use_split(
        self, query_labels: sp.csr_matrix, db_labels: sp.csr_matrix, names: list[tuple[str, ...]]
    ) -> None:
        """The queries' and database's multi-hot labels, and the queries' label names."""
        self.query_labels, self.db_labels, self.query_label_names = query_labels, db_labels, names

    def add_hamming(self, name: str, n_bits: int, queries: np.ndarray, db: np.ndarray) -> None:
        self.methods.append(Method(name, n_bits, queries, db, hamming=True))

    def add_cosine(self, name: str, n_bits: int, queries: Any, db: Any) -> None:
        """``queries``, ``db``: rows already unit-norm, so the inner product is the cosine."""
        self.methods.append(Method(name, n_bits, queries, db, hamming=False))

    def add_model(
        self,
        n_bits: int,
        db_codes: np.ndarray,
        query_activations: np.ndarray,
        history: History | None,
    ) -> None:
        self.models.append(Model(n_bits, db_codes, query_activations, history))

    def write(self, folder: Path, summary: dict[str, Any], progress: bool = False) -> Path:
        """Draw every plot into ``folder`` and write ``index.html`` there; returns its path."""
        import matplotlib

        matplotlib.use("Agg")
        folder.mkdir(parents=True, exist_ok=True)
        curves = self._precision_curves(progress)
        radius = self._radius_curves()
        figures = {
            "precision_at_k.png": ("Precision@k, k = 1..1000", _plot_precision(curves)),
            "precision_recall.png": ("Precision–recall over Hamming radius", _plot_pr(radius)),
            "bit_usage.png": ("How often each bit is 1", _plot_bit_usage(self.models)),
            "bucket_sizes.png": ("Documents per bucket (code)", _plot_buckets(self.models)),
            "loss.png": ("Training loss per epoch", _plot_loss(self.models)),
            "map.png": ("Test documents' codes, PCA to 2-D", self._plot_map()),
        }
        images = []
        for name, (caption, figure) in figures.items():
            if figure is None:
                continue
            figure.savefig(folder / name, dpi=110, bbox_inches="tight")
            images.append((name, caption))
            import matplotlib.pyplot as plt

            plt.close(figure)
        data = {
            **summary,
            "precision_at_k": {name: _floats(curve) for name, curve in curves.items()},
            "radius": {
                name: {"precision": _floats(p), "recall": _floats(r)}
                for name, (_, p, r) in radius.items()
            },
        }
        (folder / "report.json").write_text(json.dumps(data, indent=1))
        page = folder / "index.html"
        page.write_text(_html(summary, images, folder), encoding="utf-8")
        return page

    def _precision_curves(self, progress: bool) -> dict[str, np.ndarray]:
        return {
            _label(m): precision_curve(_distances(m), self.query_labels, self.db_labels, MAX_K)
            for m in tqdm(self.methods, desc="report curves", unit="method", disable=not progress)
        }

    def _radius_curves(self) -> dict[str, tuple[int, np.ndarray, np.ndarray]]:
        return {
            _label(m): (m.n_bits, *radius_curve(m.queries, m.db, self.query_labels,
                                                self.db_labels, m.n_bits))
            for m in self.methods
            if m.hamming
        }  # fmt: skip

    def _plot_map(self) -> Any:
        if not self.models:
            return None
        import matplotlib.pyplot as plt

        model = max(self.models, key=lambda m: m.n_bits)
        rng = np.random.default_rng(0)
        n = len(model.query_activations)
        pick = np.sort(rng.choice(n, min(n, MAP_POINTS), replace=False))
        rows = centred_unit_rows(model.query_activations[pick])
        centred = rows - rows.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        xy = centred @ vt[:2].T
        labels = [self.query_label_names[i][0] if self.query_label_names[i] else "-" for i in pick]
        names = sorted(set(labels))
        colours = plt.get_cmap("tab20", max(len(names), 1))
        figure, axes = plt.subplots(figsize=(9, 7))
        for j, name in enumerate(names):
            mask = np.array([label == name for label in labels])
            axes.scatter(xy[mask, 0], xy[mask, 1], s=6, color=colours(j), label=name, alpha=0.7)
        axes.set_title(f"{model.n_bits}-bit codes of {len(pick):,} test documents (PCA)")
        axes.set_xticks([])
        axes.set_yticks([])
        if len(names) <= 25:
            axes.legend(fontsize=7, markerscale=2, loc="center left", bbox_to_anchor=(1, 0.5))
        return figure


def _distances(method: Method) -> Callable[[slice], np.ndarray]:
    """Distances (smaller is closer) of a block of the method's queries to its database."""
    if method.hamming:
        return lambda rows: hamming(method.queries[rows], method.db)
    db_t = method.db.T

    def negative_cosine(rows: slice) -> np.ndarray:
        sims = method.queries[rows] @ db_t
        return -np.asarray(sims.toarray() if sp.issparse(sims) else sims)

    return negative_cosine


def _label(method: Method) -> str:
    return f"{method.name} {method.n_bits}b" if method.n_bits else method.name


def _style(name: str) -> dict[str, Any]:
    return {"linestyle": "-" if name.startswith("semhash") else "--", "linewidth": 1.6}


def _plot_precision(curves: dict[str, np.ndarray]) -> Any:
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(9, 5.5))
    for name, curve in curves.items():
        axes.plot(np.arange(1, len(curve) + 1), curve, label=name, **_style(name))
    axes.set_xscale("log")
    axes.set_xlabel("k (documents retrieved)")
    axes.set_ylabel("precision@k (a hit shares a label)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, ncol=2)
    return figure


def _plot_pr(radius: dict[str, tuple[int, np.ndarray, np.ndarray]]) -> Any:
    if not radius:
        return None
    import matplotlib.pyplot as plt

    bits = sorted({b for b, _, _ in radius.values()})
    figure, panels = plt.subplots(1, len(bits), figsize=(4 * len(bits), 4), squeeze=False)
    for axes, b in zip(panels[0], bits, strict=True):
        for name, (n_bits, precision, recall) in radius.items():
            if n_bits == b:
                axes.plot(recall, precision, marker=".", markersize=3, label=name, **_style(name))
        axes.set_title(f"{b} bits")
        axes.set_xlabel("recall")
        axes.set_ylabel("precision")
        axes.set_xlim(0, 1)
        axes.set_ylim(0, 1)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    return figure


def _plot_bit_usage(models: list[Model]) -> Any:
    if not models:
        return None
    import matplotlib.pyplot as plt

    figure, panels = plt.subplots(len(models), 1, figsize=(9, 1.8 * len(models)), squeeze=False)
    for axes, model in zip(panels[:, 0], models, strict=True):
        ones = unpack(model.db_codes, model.n_bits).mean(axis=0)
        axes.bar(np.arange(model.n_bits), ones, color="#3b5bdb", width=0.8)
        axes.axhline(0.5, color="grey", linewidth=0.8, linestyle=":")
        axes.set_ylim(0, 1)
        axes.set_ylabel(f"{model.n_bits} bits", fontsize=8)
    panels[-1, 0].set_xlabel("bit")
    return figure


def _plot_buckets(models: list[Model]) -> Any:
    if not models:
        return None
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for model in models:
        _, sizes = np.unique(model.db_codes, axis=0, return_counts=True)
        sizes = np.sort(sizes)[::-1]
        axes.plot(np.arange(1, len(sizes) + 1), sizes, label=f"{model.n_bits} bits")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("bucket rank (largest first)")
    axes.set_ylabel("documents in the bucket")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    return figure


def _plot_loss(models: list[Model]) -> Any:
    trained = [m for m in models if m.history and m.history.train_loss]
    if not trained:
        return None
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for model in trained:
        assert model.history is not None
        epochs = np.arange(1, len(model.history.train_loss) + 1)
        line = axes.plot(epochs, model.history.train_loss, label=f"{model.n_bits} bits, train")
        if model.history.val_loss:
            axes.plot(epochs, model.history.val_loss, linestyle="--", color=line[0].get_color(),
                      label=f"{model.n_bits} bits, validation (binary codes)")  # fmt: skip
    axes.set_xlabel("epoch")
    axes.set_ylabel("loss")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    return figure


def _html(summary: dict[str, Any], images: list[tuple[str, str]], folder: Path) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(r['method'])}</td><td>{r['n_bits'] or '—'}</td>"
        f"<td>{r['precision']:.4f}</td><td>{r['tie_aware']:.4f}</td><td>{r['seconds']:.1f}</td></tr>"
        for r in summary["rows"]
    )
    figures = "".join(
        f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,"
        f"{base64.b64encode((folder / name).read_bytes()).decode()}'>"
        f"<figcaption>{html.escape(caption)} · <a href='{name}'>{name}</a></figcaption></figure>"
        for name, caption in images
    )
    source = html.escape(str(summary.get("corpus") or summary.get("index")))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>semhash evaluation: {source}</title>
<style>
body {{ font: 15px/1.5 system-ui, sans-serif; color: #1d2330; max-width: 1000px; margin: 2em auto;
       padding: 0 1em; }}
table {{ border-collapse: collapse; margin: 1em 0 2em; }}
td, th {{ padding: 4px 12px; border-bottom: 1px solid #e4e7ec; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
figure {{ margin: 0 0 2.5em; }} img {{ max-width: 100%; }}
figcaption {{ color: #667085; font-size: 13px; }}
</style></head><body>
<h1>semhash evaluation</h1>
<p>{source}: test documents query the train documents; a hit shares a label with the
query; k = {summary["k"]}.</p>
<table><tr><th>method</th><th>bits</th><th>P@{summary["k"]}</th><th>tie-aware</th>
<th>seconds</th></tr>{rows}</table>
{figures}
</body></html>
"""


def _floats(values: np.ndarray) -> list[float | None]:
    """Rounded, with NaN (undefined) as null: JSON has no NaN."""
    return [None if np.isnan(v) else round(float(v), 4) for v in values]
