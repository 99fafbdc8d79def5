"""Plain-PyTorch GPT-style decoders used only as benchmark references.

``ReferenceGPT(V, N, D, L, H)`` mirrors the shape and parameter count of the library's default
decoder, ``TransformerWrapper(num_tokens=V, max_seq_len=N, attn_layers=Decoder(dim=D, depth=L,
heads=H))``:

* token ``nn.Embedding(V, D)`` plus learned absolute positions ``nn.Embedding(N, D)``
* L pre-norm blocks: ``x = x + attn(LayerNorm(x))`` then ``x = x + ff(LayerNorm(x))``
* attention: one fused q/k/v ``Linear(D, 3*H*64)`` and an out ``Linear(H*64, D)``, both without
  bias, causal ``F.scaled_dot_product_attention``
* feedforward ``Linear(D, 4D) -> GELU -> Linear(4D, D)`` with biases
* final ``LayerNorm`` and bias-free logits ``Linear(D, V)``

Feature flags (``FEATURE_SETS`` names the sets the benchmarks use; ``OURS`` in ``common.py`` gives
the library keywords of the same model):

* ``rotary``: rotary embedding on every query and key feature (head dim 64 rotated entirely,
  theta 10000, the "rotate half" / GPT-NeoX / Llama pairing, computed in float32), applied after
  the qk-norm; no learned absolute positions (ours: ``rotary_pos_emb=True`` with
  ``use_abs_pos_emb=False``). The cosines and sines are precomputed once for ``max_seq_len``.
* ``rmsnorm``: ``nn.RMSNorm(D, eps=1e-8)`` instead of every LayerNorm (ours: ``use_rmsnorm=True``,
  ``x * rsqrt(mean(x^2) + 1e-8) * g``).
* ``swiglu``: ``Linear(D, 2*4D) -> value * silu(gate) -> Linear(4D, D)``, biases on both
  (ours: ``ff_glu=True, ff_swish=True``; the value is the first half of the projection).
* ``qk_norm``: the library's ``attn_qk_norm=True`` variant ("Query-Key Normalization for
  Transformers", 2010.04245): queries and keys l2-normalised over the head dimension, the queries
  multiplied by one learned scalar per layer (initialised at 10), attention with scale 1. (Not the
  per-head RMSNorm with a per-feature gain of ViT-22B / OLMo 2 / Qwen 3: that is the library's
  ``attn_qk_rmsnorm``.)

``FEATURE_SETS['modern']`` is all four. ``generate`` supports a preallocated KV cache
(``cache_kv=True``) and a plain loop that re-runs the whole sequence each step
(``cache_kv=False``).
"""

import torch
import torch.nn.functional as F
from torch import nn

FEATURE_SETS = {
    "off": {},
    "rotary": {"rotary": True},
    "modern": {"rotary": True, "rmsnorm": True, "swiglu": True, "qk_norm": True},
}
ROTARY_THETA = 10000.0
QK_NORM_SCALE = 10.0


def rotary_tables(max_seq_len, dim_head):
    """(N, d) cosines and sines of the angles ``p * theta^(-2k / d)``, repeated for both halves."""
    frequencies = ROTARY_THETA ** -(torch.arange(0, dim_head, 2, dtype=torch.float32) / dim_head)
    angles = torch.arange(max_seq_len, dtype=torch.float32)[:, None] * frequencies
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos(), angles.sin()


def rotate(x, cos, sin):
    """x (b, h, n, d) rotated by cos/sin (n, d) in float32; the result has x's dtype."""
    x32 = x.float()
    x1, x2 = x32.chunk(2, dim=-1)
    return (x32 * cos + torch.cat((-x2, x1), dim=-1) * sin).to(x.dtype)


