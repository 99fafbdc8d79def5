"""``from_pretrained`` on a command-line run folder (and on one of its checkpoints)."""

from __future__ import annotations

import json

import pytest
import torch

from x_transformers import AutoregressiveWrapper, Decoder, TransformerWrapper
from x_transformers.cli.checkpoint import find_checkpoint, load_model_state, read_manifest
from x_transformers.cli.config import build_model, config_from_dict
from x_transformers.cli.main import main
from x_transformers.hub import ConfigError, WeightsError

CONFIG = """
[wrapper]
num_tokens = 256
max_seq_len = 16

[attn_layers]
type = "Decoder"
dim = 16
depth = 1
heads = 2
rotary_pos_emb = true

[autoregressive]

[train]
steps = 4
batch_size = 2
eval_every = 4
eval_batches = 1
checkpoint_every = 2
log_every = 2
sample_length = 4
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    (folder / "run.toml").write_text(CONFIG)
    (folder / "text.txt").write_text("the cat sat on the mat. " * 200)
    args = ["train", "--config", folder / "run.toml", "--data", folder / "text.txt"]
    assert main([str(a) for a in [*args, "--out", folder / "run"]]) == 0
    return folder / "run"


def reference(run):
    """The model the command line itself restores from the newest checkpoint."""
    checkpoint = find_checkpoint(run)
    manifest = read_manifest(checkpoint)
    net, _ = build_model(config_from_dict(manifest["config"], "manifest"))
    net.load_state_dict(load_model_state(checkpoint, manifest))
    return net.eval(), checkpoint


def test_a_run_folder_loads_its_newest_checkpoint(run):
    net, checkpoint = reference(run)
    assert checkpoint.name == "step-00000004"
    loaded = TransformerWrapper.from_pretrained(run)
    x = torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(0))
    assert [n for n, _ in loaded.named_parameters()] == [n for n, _ in net.named_parameters()]
    assert torch.equal(loaded(x), net(x))
    # a checkpoint folder, the autoregressive wrapper, and a save_pretrained copy
    assert torch.equal(TransformerWrapper.from_pretrained(checkpoint)(x), net(x))
    wrapper = AutoregressiveWrapper.from_pretrained(run)
    assert torch.equal(wrapper.net(x), net(x))


def test_a_run_saved_again_reads_like_the_python_call(run, tmp_path):
    TransformerWrapper.from_pretrained(run).save_pretrained(tmp_path)
    document = json.loads((tmp_path / "config.json").read_text())
    assert document["kwargs"]["attn_layers"] == {
        "class": "Decoder",
        "kwargs": {"dim": 16, "depth": 1, "heads": 2, "rotary_pos_emb": True},
    }


def test_a_damaged_or_foreign_run_is_refused(run, tmp_path):
    with pytest.raises(ConfigError, match="holds a TransformerWrapper .* not a Decoder"):
        Decoder.from_pretrained(run)
    copy = tmp_path / "run"
    copy.mkdir()
    checkpoint = find_checkpoint(run)
    target = copy / "checkpoints" / checkpoint.name
    target.mkdir(parents=True)
    for file in checkpoint.iterdir():
        (target / file.name).write_bytes(file.read_bytes())
    weights = target / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(WeightsError, match=r"model\.safetensors is truncated or corrupt"):
        TransformerWrapper.from_pretrained(copy)
