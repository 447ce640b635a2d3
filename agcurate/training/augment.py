"""Views for self-supervised training, chosen for overhead and field imagery.

Every view is: random resized crop, horizontal and vertical flips and 90-degree rotations
(overhead imagery has no "up", so all eight orientations are equally likely), colour jitter,
occasional grey scale and Gaussian blur. RGB views are lightly's own view transforms (PIL in,
normalised tensor out). Input with another number of channels (multi-band rasters) gets the same
geometry from torchvision's tensor transforms and a band-aware jitter instead of the RGB-only
colour operations (hue and saturation mean nothing for a NIR band).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    """Strength of each augmentation (probabilities in 0-1); recorded in the training config."""

    crop_scale: tuple[float, float] = (0.2, 1.0)        # SimCLR views / DINO global views
    local_crop_scale: tuple[float, float] = (0.05, 0.4)  # DINO local views
    flip_prob: float = 0.5          # horizontal and vertical, each
    rot90_prob: float = 0.5         # with both flips: all 8 orientations
    jitter_prob: float = 0.8
    jitter_strength: float = 0.5    # colour is informative in crops and land cover: moderate
    gray_prob: float = 0.1
    blur_prob: float = 0.3
    blur_sigmas: tuple[float, float] = (0.1, 1.5)

    def to_dict(self) -> dict:
        return asdict(self)


class BandJitter:
    """Band-aware photometric jitter for C-channel float tensors in [0, 1].

    A shared gain (illumination) times a small per-band gain (sensor and atmosphere differences),
    and a per-band contrast change around the band's mean. Band ratios, and so spectral indices
    such as NDVI, move only a little, unlike with hue or saturation changes.
    """

    def __init__(self, brightness: float = 0.4, band_gain: float = 0.1, contrast: float = 0.4):
        self.brightness, self.band_gain, self.contrast = brightness, band_gain, contrast

    def __call__(self, x):
        import torch

        c = x.shape[0]
        shared = 1 + (torch.rand(1) * 2 - 1) * self.brightness
        per_band = 1 + (torch.rand(c, 1, 1) * 2 - 1) * self.band_gain
        contrast = 1 + (torch.rand(c, 1, 1) * 2 - 1) * self.contrast
        mean = x.mean(dim=(1, 2), keepdim=True)
        x = (x - mean) * contrast + mean
        return (x * shared * per_band).clamp(0.0, 1.0)

    def __repr__(self) -> str:
        return (f"BandJitter(brightness={self.brightness}, band_gain={self.band_gain}, "
                f"contrast={self.contrast})")


def _blur_kernel(size: int) -> int:
    k = max(3, int(size * 0.1))
    return k if k % 2 else k + 1


def view_transform(channels: int, size: int, scale: tuple[float, float], mean: Sequence[float],
                   std: Sequence[float], cfg: AugmentConfig, dino: bool = False):
    """One random view: PIL RGB image (3 channels) or float CHW tensor in [0, 1] -> normalised tensor."""
    import warnings

    warnings.filterwarnings("ignore", message=".*to_tensor.*deprecated", category=UserWarning)
    if channels == 3:
        from lightly.transforms.dino_transform import DINOViewTransform

        # DINOViewTransform is lightly's general view (crop scale as a range, solarisation off);
        # with crop_scale=(min, 1) it is the SimCLR view with our probabilities.
        return DINOViewTransform(
            crop_size=size, crop_scale=tuple(scale), hf_prob=cfg.flip_prob, vf_prob=cfg.flip_prob,
            rr_prob=cfg.rot90_prob, rr_degrees=None, cj_prob=cfg.jitter_prob,
            cj_strength=cfg.jitter_strength, cj_bright=0.8, cj_contrast=0.8, cj_sat=0.8,
            cj_hue=0.2 if not dino else 0.1, random_gray_scale=cfg.gray_prob,
            gaussian_blur=cfg.blur_prob, sigmas=tuple(cfg.blur_sigmas), solarization_prob=0.0,
            normalize={"mean": list(mean), "std": list(std)})
    from lightly.transforms.rotation import RandomRotate
    from torchvision.transforms import v2

    mean, std = band_stats(mean, std, channels)
    return v2.Compose([
        v2.RandomResizedCrop(size, scale=tuple(scale), antialias=True),
        v2.RandomHorizontalFlip(cfg.flip_prob),
        v2.RandomVerticalFlip(cfg.flip_prob),
        RandomRotate(prob=cfg.rot90_prob, angle=90),
        v2.RandomApply([BandJitter(0.8 * cfg.jitter_strength, 0.2 * cfg.jitter_strength,
                                   0.8 * cfg.jitter_strength)], p=cfg.jitter_prob),
        v2.RandomApply([v2.GaussianBlur(_blur_kernel(size), sigma=tuple(cfg.blur_sigmas))], p=cfg.blur_prob),
        v2.Normalize(mean=mean, std=std),
    ])


def band_stats(mean: Sequence[float], std: Sequence[float], channels: int) -> tuple[list[float], list[float]]:
    """Per-band mean/std: the encoder's own when it has one per band, else their average repeated."""
    mean, std = list(mean), list(std)
    if len(mean) == channels:
        return mean, std
    return [float(np.mean(mean))] * channels, [float(np.mean(std))] * channels


class Views:
    """Turns one image (or a positive pair of images) into the list of views a method trains on.

    View ``k`` is made from image ``k % len(images)``: with a pair, the two main views come one
    from each image (the second sensor acts as the augmentation), local views alternate.
    """

    def __init__(self, transforms: Sequence):
        self.transforms = list(transforms)

    def __call__(self, images: Sequence) -> list:
        return [t(images[k % len(images)]) for k, t in enumerate(self.transforms)]

    def __len__(self) -> int:
        return len(self.transforms)


def make_views(method: str, channels: int, size: int, mean: Sequence[float], std: Sequence[float],
               cfg: AugmentConfig | None = None, local_views: int = 2) -> Views:
    """Views for ``simclr`` (two of the same kind) or ``dino`` (two global + ``local_views`` small)."""
    cfg = cfg or AugmentConfig()
    if method == "simclr":
        t = view_transform(channels, size, cfg.crop_scale, mean, std, cfg)
        return Views([t, t])
    if method == "dino":
        g = view_transform(channels, size, cfg.crop_scale, mean, std, cfg, dino=True)
        local_size = max(16, (size * 3 // 7) // 8 * 8)
        loc = view_transform(channels, local_size, cfg.local_crop_scale, mean, std, cfg, dino=True)
        return Views([g, g] + [loc] * local_views)
    raise ValueError(f"unknown method {method!r}")


def to_view_input(pixels: np.ndarray):
    """Decoded pixels (H, W, C) -> what the view transforms take: PIL for RGB uint8, else a tensor."""
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.shape[2] == 3 and pixels.dtype == np.uint8:
        from PIL import Image

        return Image.fromarray(np.ascontiguousarray(pixels))
    import torch

    return torch.from_numpy(np.ascontiguousarray(scale_unit(pixels).transpose(2, 0, 1)))


def scale_unit(a: np.ndarray) -> np.ndarray:
    """Any-depth bands -> float32 in [0, 1] (uint8 / 255, uint16 / 65535, floats clipped)."""
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if a.dtype == np.uint16:
        return a.astype(np.float32) / 65535.0
    f = np.nan_to_num(a.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(f, 0.0, 1.0)
