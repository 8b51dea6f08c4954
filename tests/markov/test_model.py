"""Both transformer blocks: shapes, causality, and the authors' block's unusual structure."""

import pytest
import torch

from simnpo.markov.model import MarkovGPT, ModelConfig


@pytest.mark.parametrize("arch", ["authors", "standard"])
def test_logits_shape_and_causality(arch):
    torch.manual_seed(0)
    model = MarkovGPT(ModelConfig(arch=arch, n_layer=2, d_model=32, n_head=4, d_mlp=32), vocab_size=10, max_len=12)
    x = torch.randint(0, 10, (3, 12))
    logits = model(x)
    assert logits.shape == (3, 12, 10)
    y = x.clone()
    y[:, 7:] = (y[:, 7:] + 1) % 10  # changing the future must not change the past
    assert torch.allclose(model(y)[:, :7], logits[:, :7], atol=1e-6)
    assert not torch.allclose(model(y)[:, 7:], logits[:, 7:])


def test_authors_block_has_one_head_no_output_projection_and_relu():
    model = MarkovGPT(ModelConfig(arch="authors"), 10, 20)
    block = model.blocks[0]
    assert block.attn.n_head == 1 and isinstance(block.attn.proj, torch.nn.Identity)
    assert isinstance(block.mlp[1], torch.nn.ReLU) and block.mlp[0].out_features == 128
    assert len(model.blocks) == 4 and model.tok.embedding_dim == 128


def test_authors_block_has_no_qkv_biases_and_small_position_embeddings():
    torch.manual_seed(0)
    authors, standard = MarkovGPT(ModelConfig(arch="authors"), 10, 20), MarkovGPT(ModelConfig(arch="standard"), 10, 20)
    assert authors.blocks[0].attn.qkv.bias is None and standard.blocks[0].attn.qkv.bias is not None
    # N(0, 0.02) for the authors' positions (2,560 draws: the std is within a few % of 0.02); PyTorch's N(0, 1) else
    assert authors.pos.weight.std().item() == pytest.approx(0.02, rel=0.1)
    assert standard.pos.weight.std().item() == pytest.approx(1.0, rel=0.1)
    assert authors.tok.weight.std().item() == pytest.approx(1.0, rel=0.1)  # token embeddings keep the default


def test_bad_model_configs():
    with pytest.raises(ValueError, match="unknown architecture"):
        ModelConfig(arch="mamba")
    with pytest.raises(ValueError, match="multiple of n_head"):
        ModelConfig(arch="standard", d_model=30, n_head=4)
