"""Exact and near-duplicate groups: hashes, embedding candidates, pixel verification, one keeper.

1. Exact: items with the same decoded pixels (``pixel_hash``) or the same bytes (``content_hash``).
2. Candidates: each item's ``k`` nearest neighbours by embedding with cosine >= ``candidate_similarity``
   (shared faiss kNN, sub-quadratic for large collections).
3. Verification: each candidate pair is aligned (SIFT + RANSAC, or a right-angle rotation) and its
   aligned pixels correlated (``agcurate.ops.verify``); the pair is a duplicate when that score is at
   least ``threshold``. This is what separates a crop from a look-alike.
4. Groups are the connected components; one item per group is kept (largest, sharpest or first).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from .verify import Features, PairCheck, compare, features

DEFAULT_THRESHOLD = 0.85     # aligned-pixel correlation needed to call a pair a duplicate
CANDIDATE_SIMILARITY = 0.5   # embedding cosine needed to be checked at all
K = 25                       # neighbours per item considered as candidates (a slightly rotated small copy,
                             # black-cornered, can rank past 20 among same-class look-alikes)
KEEP_POLICIES = ("largest", "sharpest", "first")
BATCH_PAIRS = 128            # pairs verified between two updates of the groups
FEATURE_CACHE = 1024         # items whose verification features are kept in memory

Loader = Callable[[int], np.ndarray]


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def exact_pairs(items: "pd.DataFrame") -> list[tuple[int, int]]:  # noqa: F821
    """Pairs (first, other) of items sharing decoded pixels or file bytes."""
    out: list[tuple[int, int]] = []
    for col in ("pixel_hash", "content_hash"):
        if col not in items.columns:
            continue
        first: dict[str, int] = {}
        for i, h in enumerate(items[col].fillna("").astype(str)):
            if not h:
                continue
            if h in first:
                out.append((first[h], i))
            else:
                first[h] = i
    return out


def candidate_pairs(vectors: np.ndarray, min_similarity: float = CANDIDATE_SIMILARITY, k: int = K,
                    turned: Mapping[int, np.ndarray] | None = None) -> list[tuple[int, int, float]]:
    """Pairs (i < j, cosine) among each item's ``k`` nearest neighbours above ``min_similarity``.

    ``turned`` maps a quarter-turn count to the items' vectors embedded with turned input; each
    turned vector is searched against the unturned ones too, which finds rotated copies.
    """
    from .neighbors import knn, pairs_above

    n = len(vectors)
    if n < 2:
        return []
    k = min(k, n - 1)
    best = {(a, b): s for a, b, s in pairs_above(vectors, min_similarity, k=k)}
    for tv in (turned or {}).values():
        sims, ids = knn(vectors, k + 1, queries=tv)
        for i in range(n):
            for s, j in zip(sims[i], ids[i]):
                if j < 0 or s < min_similarity:
                    break
                if j != i:
                    key = (min(i, int(j)), max(i, int(j)))
                    best[key] = max(best.get(key, -1.0), float(s))
    return sorted((a, b, s) for (a, b), s in best.items())


class PairVerifier:
    """Compares pairs of items by pixels, two threads at a time (OpenCV releases the GIL).

    Features are computed once per item and kept in a bounded cache, so memory stays flat on
    large collections; an item that cannot be read fails its pairs (score 0).
    """

    def __init__(self, load: Loader, cache: int = FEATURE_CACHE, threads: int | None = None):
        from ..system import cpu_threads

        self.load = load
        self.cache: OrderedDict[int, Features | None] = OrderedDict()
        self.size = cache
        self.threads = threads or max(1, min(4, cpu_threads()))

    def _features(self, i: int) -> Features | None:
        try:
            return features(self.load(i))
        except Exception:  # noqa: BLE001 - a vanished or corrupt file must not stop the run
            return None

    def check(self, pairs: Sequence[tuple[int, int]]) -> dict[tuple[int, int], PairCheck]:
        """Scores of ``pairs`` (computed in order-independent batches; same result every run)."""
        from concurrent.futures import ThreadPoolExecutor

        out: dict[tuple[int, int], PairCheck] = {}
        with ThreadPoolExecutor(self.threads) as pool:
            for s in range(0, len(pairs), BATCH_PAIRS):
                batch = list(pairs[s:s + BATCH_PAIRS])
                need = sorted({i for p in batch for i in p} - set(self.cache))
                for i, f in zip(need, pool.map(self._features, need)):
                    self.cache[i] = f
                for i in {i for p in batch for i in p}:
                    self.cache.move_to_end(i)

                def one(p):
                    fa, fb = self.cache.get(p[0]), self.cache.get(p[1])
                    return compare(fa, fb) if fa is not None and fb is not None else PairCheck(0.0, "none")

                out.update(zip(batch, pool.map(one, batch)))
                while len(self.cache) > max(self.size, 2 * BATCH_PAIRS):
                    self.cache.popitem(last=False)
        return out


def verify_pairs(pairs: Sequence[tuple[int, int]], load: Loader) -> dict[tuple[int, int], PairCheck]:
    """Compare the pixels of each pair (``load(i)`` gives item ``i``'s RGB pixels); an item that
    cannot be read fails its pairs (score 0)."""
    return PairVerifier(load).check(pairs)


def _keeper(members: list[int], items, keep: str) -> int:
    def col(name: str, default: float = 0.0) -> np.ndarray:
        if name in items.columns:
            return items[name].fillna(default).to_numpy(dtype=float)
        return np.full(len(items), default)

    if keep == "first":
        return min(members)
    if keep == "sharpest":
        sharp = col("sharpness")
        return min(members, key=lambda i: (-sharp[i], i))
    area = col("width") * col("height")
    size = col("bytes")
    return min(members, key=lambda i: (-area[i], -size[i], i))


def find_duplicates(vectors: np.ndarray, items: "pd.DataFrame", *,  # noqa: F821
                    threshold: float = DEFAULT_THRESHOLD, keep: str = "largest",
                    candidate_similarity: float = CANDIDATE_SIMILARITY, k: int = K,
                    verify: bool = True, turned: Mapping[int, np.ndarray] | None = None,
                    load: Loader | None = None, progress: bool | None = None) -> "pd.DataFrame":  # noqa: F821
    """One row per item: ``group`` (-1 when unique), ``keep``, ``score``, ``is_duplicate``.

    ``is_duplicate`` marks the items that could be removed (in a group and not kept); ``score``
    is the similarity to the group's kept item (1.0 for exact copies and for the keeper itself),
    ``reason`` says ``exact`` or ``near``. With ``verify=False`` the embedding cosine alone
    decides (then ``threshold`` applies to the cosine). ``turned``: see ``candidate_pairs``.
    ``load(i)`` returns the RGB pixels of row ``i`` (needed when ``verify``).
    """
    import pandas as pd

    from ..progress import progress_bar

    if keep not in KEEP_POLICIES:
        raise ValueError(f"keep must be one of {', '.join(KEEP_POLICIES)}, not {keep!r}")
    if verify and load is None:
        raise ValueError("verify=True needs a pixel loader: load(i) -> RGB array of row i")
    n = len(items)
    uf = _UnionFind(n)
    exact = exact_pairs(items)
    exact_set = set()
    for a, b in exact:
        uf.union(a, b)
        exact_set.add((min(a, b), max(a, b)))
    cands = [(a, b, s) for a, b, s in candidate_pairs(vectors, candidate_similarity if verify else threshold, k,
                                                    turned if verify else None)
             if (a, b) not in exact_set]
    checked: dict[tuple[int, int], float] = {}
    verifier = PairVerifier(load) if verify else None
    cands.sort(key=lambda c: (-c[2], c[0], c[1]))  # most similar first: big groups form early
    with progress_bar(len(cands), "verifying pairs", enabled=progress, unit="pairs") as bar:
        for s in range(0, len(cands), BATCH_PAIRS):
            batch = cands[s:s + BATCH_PAIRS]
            # a pair already joined through others needs no check (its score is taken against the keeper)
            todo = [(a, b) for a, b, _ in batch if uf.find(a) != uf.find(b)]
            if verifier is not None:
                scores = {p: c.score for p, c in verifier.check(todo).items()}
            else:
                scores = {(a, b): float(v) for a, b, v in batch}
            for p in todo:
                checked[p] = scores[p]
                if scores[p] >= threshold:
                    uf.union(*p)
            bar.advance(len(batch))

    roots = np.array([uf.find(i) for i in range(n)])
    group = np.full(n, -1, np.int64)
    keep_flag = np.zeros(n, bool)
    score = np.zeros(n, np.float32)
    reason = np.array([""] * n, dtype=object)
    members_of: dict[int, list[int]] = {}
    for i, r in enumerate(roots):
        members_of.setdefault(int(r), []).append(i)
    gid = 0
    extra: list[tuple[int, int]] = []
    plans: list[tuple[int, int, list[int]]] = []
    for r in sorted(members_of, key=lambda r: min(members_of[r])):
        members = members_of[r]
        if len(members) < 2:
            continue
        kept = _keeper(members, items, keep)
        plans.append((gid, kept, members))
        for m in members:
            pair = (min(kept, m), max(kept, m))
            if m != kept and pair not in exact_set and pair not in checked:
                extra.append(pair)
        gid += 1
    if extra and verifier is not None:  # score every member against its keeper, not only a neighbour
        for (a, b), c in verifier.check(extra).items():
            checked[(a, b)] = c.score
    elif extra:
        for a, b in extra:
            checked[(a, b)] = float(vectors[a] @ vectors[b])
    hashes = {col: items[col].fillna("").astype(str).to_numpy() for col in ("pixel_hash", "content_hash")
              if col in items.columns}
    for g, kept, members in plans:
        for m in members:
            group[m] = g
            pair = (min(kept, m), max(kept, m))
            same = m == kept or pair in exact_set or any(h[m] and h[m] == h[kept] for h in hashes.values())
            score[m] = 1.0 if same else max(0.0, checked.get(pair, 0.0))
            reason[m] = "exact" if same else "near"
        keep_flag[kept] = True
        reason[kept] = "exact" if all(reason[m] == "exact" for m in members if m != kept) else "near"
    return pd.DataFrame({
        "group": group, "keep": keep_flag, "score": np.round(score, 4),
        "is_duplicate": (group >= 0) & ~keep_flag, "reason": reason,
    })


def summary(result: "pd.DataFrame", sizes: Sequence[int] | None = None) -> dict[str, int]:  # noqa: F821
    """Counts for the CLI: items, groups, removable items and the bytes removing them would free."""
    dup = result["is_duplicate"].to_numpy()
    out = {"items": len(result), "groups": int(result["group"].max() + 1) if len(result) else 0,
           "removable": int(dup.sum()), "bytes": 0}
    if sizes is not None:
        out["bytes"] = int(np.asarray(sizes, dtype=np.int64)[dup].sum())
    return out


def duplicates_table(items: "pd.DataFrame", result: "pd.DataFrame") -> "pd.DataFrame":  # noqa: F821
    """The ``duplicates.csv`` rows: one per item in a group, keeper first, with where and why.

    Columns ``group,path,keep,score`` then ``reason`` (exact / near), ``frame``, ``window``
    (``x,y,w,h`` of a tile), ``width``, ``height`` and ``bytes`` where known.
    """
    import pandas as pd

    from ..items import window_text

    sel = np.flatnonzero(result["group"].to_numpy() >= 0)
    it = items.iloc[sel].reset_index(drop=True)
    res = result.iloc[sel].reset_index(drop=True)

    table = pd.DataFrame({
        "group": res["group"].astype(int), "path": it["path"], "keep": res["keep"].astype(bool),
        "score": res["score"].astype(float).round(4), "reason": res["reason"],
        "frame": it["frame"].astype(int) if "frame" in it else -1,
        "window": [window_text(r.x, r.y, r.w, r.h) for r in it.itertuples()] if "x" in it else "",
        "width": it["width"].astype(int) if "width" in it else 0,
        "height": it["height"].astype(int) if "height" in it else 0,
        "bytes": it["bytes"].astype("int64") if "bytes" in it else 0,
    })
    table["_k"] = ~table["keep"]
    table = table.sort_values(["group", "_k", "score", "path"], ascending=[True, True, False, True], kind="stable")
    return table.drop(columns="_k").reset_index(drop=True)
