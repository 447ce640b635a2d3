"""Cluster quality on real labelled images: NMI / ARI between clusters and classes, noise share,
and leave-one-out 5-NN accuracy of the embedding, for UMAP-nD and PCA-nD reductions before HDBSCAN.

Every row is ``agcurate.cluster(...)`` on the same input the CLI gets (the EuroSAT folder itself, as in
``agcurate cluster ../shared/data/eurosat-rgb/images``), so the figures are what the command gives.

    PYTHONPATH=. python benchmarks/cluster_quality.py [--data ../shared/data] [--store .bench/store]
        [--model lite0|lite0-ml|...] [--seeds 3]

With ``--seeds N`` every variant is clustered with seeds 0..N-1; NMI and ARI are the means and the
``NMI range`` column shows the spread (one seed moves NMI by up to about 0.03 on these sets).

Data: eurosat-rgb (1,500 images, 10 classes, class = folder) and rice-leaf originals
(``<Class>_<n>.jpg`` without ``_rot``, 3 classes). Embeddings are cached in the store, so reruns only
cluster.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def datasets(root: Path) -> dict[str, list[str]]:
    """The inputs of each data set as a user gives them: the EuroSAT folder, the rice-leaf originals."""
    out = {}
    euro = root / "eurosat-rgb" / "images"
    if euro.is_dir():
        out["eurosat-rgb"] = [str(euro)]
    rice = root / "rice-leaf"
    if rice.is_dir():
        out["rice-leaf"] = sorted(str(p) for p in rice.glob("*/*.jpg") if "_rot" not in p.name)
    return out


def label_of(path: str) -> str:
    """The class: the parent folder's name."""
    return Path(path).parent.name


def knn_accuracy(vectors: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    """Leave-one-out k-NN (cosine, majority vote) accuracy of the embedding itself."""
    from agcurate.ops.neighbors import knn

    _, ids = knn(vectors, k)
    correct = 0
    for i, row in enumerate(ids):
        votes = labels[row[row >= 0]]
        vals, counts = np.unique(votes, return_counts=True)
        correct += vals[np.argmax(counts)] == labels[i]
    return correct / len(labels)


def scores(labels_true: np.ndarray, clusters: np.ndarray) -> dict:
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    noise = clusters < 0
    res = {
        "nmi": normalized_mutual_info_score(labels_true, clusters),
        "ari": adjusted_rand_score(labels_true, clusters),
        "noise": float(noise.mean()),
        "clusters": int(len(set(clusters.tolist()) - {-1})),
    }
    keep = ~noise
    res["nmi_clustered"] = (normalized_mutual_info_score(labels_true[keep], clusters[keep])
                            if keep.sum() > 1 else float("nan"))
    return res


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("AGCURATE_SHARED_DATA", "../shared/data")))
    ap.add_argument("--store", type=Path, default=Path(".bench/store"))
    ap.add_argument("--model", default="lite0")
    ap.add_argument("--reductions", default="umap,pca")
    ap.add_argument("--dims", type=int, default=None)
    ap.add_argument("--min-cluster-size", type=int, default=None)
    ap.add_argument("--min-samples", type=int, default=None)
    ap.add_argument("--seeds", type=int, default=1, help="cluster with seeds 0..N-1 and average")
    args = ap.parse_args(argv)

    import agcurate
    from agcurate.ops.cluster import CLUSTER_DIMS

    sets = datasets(args.data)
    if not sets:
        sys.exit(f"no data under {args.data}")
    print(f"{'data':12} {'reduction':20} {'n':>5} {'clusters':>8} {'NMI':>6} {'ARI':>6} {'noise':>6} "
          f"{'NMI(no noise)':>13} {'5-NN':>6} {'secs':>6} {'NMI range':>12}")
    for name, inputs in sets.items():
        emb = agcurate.embed(inputs, args.model, store=args.store, progress=False, remember=False)
        y = np.array([label_of(p) for p in emb.paths])
        acc = knn_accuracy(emb.vectors, y)
        variants = [(red, False) for red in args.reductions.split(",")] + [("umap", True)]
        for red, assign in variants:
            t0 = time.perf_counter()
            runs = []
            for seed in range(max(1, args.seeds)):
                res = agcurate.cluster(inputs, model=args.model, store=args.store, progress=False, seed=seed,
                                       reduction=red, dims=args.dims or CLUSTER_DIMS, assign_noise=assign,
                                       min_cluster_size=args.min_cluster_size, min_samples=args.min_samples)
                truth = np.array([label_of(p) for p in res.table["path"]])
                runs.append(scores(truth, res.table["cluster"].to_numpy()))
            secs = (time.perf_counter() - t0) / len(runs)
            s = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
            nmis = [r["nmi"] for r in runs]
            label = red + (" +assign-noise" if assign else "")
            print(f"{name:12} {label:20} {len(y):5d} {s['clusters']:8.1f} {s['nmi']:6.3f} {s['ari']:6.3f} "
                  f"{s['noise']:6.1%} {s['nmi_clustered']:13.3f} {acc:6.3f} {secs:6.1f} "
                  f"{min(nmis):5.3f}-{max(nmis):5.3f}", flush=True)
        p = res.params
        print(f"{'':12} (min cluster size {p.min_cluster_size}, min samples {p.min_samples}, {p.dims}-D)")


if __name__ == "__main__":
    main()
