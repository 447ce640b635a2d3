"""``agcurate frames``: keyframes of videos as JPEG + CSV + contact sheet."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..items import display_path
from ..ops.keyframes import DEFAULT_THRESHOLD
from ..ops.motion import DEFAULT_OVERLAP
from .common import DEFAULT_OUT, OutOpt, command, common_folder, console, embed_options, print_skipped

VideosArg = Annotated[  # str, not Path: a URL (s3://bucket/videos) keeps its double slash
    Optional[list[str]],
    typer.Argument(help="Video files or folders of videos (recursive), or URLs (s3://...). Omit to reuse the "
                        "last `agcurate embed` collection.", show_default=False),
]


def register(app: typer.Typer) -> None:
    @command(app, "frames")
    @embed_options()
    def frames_cmd(
        videos: VideosArg = None,
        threshold: Annotated[float, typer.Option(
            "--threshold", "-t", min=-1.0, max=1.0,
            help="Cosine similarity at which two frames show the same thing: higher keeps more frames.",
        )] = DEFAULT_THRESHOLD,
        mode: Annotated[str, typer.Option(
            "--mode", help="auto: per shot, a frame each time a moving camera's view has moved on, and for a fixed "
                           "camera its view plus a frame per thing passing through (where the motion cannot be "
                           "measured, a frame per lasting change of look); coverage: the moving-camera "
                           "rule everywhere; shots: one frame per run of similar embeddings.",
        )] = "auto",
        overlap: Annotated[float, typer.Option(
            "--overlap", min=0.05, max=0.95,
            help="Keep a new frame when the view shares less than this with every kept frame of its shot "
                 "(auto, coverage): higher keeps more frames.",
        )] = DEFAULT_OVERLAP,
        all_samples: Annotated[bool, typer.Option(
            "--all-samples", help="Embed every sample, also those that look the same as the one before.")] = False,
        out: OutOpt = DEFAULT_OUT,
        config=None,
    ) -> None:
        """Keep one sharp frame per distinct view: a moving camera's each time it has moved on, a fixed camera's
        once plus whatever passes through, repeated shots never."""
        from rich.markup import escape
        from rich.table import Table

        from ..report.html import count, format_time
        from ..workflows.frames import frames

        res = frames(videos or None, threshold=threshold, mode=mode, overlap=overlap, out=out,
                     skip_static=not all_samples, config=config)
        emb = res.embeddings
        table = Table(title=f"agcurate frames · {escape(emb.encoder.name)}")
        for col, just in (("video", "left"), ("duration", "right"), ("sampled", "right"),
                          ("runs", "right"), ("repeats", "right"), ("keyframes", "right")):
            table.add_column(col, justify=just, overflow="fold")
        base = common_folder(emb.inputs)
        for v in res.videos:
            seg = v.table.groupby("segment")["is_repeat"].first()
            table.add_row(escape(display_path(v.path, base)), format_time(v.duration_s), f"{v.n_sampled:,}",
                          f"{len(seg):,}", f"{int(seg.sum()):,}", f"{int(v.table['is_keyframe'].sum()):,}")
        c = console()
        c.print(table)
        s = emb.stats
        rate = f", {res.duration_s / s.seconds:.1f}x real time" if s.seconds > 0 and s.encoded else ""
        c.print(f"{count(res.n_kept, 'keyframe')} from {count(res.n_sampled, 'sampled frame')} "
                f"({s.encoded} newly encoded, {s.cached} from cache{rate})")
        print_skipped(emb, c)
        c.print(f"wrote {escape(str(res.csv))}, {escape(str(res.html))} and {count(len(res.written), 'JPEG')} under "
                f"{escape(str(Path(out) / 'frames'))}")
