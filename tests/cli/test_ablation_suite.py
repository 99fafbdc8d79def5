"""Suite files: the shipped suites load and build, and a bad suite file gets the same clear,
located errors as a bad train config (file, variant, section, key, "did you mean")."""

from __future__ import annotations

import pytest

from tests.cli.conftest import TINY_CONFIG
from x_transformers.cli.ablation.suite import load_suite, suite_names
from x_transformers.cli.errors import ConfigError

VARIANTS = """
[variants.rotary]
wrapper.use_abs_pos_emb = false
attn_layers.rotary_pos_emb = true
"""

# one variant of the newer suite per attention keyword added after the default suite
NEWER_KEYWORDS = {"add_value_residual", "attn_softclamp_logits", "attn_sigmoid", "attn_laplace"}
NEWER_KEYWORDS |= {"attn_l2_distance", "attn_qk_rmsnorm", "attn_value_rmsnorm"}
NEWER_KEYWORDS |= {"attn_add_zero_kv", "attn_gate_value_heads"}


def write(tmp_path, text, name="mine.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def suite_error(path, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        load_suite(str(path), **kwargs)
    return str(info.value)


def changed(config_dict, base_dict):
    return {
        (section, key)
        for section, values in config_dict.items()
        for key, value in values.items()
        if base_dict.get(section, {}).get(key) != value
    }


def test_the_default_suite_has_every_listed_technique_once():
    suite = load_suite("default")
    assert suite.base_name == "base" and suite.settings.seeds == 3
    assert len(suite.variants) - 1 >= 15
    base = suite.base.to_dict()
    for name, config in suite.variants.items():
        if name != "base":
            assert changed(config.to_dict(), base), f"{name} is the base again"
            assert config.train == suite.base.train and config.data == suite.base.data
    assert suite.params["swiglu"] > suite.params["base"]  # GLU: a wider first projection


def test_the_extrapolation_suite_trains_short_and_evaluates_long():
    suite = load_suite("extrapolation")
    assert list(suite.variants) == ["none", "alibi", "xpos", "dynamic_bias", "t5_bias", "rotary"]
    assert suite.settings.extrapolation == (1, 2, 4)
    assert suite.base.seq_len * 4 <= suite.base.model["wrapper"]["max_seq_len"]
    assert suite.base.model["wrapper"]["use_abs_pos_emb"] is False


def test_shipped_suite_names():
    assert {"default", "extrapolation", "newer", "tiny"} <= set(suite_names())


@pytest.mark.parametrize("name", suite_names())
def test_every_shipped_suite_parses_and_every_variant_builds(name):
    suite = load_suite(name)  # resolves each variant and builds it on the meta device
    assert suite.base_name in suite.variants and len(suite.variants) >= 2
    assert all(suite.params[variant] > 0 for variant in suite.variants)


def test_the_newer_suite_shares_the_default_base_and_changes_one_attention_keyword():
    newer, default = load_suite("newer"), load_suite("default")
    assert newer.base.to_dict() == default.base.to_dict()  # its base runs are the default's
    assert newer.settings.seeds == default.settings.seeds
    assert newer.settings.evaluations == default.settings.evaluations
    base = newer.base.to_dict()
    keywords = set()
    for name, config in newer.variants.items():
        if name != "base":
            keys = changed(config.to_dict(), base)
            assert keys and {section for section, _ in keys} == {"attn_layers"}, name
            assert config.train == newer.base.train and config.data == newer.base.data
            keywords |= {key for _, key in keys}
    assert NEWER_KEYWORDS <= keywords


def test_a_user_suite_is_a_train_config_plus_variants(tmp_path):
    path = write(tmp_path, TINY_CONFIG + VARIANTS)
    suite = load_suite(str(path), ["attn_layers.heads=4"], steps=7, data="some.txt")
    assert suite.name == "mine" and list(suite.variants) == ["base", "rotary"]
    rotary = suite.variants["rotary"].model
    assert rotary["attn_layers"]["rotary_pos_emb"] is True and rotary["attn_layers"]["heads"] == 4
    assert rotary["wrapper"]["use_abs_pos_emb"] is False
    assert "use_abs_pos_emb" not in suite.base.model["wrapper"]
    assert suite.variants["rotary"].train.steps == 7 == suite.base.train.steps
    assert suite.base.data.path == "some.txt"
    assert suite.base.train.eval_every == 20  # the file's own eval_every is kept


def test_eval_every_follows_the_evaluations_setting(tmp_path):
    text = TINY_CONFIG.replace("eval_every = 20\n", "") + "[suite]\nevaluations = 4\n"
    suite = load_suite(str(write(tmp_path, text)), steps=10)
    assert suite.base.train.eval_every == 3


def test_unknown_keyword_in_a_variant_names_file_variant_key_and_suggestion(tmp_path):
    path = write(tmp_path, TINY_CONFIG + VARIANTS.replace("rotary_pos_emb", "rotary_pos_embb"))
    message = suite_error(path)
    assert f"{path} [variants.rotary]: [attn_layers] rotary_pos_embb" in message
    assert "did you mean 'rotary_pos_emb'" in message


def test_a_bad_value_in_a_variant_is_located(tmp_path):
    path = write(tmp_path, TINY_CONFIG + "[variants.deep]\nattn_layers.depth = 'two'\n")
    assert f"{path} [variants.deep]: [attn_layers] depth" in suite_error(path)
    path = write(tmp_path, TINY_CONFIG + "[variants.fast]\ntrain.lr = 'fast'\n")
    message = suite_error(path)
    assert f"{path} [variants.fast]: [train] lr" in message and "'fast'" in message


def test_an_error_in_the_base_names_the_file_and_key(tmp_path):
    path = write(tmp_path, TINY_CONFIG.replace("heads = 2", "heads = 2\nattn_dropoutt = 0.1"))
    message = suite_error(path)
    assert f"{path}: [attn_layers] attn_dropoutt" in message and "attn_dropout" in message


@pytest.mark.parametrize(
    "variant, expected",
    [
        ("[variants.x]\ntrain.steps = 5\n", "[variants.x]: [train] steps: a variant cannot"),
        ("[variants.x]\ntrain.seed = 5\n", "[variants.x]: [train] seed: a variant cannot"),
        ("[variants.x]\ndata.path = 'a.txt'\n", "[variants.x]: [data]: every variant trains"),
        ("[variants.x]\nrotary_pos_emb = true\n", "'rotary_pos_emb' is not a section"),
        ("[variants.x]\nattn_layer.heads = 4\n", "did you mean 'attn_layers'?"),
        ("[variants.base]\nattn_layers.heads = 4\n", "the base is already called 'base'"),
        ("[variants.'a b']\nattn_layers.heads = 4\n", "'a b' cannot name a run folder"),
        ("[variants.x]\nwrapper.max_seq_len = 16\n", "the variant trains on 16-byte windows"),
    ],
)
def test_variants_cannot_change_the_budget_or_the_data(tmp_path, variant, expected):
    path = write(tmp_path, TINY_CONFIG + variant)
    assert expected in suite_error(path)


@pytest.mark.parametrize(
    "suite, expected",
    [
        ("[suite]\nseed = 3\n", "[suite] seed: unknown key; did you mean 'seeds'?"),
        ("[suite]\nseeds = 'three'\n", "[suite] seeds: expected an integer"),
        ("[suite]\nseeds = 0\n", "[suite] seeds must be >= 1"),
        ("[suite]\nextrapolation = [1, 3, 4]\n", "every multiple must divide the largest"),
        ("[suite]\nextrapolation = [2]\n", "reaches 2 x 32 = 64 bytes"),
        ("[suite]\nbase_name = 'my base'\n", "cannot name a run folder"),
        ("[suite\n", "not valid TOML"),
    ],
)
def test_bad_suite_sections_are_reported(tmp_path, suite, expected):
    path = write(tmp_path, suite + TINY_CONFIG)
    message = suite_error(path)
    assert expected in message and str(path) in message


def test_unknown_suite_name_suggests_the_closest(cli):
    code, _, stderr = cli("ablate", "--suite", "defualt")
    assert code == 2
    assert "unknown suite 'defualt'; did you mean 'default'?" in stderr


def test_missing_suite_file(cli, tmp_path):
    code, _, stderr = cli("ablate", "--suite", tmp_path / "nope.toml")
    assert code == 2 and "does not exist" in stderr
