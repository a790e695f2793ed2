"""Bag of words: tokenise, fit a vocabulary, count words and weight them.

The vocabulary is the top ``max_features`` words by document frequency after
English stop words and very rare/very common words are dropped, as the
text-hashing literature builds it.  Model input is sublinear TF-IDF, L2-normalised.
"""

from __future__ import annotations

import contextlib
import re
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp
from numba import njit
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
from tqdm.auto import tqdm

from semhash.threads import cores

_Table: Any
_learn: Any
try:  # word counting in C (semhash/_tokens.c), built at install time where a compiler exists
    from semhash._tokens import Table as _Table
    from semhash._tokens import learn as _learn
except ImportError:  # pragma: no cover - depends on the build
    _Table = _learn = None

_INT32_MAX = np.iinfo(np.int32).max
_BLOCK = 2000  # documents counted at a time (a thread's share, a progress update)
_TOKEN = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default tokens

_QUOTE_LINE = re.compile(r"(writes:|wrote:|says:|said:|^In article|^Quoted from|^\||^>)")


class Bags(NamedTuple):
    """Rows of word ids and their values as CSR arrays: what a few queries need.

    A scipy matrix costs more to make than a short query costs to encode; the query
    path passes these arrays and builds a matrix only for many rows.
    """

    indptr: np.ndarray  # row i's words are indices[indptr[i] : indptr[i + 1]]
    indices: np.ndarray  # int32 word ids, sorted within each row
    values: np.ndarray  # float32 counts (or weights)

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def row(self, i: int) -> np.ndarray:
        """Row ``i``'s word ids."""
        return self.indices[self.indptr[i] : self.indptr[i + 1]]

    def matrix(self, width: int) -> sp.csr_matrix:
        return sp.csr_matrix((self.values, self.indices, self.indptr), shape=(len(self), width))

    @classmethod
    def of(cls, rows: sp.csr_matrix) -> Bags:
        """The arrays of a CSR matrix (not copied)."""
        return cls(rows.indptr, rows.indices, rows.data)


def strip_newsgroup_boilerplate(text: str) -> str:
    r"""Drop a Usenet post's headers, signature and quoted replies.

    Headers are everything before the first blank line (as scikit-learn strips
    them), the signature starts at the last line made only of dashes, quoted lines
    match the usual reply markers.  A text with no blank line has no headers: a typed
    query keeps its words.

    >>> strip_newsgroup_boilerplate("From: a\n\n> quoted\nbody\n--\nsig")
    'body'
    >>> strip_newsgroup_boilerplate("nasa shuttle launch")
    'nasa shuttle launch'
    """
    head, blank, body = text.partition("\n\n")
    if not blank:
        body = head
    lines = body.strip().split("\n")
    for line_no in range(len(lines) - 1, 0, -1):
        if lines[line_no].strip().strip("-") == "":
            lines = lines[:line_no]
            break
    return "\n".join(line for line in lines if not _QUOTE_LINE.search(line))


@dataclass(frozen=True)
class VectorizerConfig:
    """How documents become bags of words.

    ``min_df`` counts documents; ``max_df`` is a fraction of documents.
    ``strip_newsgroup`` removes Usenet headers, signatures and quotes before counting.
    """

    max_features: int = 10000
    min_df: int = 3
    max_df: float = 0.8
    stop_words: bool = True
    strip_newsgroup: bool = False

    def __post_init__(self) -> None:
        if self.max_features < 1:
            raise ValueError(f"max_features must be at least 1, got {self.max_features}")
        if self.min_df < 1:
            raise ValueError(f"min_df must be at least 1, got {self.min_df}")
        if not 0.0 < self.max_df <= 1.0:
            raise ValueError(f"max_df must be in (0, 1], got {self.max_df}")


