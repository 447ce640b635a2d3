"""What an encoder declares: a name, how to build it, its input, its output and a stable id."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE_POLICY = "squash-area"  # whole image resized to size x size (nothing cropped away)


@dataclass
class Encoder:
    """A registered encoder.

    ``build()`` returns a torch module mapping a normalised NCHW float batch to pooled backbone
    features of shape (N, dim), classifier removed; agcurate L2-normalises them afterwards.
    """

    name: str
    dim: int
    input_size: int
    mean: tuple[float, ...]  # one per input channel (0-1 scale)
    std: tuple[float, ...]
    weights_id: str
    build: Callable[[], "torch.nn.Module"] = field(repr=False)  # noqa: F821
    description: str = ""
    offline: bool = True
    bands: tuple[str, ...] | None = None  # raster bands it takes (a C-band stem); None: an RGB picture
    stretch: str | None = None            # the 8-bit clip range ("LO,HI") of those bands, when fixed

    @property
    def channels(self) -> int:
        """Input channels: 3 for a picture, one per band for a band encoder."""
        return len(self.mean)

    @property
    def id(self) -> str:
        """Stable identity: model + weights + preprocessing. Part of every cache key."""
        mean = ",".join(f"{m:.4f}" for m in self.mean)
        std = ",".join(f"{s:.4f}" for s in self.std)
        bands = f"|bands={','.join(self.bands)}" if self.bands else ""  # pictures keep their old ids
        return (f"{self.name}|weights={self.weights_id}|size={self.input_size}"
                f"|mean={mean}|std={std}|resize={RESIZE_POLICY}{bands}")

    @property
    def slug(self) -> str:
        """A folder name for this encoder's part of the store: readable prefix + hash of the id."""
        readable = re.sub(r"[^A-Za-z0-9._-]+", "_", self.name.split("/")[-1])[:40]
        digest = hashlib.sha256(self.id.encode()).hexdigest()[:12]
        return f"{readable}-{self.input_size}-{digest}"


@lru_cache(maxsize=64)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def file_digest(path: str | os.PathLike) -> str:
    """Content hash (16 hex) of a weights file, cached per size and modification time."""
    st = os.stat(path)
    return _file_digest(os.fspath(path), st.st_size, st.st_mtime_ns)
