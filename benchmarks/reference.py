"""Plain-PyTorch GPT-style decoder used only as a benchmark reference.

It mirrors the shape and parameter count of the library's default decoder,
``TransformerWrapper(num_tokens=V, max_seq_len=N, attn_layers=Decoder(dim=D,
depth=L, heads=H))``:

* token ``nn.Embedding(V, D)`` plus learned absolute positions ``nn.Embedding(N, D)``
* L pre-norm blocks: ``x = x + attn(LayerNorm(x))`` then ``x = x + ff(LayerNorm(x))``
* attention: q ``Linear(D, H*64)``, fused kv ``Linear(D, 2*H*64)``, out
  ``Linear(H*64, D)``, all without bias, causal ``F.scaled_dot_product_attention``
* feedforward ``Linear(D, 4D) -> GELU -> Linear(4D, D)`` with biases
* final ``LayerNorm`` and bias-free logits ``Linear(D, V)``

``generate`` supports a preallocated KV cache (``cache_kv=True``) and a plain
loop that re-runs the whole sequence each step (``cache_kv=False``).
"""

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    def __init__(self, dim, heads, dim_head=64):
        super().__init__()
        self.heads, self.dim_head = heads, dim_head
        inner = heads * dim_head
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, x, cache=None, start=0):
        """``cache`` is a dict holding this layer's preallocated k/v buffers."""
        b, n, _ = x.shape
        h, d = self.heads, self.dim_head
        q = self.to_q(x).view(b, n, h, d).transpose(1, 2)
        k, v = self.to_kv(x).view(b, n, 2, h, d).permute(2, 0, 3, 1, 4)

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
        out = F.scaled_dot_product_attention(q, k, v, is_causal=n > 1)
        return self.to_out(out.transpose(1, 2).reshape(b, n, h * d))


class FeedForward(nn.Sequential):
    def __init__(self, dim, mult=4):
        super().__init__(nn.Linear(dim, dim * mult), nn.GELU(), nn.Linear(dim * mult, dim))


class Block(nn.Module):
    def __init__(self, dim, heads, dim_head=64):
        super().__init__()
        self.attn_norm = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dim_head)
        self.ff_norm = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x, cache=None, start=0):
        x = x + self.attn(self.attn_norm(x), cache, start)
        return x + self.ff(self.ff_norm(x))


class ReferenceGPT(nn.Module):
    def __init__(self, num_tokens, max_seq_len, dim, depth, heads, dim_head=64):
        super().__init__()
        self.max_seq_len = max_seq_len
        self.token_emb = nn.Embedding(num_tokens, dim)
        self.pos_emb = nn.Embedding(max_seq_len, dim)
        self.blocks = nn.ModuleList(Block(dim, heads, dim_head) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.to_logits = nn.Linear(dim, num_tokens, bias=False)

    def forward(self, tokens, caches=None, start=0):
        """tokens: (b, n) int64 -> logits (b, n, num_tokens)."""
        n = tokens.shape[1]
        pos = torch.arange(start, start + n, device=tokens.device)
        x = self.token_emb(tokens) + self.pos_emb(pos)
        for i, block in enumerate(self.blocks):
            x = block(x, None if caches is None else caches[i], start)
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


def expected_num_params(num_tokens, max_seq_len, dim, depth, heads, dim_head=64):
    """Closed-form parameter count of the architecture described above."""
    inner = heads * dim_head
    attn = dim * inner * 4  # q, k, v, out
    ff = dim * 4 * dim * 2 + 4 * dim + dim
    norms = 2 * 2 * dim
    return num_tokens * dim * 2 + max_seq_len * dim + depth * (attn + ff + norms) + 2 * dim


if __name__ == "__main__":  # quick self-check: python benchmarks/reference.py
    torch.manual_seed(0)
    cfg = dict(num_tokens=256, max_seq_len=64, dim=128, depth=2, heads=4)
    model = ReferenceGPT(**cfg).eval()
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == expected_num_params(**cfg), n_params

    x = torch.randint(0, 256, (2, 32))
    with torch.no_grad():
        logits = model(x)
        changed = x.clone()
        changed[:, 20:] = (changed[:, 20:] + 1) % 256
        assert logits.shape == (2, 32, 256)
        assert torch.allclose(model(changed)[:, :20], logits[:, :20], atol=1e-5), "not causal"

    prompt = x[:, :8]
    cached = model.generate(prompt, 40, cache_kv=True)
    uncached = model.generate(prompt, 40, cache_kv=False)
    assert cached.shape == (2, 40) and torch.equal(cached, uncached), "cache mismatch"
    sampled = model.generate(prompt, 40, temperature=1.0)
    assert sampled.shape == (2, 40)
    print(f"reference ok: {n_params:,} params, cached == uncached greedy generation")
