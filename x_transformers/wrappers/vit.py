"""``ViTransformerWrapper``: images as sequences of patches ("An Image is Worth 16x16 Words",
2010.11929), with the simplifications of "Better plain ViT baselines" (2205.01580): no class token,
mean pooling.

Shape letters: b batch, c channels, h/w patch grid, p patch size, n patches, d width.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn

from ..hub.mixin import PretrainedMixin
from ..layers import AttentionLayers
from ..options.vit import ViTOptions
from ..options.wrapper import check_size
from ..weight_layout import linear
from .heads import Pooler
from .stem import package_outputs
from .token import check_attn_layers


class ViTransformerWrapper(PretrainedMixin, nn.Module):
    """Patch embedding + learned positions + an ``Encoder`` + an optional classification head.

    Args:
        image_size: side of the (square) input images.
        patch_size: side of each square patch; must divide ``image_size``.
        attn_layers: a non-causal layer stack (``Encoder``).
        num_classes: size of the classification head; ``None`` returns embeddings only.
        channels: input channels.
        emb_dropout: dropout after the patch embedding.
        cls_token, pool, patch_norms, pooler: see :class:`x_transformers.options.vit.ViTOptions`
            (the original ViT: ``cls_token=True, pool='cls', patch_norms=False``).
    """

    def __init__(
        self,
        *,
        image_size: int,
        patch_size: int,
        attn_layers: AttentionLayers,
        num_classes: int | None = None,
        channels: int = 3,
        emb_dropout: float = 0.0,
        cls_token: bool = False,
        pool: str = "mean",
        patch_norms: bool = True,
        pooler: bool = False,
    ):
        super().__init__()
        check_attn_layers(attn_layers, "ViTransformerWrapper")
        if attn_layers.causal:
            raise ValueError("ViTransformerWrapper needs a non-causal stack (Encoder)")
        for name, value in (("image_size", image_size), ("patch_size", patch_size)):
            check_size(value, name)
        check_size(channels, "channels")
        if num_classes is not None:
            check_size(num_classes, "num_classes")
        if not 0.0 <= emb_dropout < 1.0:
            raise ValueError(f"'emb_dropout' must be in [0, 1), got {emb_dropout}")
        if image_size % patch_size != 0:
            raise ValueError(
                f"image_size={image_size} must be divisible by patch_size={patch_size}"
            )
        dim = attn_layers.dim
        self.image_size, self.patch_size, self.channels = image_size, patch_size, channels
        num_patches = (image_size // patch_size) ** 2
        patch_dim = channels * patch_size**2
        self.options = o = ViTOptions(cls_token, pool, patch_norms, pooler)
        norm_in, norm_out = (
            (nn.LayerNorm(patch_dim), nn.LayerNorm(dim)) if patch_norms else (None,) * 2
        )
        layers = [norm_in, linear(patch_dim, dim), norm_out]
        self.patch_to_embedding = nn.Sequential(*[layer for layer in layers if layer is not None])
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02) if o.cls_token else None
        self.pos_embedding = nn.Parameter(torch.randn(num_patches + o.cls_token, dim) * 0.02)
        self.pooler = Pooler(dim) if o.pooler else None
        self.emb_dropout = nn.Dropout(emb_dropout)
        self.attn_layers = attn_layers
        self.mlp_head = linear(dim, num_classes) if num_classes is not None else None

    def forward(
        self,
        img: Tensor,
        return_embeddings: bool = False,
        return_intermediates: bool = False,
        return_attn: bool = False,
    ):
        """img (b, c, image_size, image_size) -> logits (b, num_classes), or patch embeddings
        (b, n, d) with ``return_embeddings=True`` or when there is no head. Images must be
        floating point (e.g. uint8 pixels scaled to [0, 1] first): integer images raise
        ``TypeError`` rather than being converted with a guessed scale."""
        if not isinstance(img, torch.Tensor) or not img.is_floating_point():
            dtype = img.dtype if isinstance(img, torch.Tensor) else type(img).__name__
            raise TypeError(
                f"'img' must be a floating-point image tensor, got {dtype}; convert integer "
                "pixels first, e.g. img.float() / 255"
            )
        expected = (self.channels, self.image_size, self.image_size)
        if img.ndim != 4 or tuple(img.shape[1:]) != expected:
            raise ValueError(
                f"images must have shape (batch, {', '.join(map(str, expected))}), "
                f"got {tuple(img.shape)}"
            )
        p = self.patch_size
        patches = rearrange(img, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=p, p2=p)
        x = self.patch_to_embedding(patches)
        if self.cls_token is not None:
            x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)  # (b, 1 + n, d)
        x = self.emb_dropout(x + self.pos_embedding)
        x, intermediates = self.attn_layers(x, return_hiddens=True, return_attn=return_attn)
        if return_embeddings or self.mlp_head is None:
            out = x
        else:
            out = self.mlp_head(x[:, 0] if self.options.pool == "cls" else x.mean(dim=1))
        return package_outputs(out, intermediates, return_intermediates, return_attn)

    def pool(self, hidden: Tensor) -> Tensor:
        """The pooler (``pooler=True``) on final hidden states (b, n, d) -> (b, d)."""
        if self.pooler is None:
            raise ValueError("this model has no pooler; build it with pooler=True")
        return self.pooler(hidden)
