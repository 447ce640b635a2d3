"""Self-supervised domain pretraining (``agcurate pretrain``): SimCLR or DINO on unlabeled items.

The pieces are lightly's losses, heads and view transforms around an agcurate encoder backbone;
the result is a backbone-only checkpoint that ``--model file:model.pt`` loads. Importing this
package is cheap; torch and lightly load when training starts.
"""

from __future__ import annotations

__all__ = ["PretrainConfig", "PretrainResult", "export_checkpoint", "pretrain"]


def __getattr__(name: str):
    if name in __all__:
        from . import train

        return getattr(train, name)
    raise AttributeError(f"module 'agcurate.pretrain' has no attribute {name!r}")
