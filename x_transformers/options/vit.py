"""Options of ``ViTransformerWrapper`` beyond its sizes: the original ViT's class token and
pooling ("An Image is Worth 16x16 Words", 2010.11929) next to the simplified defaults of "Better
plain ViT baselines" (2205.01580: no class token, mean pooling, normed patch embeddings)."""

from __future__ import annotations

from dataclasses import dataclass

from .spec import option

POOLINGS = ("mean", "cls")


@dataclass(frozen=True)
class ViTOptions:
    # a learned token in front of the patches (with its own learned position)
    cls_token: bool = option(False, "learned class token before the patches", "2010.11929")
    # what the classification head reads: the mean of all positions, or the class token
    pool: str = option("mean", "pooling for the head: 'mean' or 'cls' (needs cls_token)")
    # LayerNorm on the flattened patches and on their embedding (plain ViT baselines)
    patch_norms: bool = option(True, "LayerNorms around the patch projection", "2205.01580")
    # dense + tanh on the first position (ViTModel's pooler): vit.pool(hidden)
    pooler: bool = option(False, "pooler: dense + tanh on the first position, vit.pool(hidden)")

    def __post_init__(self):
        if self.pool not in POOLINGS:
            raise ValueError(f"'pool' must be one of {', '.join(POOLINGS)}, got {self.pool!r}")
        if self.pool == "cls" and not self.cls_token:
            raise ValueError("'pool'='cls' needs 'cls_token'=True")
