"""The ``frames.html`` contact sheet: each video's keyframes with timestamps and a shot timeline."""

from __future__ import annotations

import os
from pathlib import Path

from .html import format_time, render_page


def write_frames_html(result, out: str | os.PathLike) -> Path:
    """Render the contact sheet for a ``FramesResult`` next to its ``frames/`` folder."""
    out = Path(out)
    videos = []
    for v in result.videos:
        t = v.table
        dur = max(v.duration_s, float(t["time_s"].max()) + 1e-6, 1e-6)
        segs = []
        for seg_id, g in t.groupby("segment", sort=True):
            start = float(g["time_s"].min())
            segs.append({"id": int(seg_id), "start": start, "repeat": bool(g["is_repeat"].iloc[0]),
                         "shot": int(g["shot"].iloc[0]), "label": format_time(start)})
        for i, s in enumerate(segs):
            end = segs[i + 1]["start"] if i + 1 < len(segs) else dur
            s["width"] = round(100.0 * max(end - s["start"], 0.0) / dur, 3)
        frames = []
        for r in v.kept.itertuples(index=False):
            name = f"frame_{int(r.frame):06d}.jpg"
            rel = f"frames/{v.folder}/{name}" if v.folder else f"frames/{name}"
            frames.append({"src": rel, "frame": int(r.frame), "time": format_time(r.time_s),
                           "score": float(r.score), "segment": int(r.segment),
                           "reason": getattr(r, "reason", "") or "",
                           "overlap": float(getattr(r, "overlap", float("nan"))),
                           "exists": (out.parent / rel).is_file()})
        videos.append({"path": v.path, "name": Path(v.path).name, "duration": format_time(dur),
                       "sampled": v.n_sampled, "segments": len(segs),
                       "repeats": sum(s["repeat"] for s in segs), "frames": frames, "timeline": segs})
    return render_page(out, "frames.html.j2", videos=videos, n_kept=result.n_kept,
                       n_sampled=result.n_sampled, duration=format_time(result.duration_s))
