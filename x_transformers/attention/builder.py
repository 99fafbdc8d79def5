"""Builders: attention options -> the declared stages and the kernel of one attention block.

Every variant that transforms attention is one line of :func:`build_stages`; the fused / explicit
choice follows from the stages' declarations (:mod:`.stages`), never from a list of names here.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..options import AttentionOptions
from .attend import Attend
from .entmax import Entmax15
from .head_norms import QueryKeyRMSNorm, ValueRMSNorm
from .heads import HeadShapes
from .l2_distance import L2DistanceScores
from .laplace import LaplaceAttention
from .output_gates import HeadGate, HeadScale, ValueGate
from .sigmoid import SigmoidAttention
from .softclamp import SoftclampScores
from .sparse_topk import SparseTopK
from .stages import KERNEL_POINTS, AttentionStage, StageList
from .talking_heads import HeadMixing
from .zero_kv import ZeroKeyValue

# keywords that only mean something together with the keyword that turns their feature on
_DEPENDENT_OPTIONS = {
    "logit_softclamp_value": "softclamp_logits",
    "sigmoid_bias": "sigmoid",
}


def build_stages(
    options: AttentionOptions, shapes: HeadShapes, dim: int, prefix: str
) -> list[AttentionStage]:
    """The stages the options ask for, in pipeline order within each point."""
    check_stage_options(options, prefix)
    o, p = options, prefix
    candidates = [
        o.qk_rmsnorm and QueryKeyRMSNorm(shapes.dim_qk, p + "qk_rmsnorm"),
        o.value_rmsnorm and ValueRMSNorm(shapes.dim_v, p + "value_rmsnorm"),
        o.add_zero_kv and ZeroKeyValue(p + "add_zero_kv"),
        o.l2_distance and L2DistanceScores(p + "l2_distance"),
        o.softclamp_logits and SoftclampScores(o.logit_softclamp_value, p + "softclamp_logits"),
        o.talking_heads and HeadMixing(shapes.heads, "scores", p + "talking_heads"),
        o.sparse_topk is not None and SparseTopK(o.sparse_topk, p + "sparse_topk"),
        o.use_entmax15 and Entmax15(p + "use_entmax15"),
        o.sigmoid and SigmoidAttention(o.sigmoid_bias, p + "sigmoid"),
        o.laplace and LaplaceAttention(p + "laplace"),
        o.talking_heads and HeadMixing(shapes.heads, "weights", p + "talking_heads"),
        o.gate_values and ValueGate(dim, shapes.heads, shapes.dim_v, p + "gate_values"),
        o.gate_value_heads and HeadGate(dim, shapes.heads, p + "gate_value_heads"),
        o.head_scale and HeadScale(shapes.heads, p + "head_scale"),
    ]
    return [stage for stage in candidates if stage]


def check_stage_options(options: AttentionOptions, prefix: str) -> None:
    defaults = AttentionOptions()
    for name, switch in _DEPENDENT_OPTIONS.items():
        if getattr(options, name) != getattr(defaults, name) and not getattr(options, switch):
            raise ValueError(
                f"'{prefix}{name}={getattr(options, name)!r}' has no effect without "
                f"'{prefix}{switch}=True'"
            )
    if options.sparse_topk is not None and options.sparse_topk < 1:
        raise ValueError(f"'{prefix}sparse_topk' must be >= 1, got {options.sparse_topk}")
    for name in ("dropout", "sublayer_dropout"):
        value = getattr(options, name)
        if not 0.0 <= value < 1.0:
            raise ValueError(f"'{prefix}{name}' must lie in [0, 1), got {value}")


def build_attend(
    options: AttentionOptions, stages: StageList, *, causal: bool, prefix: str
) -> Attend:
    """The kernel, running the stages at the kernel's points."""
    return Attend(
        causal=causal,
        dropout=options.dropout,
        # qk-norm puts its scale on the queries, so the kernel must not scale again
        scale=1.0 if options.qk_norm else options.scale,  # 'attn_scale'
        flash=options.flash,
        flash_keyword=f"{prefix}flash",
        stages=stages.only(KERNEL_POINTS),
    )


def merge_stages(*groups: Sequence[AttentionStage]) -> StageList:
    """One :class:`StageList` of several groups, in order (stack-level stages first)."""
    return StageList(stage for group in groups for stage in group)
