"""An encoder that sees its input turned by quarter turns: rotation-aware embeddings for dedup.

Wrapping instead of rotating files keeps the whole embed pipeline (workers, chunks, cache): the
turned embeddings live in the store under their own encoder id and are computed once. The turned
model runs on torch (ONNX export of the turn is not supported by every exporter version).
"""

from __future__ import annotations

from dataclasses import replace

from .base import Encoder


def rotated_encoder(encoder: Encoder, quarter_turns: int) -> Encoder:
    """``encoder`` applied to the image turned ``90 * quarter_turns`` degrees counter-clockwise."""
    k = quarter_turns % 4
    if k == 0:
        return encoder
    inner = encoder.build

    def build():
        import torch

        class Turned(torch.nn.Module):
            def __init__(self, model):
                super().__init__()
                self.model = model

            def forward(self, x):
                return self.model(torch.rot90(x, k, dims=(2, 3)))

        return Turned(inner())

    return replace(encoder, name=f"{encoder.name}@rot{90 * k}", build=build,
                   description=f"{encoder.description} (input turned {90 * k} degrees)")
