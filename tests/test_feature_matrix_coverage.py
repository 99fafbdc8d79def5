"""Every keyword of the options layer has at least one row in the feature matrix, so every
feature gets the property checks (causality, masks, gradients, cache, recurrence)."""

from __future__ import annotations

from tests.feature_matrix import CASES
from x_transformers.options.table import feature_rows

# keywords that the matrix's context-free token models cannot express, with where they are tested
COVERED_ELSEWHERE = {
    "cross_residual_attn": "needs cross-attention; tests/unit/test_attention_residual.py",
    # ViTransformerWrapper keywords: the matrix builds token models
    "cls_token": "ViT; tests/unit/test_family_options.py, tests/parity/test_vit.py",
    "pool": "ViT; tests/unit/test_family_options.py, tests/parity/test_vit.py",
    "patch_norms": "ViT; tests/unit/test_family_options.py, tests/parity/test_vit.py",
    # ContinuousTransformerWrapper keyword: the matrix builds token models
    "probabilistic": "continuous; tests/unit/test_wrappers_pooling.py",
}


def test_every_keyword_has_a_feature_matrix_row():
    used = set()
    for case in CASES:
        used |= set(case.layer_kwargs) | set(case.wrapper_kwargs)
    keywords = {keyword.split("`")[1] for keyword, *_ in feature_rows()}
    missing = sorted(keywords - used - set(COVERED_ELSEWHERE))
    assert not missing, f"keywords without a feature-matrix row: {missing}"
    assert set(COVERED_ELSEWHERE) <= keywords, "stale COVERED_ELSEWHERE entry"
