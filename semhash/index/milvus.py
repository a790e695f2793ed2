"""Binary codes in a Milvus collection: exact Hamming search on a server (or Milvus Lite).

One entity per document: the id (string primary key), the code as a
``BINARY_VECTOR`` (dimension = bits, a multiple of 8), labels joined by ``;``
(for filters such as ``labels like "%sci.space%"``).  The index is ``BIN_FLAT``
(exact) or ``BIN_IVF_FLAT`` (clusters; approximate), metric ``HAMMING``; reads
use strong consistency, so a search sees what was just written.

Results match the local exact scan with ties broken by id: Milvus orders ties
arbitrarily, so every document at the k-th distance is fetched by a range search
and the cut is made here.  A range search returns at most 16,384 hits; past that
:class:`MilvusError` says so rather than truncating silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

RANGE_LIMIT = 16_384  # Milvus's cap on the hits of one search
_BATCH = 5000  # entities per insert call


class MilvusError(RuntimeError):
    """Milvus is unreachable, or the collection does not fit these codes."""


class MilvusCodes:
    """A collection of binary codes keyed by document id."""

    def __init__(
        self, uri: str, collection: str, n_bits: int, index_type: str = "BIN_FLAT"
    ) -> None:
        try:
            from pymilvus import MilvusClient
        except ImportError:
            raise MilvusError("the Milvus backend needs: pip install 'semhash[milvus]'") from None
        if n_bits % 8:
            raise MilvusError(f"Milvus stores binary vectors of whole bytes; {n_bits} bits is not")
        self.uri, self.collection, self.n_bits = uri, collection, n_bits
        try:
            self.client = MilvusClient(uri)
        except Exception as err:  # pymilvus raises many kinds; all mean the same here
            raise MilvusError(f"{uri}: cannot reach Milvus ({_reason(err)})") from None
        if self.client.has_collection(collection):
            self._check_dimension()
        else:
            self._create(index_type)

    def _create(self, index_type: str) -> None:
        from pymilvus import DataType

        schema = self.client.create_schema(auto_id=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=1024)
        schema.add_field("code", DataType.BINARY_VECTOR, dim=self.n_bits)
        schema.add_field("labels", DataType.VARCHAR, max_length=4096)
        index = self.client.prepare_index_params()
        params = {"nlist": 1024} if index_type == "BIN_IVF_FLAT" else {}
        index.add_index("code", index_type=index_type, metric_type="HAMMING", params=params)
        self.client.create_collection(
            self.collection, schema=schema, index_params=index, consistency_level="Strong"
        )

    def _check_dimension(self) -> None:
        fields = self.client.describe_collection(self.collection)["fields"]
        dims = [f.get("params", {}).get("dim") for f in fields if f["name"] == "code"]
        if not dims or int(dims[0]) != self.n_bits:
            found = f"{dims[0]}-bit codes" if dims else "no 'code' field"
            raise MilvusError(
                f"{self.uri}: collection {self.collection!r} holds {found}, not {self.n_bits}-bit"
            )

    def close(self) -> None:
        """Let go of the server; Milvus Lite's file is then free for another process."""
        self.client.close()
        if not self.uri.startswith(("http://", "https://", "tcp://")):
            try:
                from milvus_lite.server_manager import server_manager_instance
            except ImportError:
                return
            server_manager_instance.release_server(self.uri)

    def __len__(self) -> int:
        rows = self.client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def upsert(
        self, ids: Sequence[str], codes: np.ndarray, labels: Sequence[Sequence[str]]
    ) -> None:
        """Write documents; an id already there is replaced."""
        for start in range(0, len(ids), _BATCH):
            rows = [
                {"id": ids[i], "code": self.as_bytes(codes[i]), "labels": ";".join(labels[i])}
                for i in range(start, min(start + _BATCH, len(ids)))
            ]
            self.client.upsert(self.collection, rows)

    def as_bytes(self, code: np.ndarray) -> bytes:
        """One packed code (uint64 words) as the collection stores it."""
        words = np.ascontiguousarray(code, dtype="<u8").reshape(-1)
        return words.view(np.uint8)[: self.n_bits // 8].tobytes()

    def ids(self) -> list[str]:
        """Every id in the collection."""
        found: list[str] = []
        iterator = self.client.query_iterator(
            self.collection, batch_size=_BATCH, filter="", output_fields=["id"]
        )
        while rows := iterator.next():
            found += [row["id"] for row in rows]
        iterator.close()
        return found

    def codes_of(self, ids: Sequence[str]) -> dict[str, bytes]:
        """The stored code of each of ``ids`` found in the collection."""
        out: dict[str, bytes] = {}
        for start in range(0, len(ids), _BATCH):
            part = list(ids[start : start + _BATCH])
            for row in self.client.get(self.collection, ids=part, output_fields=["code"]):
                code = row["code"]
                out[row["id"]] = bytes(code[0] if isinstance(code, list) else code)
        return out

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            self.client.delete(self.collection, ids=list(ids))

    def search(
        self, queries: np.ndarray, k: int, radius: int | None = None, filter: str = ""
    ) -> list[list[tuple[str, int]]]:
        """Per query, the ``k`` nearest (id, distance), within ``radius`` if given; ties by id."""
        if k > RANGE_LIMIT:
            raise MilvusError(f"Milvus returns at most {RANGE_LIMIT} hits a query; k is {k}")
        width = self.n_bits // 8
        as_bytes = np.ascontiguousarray(queries, dtype="<u8").view(np.uint8)[:, :width]
        data = [row.tobytes() for row in as_bytes]
        limit = k
        params: dict[str, Any] = {"metric_type": "HAMMING"}
        if radius is not None:
            params["params"] = {"radius": radius + 1, "range_filter": 0}  # 0 <= d <= radius
        hits = self._search(data, limit, params, filter)
        out = []
        for query, found in zip(data, hits, strict=True):
            pairs = [(h["id"], int(h["distance"])) for h in found]
            if len(pairs) == limit and pairs:  # others may tie with the last: fetch them all
                last = pairs[-1][1]
                tied = {
                    "metric_type": "HAMMING",
                    "params": {"radius": last + 1, "range_filter": last},
                }
                at_last = self._search([query], RANGE_LIMIT, tied, filter)[0]
                if len(at_last) == RANGE_LIMIT:
                    raise MilvusError(
                        f"more than {RANGE_LIMIT} documents lie at distance {last}; "
                        "Milvus cannot return them all: lower k or narrow the filter"
                    )
                pairs = [p for p in pairs if p[1] < last] + [(h["id"], last) for h in at_last]
            pairs.sort(key=lambda p: (p[1], p[0]))
            out.append(pairs[:k])
        return out

    def _search(self, data: list[bytes], limit: int, params: dict, filter: str) -> list:
        try:
            return self.client.search(
                self.collection, data=data, anns_field="code", limit=limit,
                search_params=params, filter=filter, output_fields=["id"],
            )  # fmt: skip
        except Exception as err:
            raise MilvusError(f"{self.uri}: search failed ({_reason(err)})") from None


def _reason(err: Exception) -> str:
    return getattr(err, "message", None) or str(err).splitlines()[0]
