"""``agcurate dedup`` and ``agcurate undo``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import DEFAULT_OUT, OutOpt, PathsArg, command, console, embed_options, embedded_note, key_value_table

KEEP_HELP = "Which file of a group to keep: largest (most pixels, then bytes), sharpest, or first (path order)."


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
                 "passes, cached). Turned and mirrored copies are found without it (see --turns); "
                 "this adds copies that are both turned and cropped.")] = False,
        turns: Annotated[bool, typer.Option(
            "--turns/--no-turns",
            help="Look for turned (90/180/270 degrees) and mirrored copies from small grey thumbnails "
                 "(one quick read of each file; on by default).")] = True,
        verify: Annotated[bool, typer.Option(
            "--verify/--no-verify", help="Check candidate pairs pixel by pixel (keypoints + alignment).")] = True,
        config=None,
    ) -> None:
        """Find exact and near-duplicate images; write duplicates.csv and dedup.html (files untouched
        unless --move-to)."""
        from rich.markup import escape

        from ..report import human_bytes
        from ..workflows.dedup import dedup

        res = dedup(paths or None, threshold=threshold, keep=keep, verify=verify, rotations=rotations, turns=turns, out=out,
                    move_to=move_to, config=config, on_embedded=embedded_note)
        info = res.summary
        c = console()
        rows = [("files", f"{info['items']:,}"), ("duplicate groups", f"{info['groups']:,}"),
                ("files that could be removed", f"{info['removable']:,}"),
                ("bytes that would be freed", f"{human_bytes(info['bytes'])} ({info['bytes']:,})")]
        pairs = res.result.attrs.get("pairs")
        if pairs and verify:
            rows.append(("candidate pairs", f"{pairs['candidates']:,} ({pairs['rejected_cheaply']:,} rejected cheaply, "
                                            f"{pairs['checked']:,} checked by pixels)"))
        c.print(key_value_table("agcurate dedup", rows))
        c.print(f"wrote {escape(str(res.csv))} and {escape(str(res.html))}")
        if move_to is None:
            return
        rep = res.moves
        if rep is None:
            c.print("nothing to move")
            return
        c.print(f"moved {len(rep.done)} file(s) ({human_bytes(rep.bytes)}) under {escape(str(move_to))}")
        for m in rep.failed[:10]:
            c.print(f"  [red]not moved[/] {escape(m.src)}: {escape(m.status)}")
        c.print(f"manifest: {escape(str(rep.manifest))}\nundo with: agcurate undo {escape(str(rep.manifest))}")

    @command(app, "undo")
    def undo_cmd(
        manifest: Annotated[Path, typer.Argument(help="The manifest `agcurate dedup --move-to` wrote.")],
    ) -> None:
        """Put back the files a `dedup --move-to` run moved (also repairs an interrupted run)."""
        from rich.markup import escape

        from ..workflows.fileops import undo

        rep = undo(manifest)
        c = console()
        c.print(f"restored {len(rep.done)} file(s); {len(rep.skipped)} needed nothing; {len(rep.failed)} failed")
        for m in rep.failed[:10]:
            c.print(f"  [red]not restored[/] {escape(m.dst)}: {escape(m.status)}")
        if rep.failed:
            raise typer.Exit(1)
