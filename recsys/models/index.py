"""FAISS inner-product index over item embeddings, with measured ANN recall.

IVFFlat (``nlist`` from settings) with ``nprobe`` starting at FAISS_N_PROBE and raised until
recall@k against the exact flat index reaches FAISS_TARGET_RECALL on sample queries (the
training users' own vectors, never test data). Catalogs smaller than FAISS_EXACT_BELOW or than
``nlist`` get an exact ``IndexFlatIP``. (nprobe=10 of nlist=100 lists scans a tenth of the
catalog: on a catalog of a few thousand items that is fewer than k=500, so the tuning loop is
what makes the IVF index usable there.)
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import faiss
import numpy as np

log = logging.getLogger(__name__)


@dataclass
class IndexStats:
    kind: str
    n_items: int
    dim: int
    nlist: int = 0
    nprobe: int = 0
    nprobe_start: int = 0
    k: int = 0
    recall_at_k_vs_exact: float = 1.0
    recall_at_start_nprobe: float = 1.0
    tuning: list = field(default_factory=list)


def ann_recall(index: faiss.Index, exact: faiss.Index, queries: np.ndarray, k: int) -> float:
    """Mean |ANN top-k ∩ exact top-k| / k over ``queries``."""
    k = min(k, exact.ntotal)
    _, a = index.search(queries, k)
    _, e = exact.search(queries, k)
    return float(np.mean([len(set(x[x >= 0]) & set(y)) / k for x, y in zip(a, e)]))


def build_index(
    item_emb: np.ndarray,
    queries: np.ndarray,
    k: int,
    nlist: int,
    nprobe: int,
    target_recall: float,
    exact_below: int = 0,
    seed: int = 42,
) -> tuple[faiss.Index, IndexStats]:
    """Build the index and return it with its stats (recall measured on ``queries``)."""
    x = np.ascontiguousarray(item_emb, dtype=np.float32)
    n, d = x.shape
    exact = faiss.IndexFlatIP(d)
    exact.add(x)
    if n < max(exact_below, nlist):
        log.info("exact index: %d items (< %d)", n, max(exact_below, nlist))
        return exact, IndexStats(kind="flat", n_items=n, dim=d, k=k)
    quantizer = faiss.IndexFlatIP(d)
    index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    index.train(x)
    index.add(x)
    q = np.ascontiguousarray(queries, dtype=np.float32)
    stats = IndexStats(kind="ivfflat", n_items=n, dim=d, nlist=nlist, nprobe_start=nprobe, k=k)
    probe = nprobe
    while True:
        index.nprobe = probe
        rec = ann_recall(index, exact, q, k)
        stats.tuning.append({"nprobe": probe, "recall": rec})
        if probe == nprobe:
            stats.recall_at_start_nprobe = rec
        if rec >= target_recall or probe >= nlist:
            break
        probe = min(nlist, probe * 2 if probe < 8 else probe + max(1, probe // 2))
    stats.nprobe, stats.recall_at_k_vs_exact = probe, rec
    log.info("IVF nlist=%d nprobe=%d recall@%d=%.4f", nlist, probe, k, rec)
    return index, stats


def save_index(index: faiss.Index, stats: IndexStats, out_dir: Path) -> list[str]:
    faiss.write_index(index, str(Path(out_dir) / "index.faiss"))
    (Path(out_dir) / "index.json").write_text(json.dumps(asdict(stats), indent=2))
    return ["index.faiss", "index.json"]


def load_index(in_dir: Path) -> tuple[faiss.Index, IndexStats]:
    index = faiss.read_index(str(Path(in_dir) / "index.faiss"))
    stats = IndexStats(**json.loads((Path(in_dir) / "index.json").read_text()))
    if stats.kind == "ivfflat":
        faiss.extract_index_ivf(index).nprobe = stats.nprobe
    return index, stats
