"""``agcurate probe``: few-label accuracy (linear probe and k-NN) of one or more encoders."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..encoders import DEFAULT_MODEL
from .common import DEFAULT_OUT, OutOpt, PathsArg, command, console, embed_options, embedded_note

ModelsOpt = Annotated[Optional[list[str]], typer.Option(
    "--model", "-m", help="Encoder to evaluate; repeat to compare several side by side "
                          "(e.g. -m lite0 -m file:model.pt). Default: lite0.")]


def register(app: typer.Typer) -> None:
    @command(app, "probe")
    @embed_options(model=False)
    def probe_cmd(
        paths: PathsArg = None,
        labels: Annotated[Optional[Path], typer.Option(
            "--labels", help="CSV with a path and a label column (header path,label; relative paths "
                             "from the CSV's folder; unmatched paths also match by file name).")] = None,
        labels_from_folders: Annotated[bool, typer.Option(
            "--labels-from-folders", help="Use each image's parent folder name as its class.")] = False,
        model: ModelsOpt = None,
        fractions: Annotated[str, typer.Option(
            "--fractions", help="Label fractions to train on, comma separated; 1 = all labels, scored by "
                                "5-fold cross-validation.")] = "0.01,0.1,1",
        repeats: Annotated[int, typer.Option("--repeats", min=1, help="Random labelled samples per fraction.")] = 5,
        seed: Annotated[int, typer.Option("--seed", help="Seed of the samples and folds.")] = 0,
        knn_k: Annotated[int, typer.Option("--knn-k", min=1, help="Neighbours of the k-NN classifier, capped at "
                                           "the average training items per class.")] = 10,
        out: OutOpt = DEFAULT_OUT,
        config=None,
    ) -> None:
        """How good are the embeddings with few labels? Linear probe and k-NN accuracy per label fraction."""
        from ..report.html import count
        from ..workflows.probe import probe

        models = list(model or [DEFAULT_MODEL])
        res = probe(paths or None, labels=labels, labels_from_folders=labels_from_folders, models=models,
                    fractions=fractions, repeats=repeats, seed=seed, knn_k=knn_k, out=out, config=config,
                    on_embedded=lambda emb: embedded_note(emb, with_model=True))
        csv_path = res.csv
        print_table(res)
        o = console()
        lab = res.n_labelled[models[0]]
        unl = res.n_unlabelled[models[0]]
        o.print(f"{count(lab, 'labelled item')} in {count(len(res.classes), 'class')}"
                + (f" ({count(unl, 'item')} without a label ignored)" if unl else "")
                + "; fraction 1 is scored by cross-validation, others on all items not sampled")
        o.print(f"wrote {csv_path} and {csv_path.with_name('probe_runs.csv')}")


def print_table(res) -> None:
    """Rows: classifier x fraction; one column per model with accuracy and macro-F1 (mean ± std)."""
    from rich.markup import escape
    from rich.table import Table

    s = res.summary
    table = Table(title="agcurate probe · accuracy / macro-F1 (mean ± std over repeats)")
    table.add_column("classifier")
    table.add_column("labels", justify="right")
    table.add_column("train", justify="right")
    for m in res.models:
        table.add_column(escape(_short(m)), justify="right")
    for (clf, frac), part in s.groupby(["classifier", "fraction"], sort=False):
        cells = []
        for m in res.models:
            r = part[part["model"] == m]
            if r.empty:
                cells.append("-")
                continue
            r = r.iloc[0]
            cells.append(f"{100 * r.accuracy_mean:.1f} ± {100 * r.accuracy_std:.1f} / "
                         f"{100 * r.macro_f1_mean:.1f}")
        first = part.iloc[0]
        label = f"{100 * frac:g}%" + (f" ({first.evaluation})" if first.evaluation != "holdout" else "")
        table.add_row(clf, label, str(first.n_train), *cells)
    console().print(table)


def _short(model: str) -> str:
    if model.startswith("file:"):
        return "file:" + Path(model[5:]).name
    return model