class QKNorm(nn.Module):
    """l2-normalised queries and keys; the queries times a learned scalar."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(QK_NORM_SCALE))

    def forward(self, q, k):
        return F.normalize(q, dim=-1) * self.scale, F.normalize(k, dim=-1)


class Attention(nn.Module):
    def __init__(self, dim, heads, dim_head=64, qk_norm=False):
        super().__init__()
        self.heads, self.dim_head = heads, dim_head
        inner = heads * dim_head
        self.to_qkv = nn.Linear(dim, 3 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)
        self.qk_norm = QKNorm() if qk_norm else None

    def forward(self, x, rotary=None, cache=None, start=0):
        """``rotary``: (cos, sin) at this call's positions; ``cache``: this layer's k/v buffers."""
        b, n, _ = x.shape
        h, d = self.heads, self.dim_head
        q, k, v = self.to_qkv(x).view(b, n, 3, h, d).permute(2, 0, 3, 1, 4)
        if self.qk_norm is not None:
            q, k = self.qk_norm(q, k)
        if rotary is not None:
            q, k = rotate(q, *rotary), rotate(k, *rotary)

        if cache is not None:
            if "k" not in cache:  # allocate lazily so the dtype follows autocast
                shape = (b, h, cache["max_len"], d)
                cache["k"] = k.new_empty(shape)
                cache["v"] = v.new_empty(shape)
            cache["k"][:, :, start : start + n] = k
            cache["v"][:, :, start : start + n] = v
            k = cache["k"][:, :, : start + n]
            v = cache["v"][:, :, : start + n]

        # SDPA's is_causal aligns the mask top-left, so it is only right when
        # queries and keys start at the same position (training / prefill).
        # A single new query may attend to every cached key.
        assert n == 1 or start == 0, "multi-token steps only supported from position 0"
        scale = None if self.qk_norm is None else 1.0
        out = F.scaled_dot_product_attention(q, k, v, is_causal=n > 1, scale=scale)
        return self.to_out(out.transpose(1, 2).reshape(b, n, h * d))


class FeedForward(nn.Sequential):
    def __init__(self, dim, mult=4):
        super().__init__(nn.Linear(dim, dim * mult), nn.GELU(), nn.Linear(dim * mult, dim))


class SwiGLU(nn.Module):
    def __init__(self, dim, mult=4):
        super().__init__()
        self.proj_in = nn.Linear(dim, 2 * dim * mult)
        self.proj_out = nn.Linear(dim * mult, dim)

    def forward(self, x):
        value, gate = self.proj_in(x).chunk(2, dim=-1)
        return self.proj_out(value * F.silu(gate))


def norm(dim, rmsnorm):
    return nn.RMSNorm(dim, eps=1e-8) if rmsnorm else nn.LayerNorm(dim)


class Block(nn.Module):
    def __init__(self, dim, heads, dim_head=64, rmsnorm=False, swiglu=False, qk_norm=False):
        super().__init__()
        self.attn_norm = norm(dim, rmsnorm)
        self.attn = Attention(dim, heads, dim_head, qk_norm)
        self.ff_norm = norm(dim, rmsnorm)
        self.ff = SwiGLU(dim) if swiglu else FeedForward(dim)

    def forward(self, x, rotary=None, cache=None, start=0):
        x = x + self.attn(self.attn_norm(x), rotary, cache, start)
        return x + self.ff(self.ff_norm(x))


class ReferenceGPT(nn.Module):
    def __init__(
        self,
        num_tokens,
        max_seq_len,
        dim,
        depth,
        heads,
        dim_head=64,
        *,
        rotary=False,
        rmsnorm=False,
        swiglu=False,
        qk_norm=False,
    ):
        super().__init__()
        self.max_seq_len = max_seq_len
        self.token_emb = nn.Embedding(num_tokens, dim)
        self.pos_emb = None if rotary else nn.Embedding(max_seq_len, dim)
        if rotary:
            cos, sin = rotary_tables(max_seq_len, dim_head)
            self.register_buffer("rotary_cos", cos, persistent=False)
            self.register_buffer("rotary_sin", sin, persistent=False)
        block = dict(rmsnorm=rmsnorm, swiglu=swiglu, qk_norm=qk_norm)
        self.blocks = nn.ModuleList(Block(dim, heads, dim_head, **block) for _ in range(depth))
        self.norm = norm(dim, rmsnorm)
        self.to_logits = nn.Linear(dim, num_tokens, bias=False)

    def forward(self, tokens, caches=None, start=0):
        """tokens: (b, n) int64 -> logits (b, n, num_tokens)."""
        n = tokens.shape[1]
        x = self.token_emb(tokens)
        rotary = None
        if self.pos_emb is not None:
            x = x + self.pos_emb(torch.arange(start, start + n, device=tokens.device))
        else:
            rotary = self.rotary_cos[start : start + n], self.rotary_sin[start : start + n]
        for i, block in enumerate(self.blocks):
            x = block(x, rotary, None if caches is None else caches[i], start)
        return self.to_logits(self.norm(x))

    @staticmethod
    def _sample(logits, temperature):
        if temperature == 0.0:
            return logits.argmax(dim=-1, keepdim=True)
        probs = F.softmax(logits / temperature, dim=-1)
        return torch.multinomial(probs, 1)

    @torch.no_grad()
    def generate(self, prompt, seq_len, temperature=0.0, cache_kv=True):
        """Return only the ``seq_len`` new tokens, shape (b, seq_len)."""
        out = prompt
        if cache_kv:
            assert prompt.shape[1] + seq_len - 1 <= self.max_seq_len, "cache has a fixed window"
            caches = [{"max_len": self.max_seq_len} for _ in self.blocks]
        for i in range(seq_len):
            if not cache_kv:
                logits = self(out[:, -self.max_seq_len :])
            elif i == 0:
                logits = self(prompt, caches, start=0)  # prefill the cache
            else:
                logits = self(out[:, -1:], caches, start=out.shape[1] - 1)
            out = torch.cat((out, self._sample(logits[:, -1], temperature)), dim=1)
        return out[:, prompt.shape[1] :]


def expected_num_params(
    num_tokens,
    max_seq_len,
    dim,
    depth,
    heads,
    dim_head=64,
    *,
    rotary=False,
    rmsnorm=False,
    swiglu=False,
    qk_norm=False,
):
    """Closed-form parameter count of the architecture described above."""
    inner = heads * dim_head
    attn = dim * inner * 4 + (1 if qk_norm else 0)  # q, k, v, out (+ the qk-norm scale)
    hidden = 4 * dim
    if swiglu:
        ff = dim * 2 * hidden + 2 * hidden + hidden * dim + dim
    else:
        ff = dim * hidden + hidden + hidden * dim + dim
    norm_params = dim if rmsnorm else 2 * dim
    positions = 0 if rotary else max_seq_len * dim
    return num_tokens * dim * 2 + positions + depth * (attn + ff + 2 * norm_params) + norm_params


def self_check():
    """Causality, KV cache == recomputation, and the closed-form parameter count, for every
    feature set; the library's model of the same set has the same parameter count."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the x_transformers checkout
    from common import build_ours, copy_weights

    shape = dict(num_tokens=256, max_seq_len=64, dim=128, depth=2, heads=4)
    for name, features in FEATURE_SETS.items():
        torch.manual_seed(0)
        model = ReferenceGPT(**shape, **features).eval()
        n_params = sum(p.numel() for p in model.parameters())
        assert n_params == expected_num_params(**shape, **features), (name, n_params)
        ours = build_ours(features=name, **shape)
        ours_params = sum(p.numel() for p in ours.parameters())
        assert ours_params == n_params, f"{name}: ours {ours_params:,} != reference {n_params:,}"

        x = torch.randint(0, 256, (2, 32))
        # the same function: ours' weights copied into the reference give the same logits
        ours.eval()
        same_weights = ReferenceGPT(**shape, **features).eval()
        copy_weights(ours, same_weights)
        with torch.no_grad():
            difference = (ours(x) - same_weights(x)).abs().max().item()
        assert difference < 1e-4, f"{name}: ours and the reference differ by {difference}"

        with torch.no_grad():
            logits = model(x)
            changed = x.clone()
            changed[:, 20:] = (changed[:, 20:] + 1) % 256
            assert logits.shape == (2, 32, 256)
            same = torch.allclose(model(changed)[:, :20], logits[:, :20], atol=1e-5)
            assert same, f"{name}: not causal"

        prompt = x[:, :8]
        cached = model.generate(prompt, 40, cache_kv=True)
        uncached = model.generate(prompt, 40, cache_kv=False)
        assert cached.shape == (2, 40) and torch.equal(cached, uncached), f"{name}: cache"
        sampled = model.generate(prompt, 40, temperature=1.0)
        assert sampled.shape == (2, 40)
        print(
            f"reference {name:>6} ok: {n_params:,} params (= ours), same logits as ours on the "
            f"same weights (max diff {difference:.1e}), cached == uncached greedy"
        )


if __name__ == "__main__":  # quick self-check: python benchmarks/reference.py
    self_check()
