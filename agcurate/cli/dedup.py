"""``agcurate dedup`` and ``agcurate undo``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import DEFAULT_OUT, EmbedOptions, OutOpt, PathsArg, command, console, embed_options, key_value_table

KEEP_HELP = "Which file of a group to keep: largest (most pixels, then bytes), sharpest, or first (path order)."


def _file_sizes(items) -> list[int]:
    """Bytes of each whole-file item (0 for tiles, frames and vanished files)."""
    import os

    sizes = []
    for r in items.itertuples(index=False):
        whole = int(r.frame) < 0 and int(r.x) < 0
        try:
            sizes.append(os.stat(r.path).st_size if whole else 0)
        except OSError:
            sizes.append(0)
    return sizes


def register(app: typer.Typer) -> None:
    @command(app, "dedup")
    @embed_options()
    def dedup_cmd(
        paths: PathsArg = None,
        threshold: Annotated[Optional[float], typer.Option(
            "--threshold", "-t", min=-1.0, max=1.0,
            help="Similarity of aligned pixels needed to call two items duplicates "
                 "(default 0.85; with --no-verify: embedding cosine, default 0.95).")] = None,
        keep: Annotated[str, typer.Option("--keep", help=KEEP_HELP)] = "largest",
        out: OutOpt = DEFAULT_OUT,
        move_to: Annotated[Optional[Path], typer.Option(
            "--move-to", help="Move every non-kept file under this folder (relative paths kept, manifest "
                              "written first; `agcurate undo MANIFEST` puts them back).")] = None,
        rotations: Annotated[bool, typer.Option(
            "--rotations/--no-rotations",
            help="Also embed items turned 90/180 degrees and search with those (two more embedding "
                 "passes, cached); finds turned copies the plain embedding misses.")] = False,
        verify: Annotated[bool, typer.Option(
            "--verify/--no-verify", help="Check candidate pairs pixel by pixel (keypoints + alignment).")] = True,
        opts: EmbedOptions = None,
    ) -> None:
        """Find exact and near-duplicate images; write duplicates.csv and dedup.html (files untouched
        unless --move-to)."""
        from rich.markup import escape

        from ..ops.dedup import DEFAULT_THRESHOLD, KEEP_POLICIES, duplicates_table, find_duplicates, summary
        from ..report import human_bytes, write_csv
        from ..report.pages import write_dedup_page

        if keep not in KEEP_POLICIES:
            raise typer.BadParameter(f"must be one of {', '.join(KEEP_POLICIES)}", param_hint="--keep")
        if threshold is None:
            threshold = DEFAULT_THRESHOLD if verify else 0.95
        emb = opts.embed(paths)
        turned = None
        if rotations and verify and len(emb) > 1:
            from ..rotations import turned_vectors

            turned = turned_vectors(emb, device=opts.device, batch_size=opts.batch_size, workers=opts.workers,
                                    store=opts.store)
        items = emb.items.copy()
        items["bytes"] = _file_sizes(items)
        result = find_duplicates(emb.vectors, items, threshold=threshold, keep=keep, verify=verify,
                                 turned=turned)
        table = duplicates_table(items, result)
        info = summary(result, items["bytes"].tolist())
        out = Path(out)
        csv_path = write_csv(table[["group", "path", "keep", "score", "reason", "frame", "window", "width",
                                    "height", "bytes"]], out / "duplicates.csv")
        html_path = write_dedup_page(out / "dedup.html", table, items, info, threshold=threshold, keep=keep)

        c = console()
        c.print(key_value_table("agcurate dedup", [
            ("files", f"{info['items']:,}"), ("duplicate groups", f"{info['groups']:,}"),
            ("files that could be removed", f"{info['removable']:,}"),
            ("bytes that would be freed", f"{human_bytes(info['bytes'])} ({info['bytes']:,})")]))
        c.print(f"wrote {escape(str(csv_path))} and {escape(str(html_path))}")
        if move_to is None:
            return
        _move(c, table, emb.inputs, move_to, out)

    @command(app, "undo")
    def undo_cmd(
        manifest: Annotated[Path, typer.Argument(help="The manifest `agcurate dedup --move-to` wrote.")],
    ) -> None:
        """Put back the files a `dedup --move-to` run moved (also repairs an interrupted run)."""
        from rich.markup import escape

        from ..fileops import undo

        rep = undo(manifest)
        c = console()
        c.print(f"restored {len(rep.done)} file(s); {len(rep.skipped)} needed nothing; {len(rep.failed)} failed")
        for m in rep.failed[:10]:
            c.print(f"  [red]not restored[/] {escape(m.dst)}: {escape(m.status)}")
        if rep.failed:
            raise typer.Exit(1)


def _move(c, table, inputs, move_to: Path, out: Path) -> None:
    """Move the removable whole files; tiles and frames of a file that is also kept stay."""
    from rich.markup import escape

    from ..fileops import move_files
    from ..report import human_bytes

    whole = (table["frame"] < 0) & (table["window"] == "")
    kept_paths = set(table.loc[table["keep"], "path"])
    todo = [p for p in dict.fromkeys(table.loc[whole & ~table["keep"], "path"]) if p not in kept_paths]
    if not todo:
        c.print("nothing to move")
        return
    rep = move_files(todo, move_to, inputs, note={"command": "dedup", "out": str(out.resolve())})
    c.print(f"moved {len(rep.done)} file(s) ({human_bytes(rep.bytes)}) under {escape(str(move_to))}")
    for m in rep.failed[:10]:
        c.print(f"  [red]not moved[/] {escape(m.src)}: {escape(m.status)}")
    c.print(f"manifest: {escape(str(rep.manifest))}\nundo with: agcurate undo {escape(str(rep.manifest))}")
