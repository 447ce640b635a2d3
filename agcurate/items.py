"""What an item is: one image, one video frame or one tile of a raster, with a stable key."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Item:
    """One thing that gets one embedding.

    ``path`` is the absolute file (or band folder) it comes from. ``frame``/``time_s`` locate a video
    frame, ``window`` (x, y, w, h) a tile. ``variant`` holds source options that change the pixels
    (bands, stretch...), so that they become part of the cache key.
    """

    path: str
    kind: str = "image"
    frame: int = -1
    time_s: float = -1.0
    window: tuple[int, int, int, int] | None = None
    variant: str = ""
    fingerprint: str = ""
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> str:
        """Unique, stable identity of the item inside the store (path + where in the file)."""
        key = self.path
        if self.frame >= 0:
            key += f"#frame={self.frame}"
        if self.window is not None:
            key += "#window={},{},{},{}".format(*self.window)
        if self.variant:
            key += f"#{self.variant}"
        return key

    @property
    def group(self) -> str:
        """Items of one group are decoded together (all frames of a video, all tiles of a raster)."""
        return f"{self.path}#{self.variant}" if self.variant else self.path

    @property
    def window_str(self) -> str:
        """``x,y,w,h`` or an empty string, as written into CSV outputs."""
        return "" if self.window is None else window_text(*self.window)


def window_text(x: int, y: int, w: int, h: int) -> str:
    """``x,y,w,h`` of a tile as written into CSV outputs, or an empty string (x < 0: no tile)."""
    return "" if int(x) < 0 else f"{int(x)},{int(y)},{int(w)},{int(h)}"


def file_fingerprint(path: str | os.PathLike) -> str:
    """Cheap change detector: size and modification time in nanoseconds."""
    st = os.stat(path)
    return f"{st.st_size}-{st.st_mtime_ns}"


def display_path(path: str, base: str | None = None) -> str:
    """A path relative to ``base`` when it lies below it, else the path itself."""
    if base:
        try:
            return str(Path(path).relative_to(base))
        except ValueError:
            pass
    return path

def items_from_frame(frame: "pd.DataFrame") -> list[Item]:  # noqa: F821
    """``Item`` objects for the rows of an items table (operations use it to load pixels again)."""
    out = []
    for r in frame.itertuples(index=False):
        window = None if int(r.x) < 0 else (int(r.x), int(r.y), int(r.w), int(r.h))
        out.append(Item(path=r.path, kind=r.kind, frame=int(r.frame), time_s=float(r.time_s),
                        window=window, variant=r.variant, fingerprint=r.fingerprint,
                        meta=json.loads(r.meta) if r.meta else {}))
    return out