class Vectorizer:
    """Counts words of a fixed vocabulary; fitted state ends in ``_``."""

    def __init__(self, config: VectorizerConfig | None = None) -> None:
        self.config = config or VectorizerConfig()
        self.vocabulary_: list[str] = []
        self.idf_: np.ndarray = np.zeros(0, dtype=np.float32)
        self._columns: dict[str, int] | None = None  # word -> column, made on first count
        self._table: Any = None  # the C word table, made on first count where built

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary_)

    def __getstate__(self) -> dict[str, Any]:
        """Picklable state: the C table is remade on first use, not copied."""
        return {**self.__dict__, "_table": None}

    def fit(self, texts: Sequence[str]) -> Vectorizer:
        """Choose the vocabulary and inverse document frequencies from ``texts``.

        The words ``CountVectorizer`` would choose, found in one pass of the C word
        table (``semhash/_tokens.c``) where it is built: every word's document and
        term frequency, English stop words dropped, words in fewer than ``min_df`` or
        more than ``max_df`` of the documents dropped, then the ``max_features`` most
        frequent kept, ties broken as scikit-learn breaks them.
        """
        cfg = self.config
        min_df = min(cfg.min_df, max(1, len(texts) // 2))  # tiny corpora keep some words
        max_df = cfg.max_df if len(texts) * cfg.max_df >= min_df else 1.0
        learn = _learn if _learn is not None else _learn_in_python
        words, ids, counts, _ = learn(self._prepare(texts))
        found = np.frombuffer(ids, dtype=np.int32)
        df = np.bincount(found, minlength=len(words))
        tf = np.bincount(found, np.frombuffer(counts, dtype=np.float32), len(words))
        stop = ENGLISH_STOP_WORDS if cfg.stop_words else frozenset()
        order = sorted((w, i) for i, w in enumerate(words) if w not in stop)
        if not order:
            raise ValueError(
                "cannot build a vocabulary: empty vocabulary; "
                "perhaps the documents only contain stop words"
            )
        rows = np.array([i for _, i in order], dtype=np.int64)
        keep = (df[rows] <= max_df * len(texts)) & (df[rows] >= min_df)
        if keep.sum() > cfg.max_features:  # the most frequent, as scikit-learn sorts them
            best = (-tf[rows][keep].astype(np.float32)).argsort()[: cfg.max_features]
            chosen = np.zeros(len(rows), dtype=bool)
            chosen[np.flatnonzero(keep)[best]] = True
            keep = chosen
        if not keep.any():
            raise ValueError(
                "cannot build a vocabulary: After pruning, no terms remain. "
                "Try a lower min_df or a higher max_df."
            )
        self.vocabulary_ = [order[j][0] for j in np.flatnonzero(keep)]
        self._columns = self._table = None
        kept_df = df[rows[keep]]
        self.idf_ = (np.log((1.0 + len(texts)) / (1.0 + kept_df)) + 1.0).astype(np.float32)
        return self

    def counts(self, texts: Sequence[str], progress: bool = False) -> sp.csr_matrix:
        """Word counts, ``(n, vocab_size)`` float32 CSR, column indices sorted.

        Tokens are scikit-learn's (runs of two or more word characters, lowercased),
        looked up in the vocabulary: the same counts as ``CountVectorizer`` without
        its per-call set-up, which dominated the cost of one short query.  The C table
        (``semhash/_tokens.c``) does it where it is built, Python elsewhere.
        """
        return self.bags(texts, progress).matrix(self.vocab_size)

    def bags(self, texts: Sequence[str], progress: bool = False) -> Bags:
        """:meth:`counts` as plain arrays: what a query needs, without a scipy matrix."""
        table = self._c_table()
        prepared = self._prepare(texts)
        count = table.count if table else self._count_in_python
        if len(prepared) <= _BLOCK:  # a query or a few: no threads, no joins
            columns, values, lengths = count(prepared)
        else:
            blocks = [prepared[a : a + _BLOCK] for a in range(0, len(prepared), _BLOCK)]
            threads = min(len(blocks), cores()) if table else 1  # the C table frees the GIL
            with ThreadPoolExecutor(threads) if threads > 1 else contextlib.nullcontext() as pool:
                found = pool.map(count, blocks) if pool else map(count, blocks)
                if progress:  # a bar, even a disabled one, costs more than counting a query
                    found = tqdm(found, desc="vectorising", unit="block", total=len(blocks))
                parts = list(found)
            columns, values, lengths = (b"".join(p[i] for p in parts) for i in range(3))
        indices = np.frombuffer(columns, dtype=np.int32).copy()
        values = np.frombuffer(values, dtype=np.float32).copy()
        if len(texts) == 1:  # a typed query: its one row's bounds
            return Bags(np.array([0, len(indices)], dtype=np.int32), indices, values)
        wide = len(indices) >= _INT32_MAX
        indptr = np.zeros(len(texts) + 1, dtype=np.int64 if wide else np.int32)
        np.cumsum(np.frombuffer(lengths, dtype=np.int64), out=indptr[1:])
        return Bags(indptr, indices, values)

    def weight(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        """Sublinear TF-IDF rows with unit L2 norm (rows without known words stay zero)."""
        data = self.weights(Bags.of(counts))
        return sp.csr_matrix(
            (data, counts.indices.copy(), counts.indptr.copy()), shape=counts.shape
        )

    def weights(self, bags: Bags) -> np.ndarray:
        """:meth:`weight`'s values for the words of ``bags``: float32, one per word."""
        values = np.asarray(bags.values, dtype=np.float32)
        return _tf_idf(bags.indptr, bags.indices, values, self.idf_)

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": asdict(self.config),
            "vocabulary": self.vocabulary_,
            "idf": self.idf_.tolist(),
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Vectorizer:
        vectorizer = cls(VectorizerConfig(**state["config"]))
        vectorizer.vocabulary_ = list(state["vocabulary"])
        vectorizer.idf_ = np.asarray(state["idf"], dtype=np.float32)
        if len(vectorizer.idf_) != len(vectorizer.vocabulary_):
            raise ValueError("vocabulary and idf have different lengths")
        return vectorizer

    def _prepare(self, texts: Sequence[str]) -> list[str]:
        if self.config.strip_newsgroup:
            return [strip_newsgroup_boilerplate(t) for t in texts]
        return list(texts)

    def _count_in_python(self, texts: list[str]) -> tuple[bytes, bytes, bytes]:
        """What the C table's ``count`` answers, computed in Python."""
        return _tally(texts, self._lookup())

    def _c_table(self) -> Any:
        """The C word table of the vocabulary; None where it is not built (or turned off)."""
        if self._table is None and _Table is not None:
            self._lookup()  # the same check that the vectorizer is fitted
            self._table = _Table(list(self.vocabulary_))
        return self._table or None

    def _lookup(self) -> Any:
        """``word -> column`` (None for an unknown word), made once from the vocabulary."""
        if not self.vocabulary_:
            raise RuntimeError("the vectorizer is not fitted")
        columns = self._columns
        if columns is None:
            columns = self._columns = {word: i for i, word in enumerate(self.vocabulary_)}
        return columns.get


def _learn_in_python(texts: list[str]) -> tuple[list[str], bytes, bytes, bytes]:
    """What the C ``learn`` answers, computed in Python: every word met, and the counts."""
    columns: dict[str, int] = {}
    counted = _tally(texts, lambda word: columns.setdefault(word, len(columns)))
    return list(columns), *counted


def _tally(texts: list[str], lookup: Any) -> tuple[bytes, bytes, bytes]:
    """Each text's words as the C table's ``count`` answers, in Python.

    Each text's distinct ids in increasing order (int32 bytes), their counts (float32
    bytes) and how many a text has (int64 bytes); ``lookup(word)`` is a word's id, None
    to skip it.
    """
    ids: list[int] = []
    counts: list[int] = []
    lengths = np.zeros(len(texts), dtype=np.int64)
    for row, text in enumerate(texts):
        found = Counter(i for i in map(lookup, _TOKEN.findall(text.lower())) if i is not None)
        tally = sorted(found.items())
        ids.extend(i for i, _ in tally)
        counts.extend(c for _, c in tally)
        lengths[row] = len(tally)
    as_bytes = np.array(ids, dtype=np.int32).tobytes(), np.array(counts, np.float32).tobytes()
    return *as_bytes, lengths.tobytes()


SNIPPET_CHARS = 160
TITLE_CHARS = 100
# Header lines, each "Name: value" or an indented continuation of the one before.
_HEADERS = re.compile(r"[A-Za-z][\w.-]*:[^\n]*(?:\n(?:[A-Za-z][\w.-]*:|[ \t][^\S\n]*\S)[^\n]*)*")
_SUBJECT = re.compile(r"^subject: ?(.*)$", re.IGNORECASE | re.MULTILINE | re.ASCII)
_FIRST_LINE = re.compile(r"\s*([^\n]*)")


def title(text: str, chars: int = TITLE_CHARS) -> str:
    """A one-line title: the Subject of a mail/Usenet header, else the body's first line."""
    return heading(text, chars)[0]


def snippet(text: str, chars: int = SNIPPET_CHARS) -> str:
    """The first ``chars`` characters of the text's body (after any mail headers), one line."""
    return heading(text, snippet_chars=chars)[1]


def heading(
    text: str, chars: int = TITLE_CHARS, snippet_chars: int = SNIPPET_CHARS
) -> tuple[str, str]:
    """(title, snippet) of a document, reading only its first lines, not all of it.

    Leading ``Name: value`` lines (two or more, with their indented continuation lines,
    as in mail and Usenet posts) are headers: the title is the Subject header, the
    snippet starts after the headers.  Without a Subject, the title is the body's first
    line.
    """
    stripped = text.lstrip("\n")
    headers = _HEADERS.match(stripped)
    line, body, at = "", text, 0  # the body is body[at:], not copied
    if headers and "\n" in headers.group():
        body, at = stripped, headers.end() + 1
        subject = _SUBJECT.search(headers.group())
        line = subject.group(1).strip() if subject else ""
    if not line:
        line = _FIRST_LINE.match(body, at).group(1)  # type: ignore[union-attr]
    start = body[at : at + 4 * snippet_chars + 64]  # enough for the snippet once spaces collapse
    return _shorten(" ".join(line.split()), chars), _shorten(" ".join(start.split()), snippet_chars)


def _shorten(line: str, chars: int) -> str:
    return line if len(line) <= chars else line[: chars - 1] + "…"


@njit(cache=True, nogil=True)
def _tf_idf(indptr, indices, counts, idf):  # pragma: no cover - compiled
    """log(1 + count) * idf of each word, each row scaled to unit L2 norm: float32.

    One pass per row in float32 (the norm summed in float64): a query and a document
    with the same words get the same weights, whichever call weighs them.
    """
    out = np.empty(len(counts), dtype=np.float32)
    for r in range(len(indptr) - 1):
        total = 0.0
        for i in range(indptr[r], indptr[r + 1]):
            weight = np.float32(np.log1p(counts[i])) * idf[indices[i]]
            out[i] = weight
            total += np.float64(weight) * np.float64(weight)
        norm = np.float32(np.sqrt(total))
        if norm > 0:
            scale = np.float32(1.0) / norm
            for i in range(indptr[r], indptr[r + 1]):
                out[i] *= scale
    return out
