"""The quantization attack's library: bitsandbytes quantizes what the module says (LLM.int8 row-wise absmax int8,
4-bit blocks of 64 rounded to the nearest level of NF4 / FP4), and a model's attack resumes from what it wrote."""

import pytest
import torch

pytest.importorskip("bitsandbytes")

from simnpo.llm.quantize import (  # noqa: E402
    FULL,
    QuantizeConfig,
    attack_model,
    changed_shares,
    load_quantized,
    quantized_codes,
)

# NF4's 16 levels as QLoRA (Dettmers et al. 2023, Appendix E) defines them: quantiles of N(0, 1) scaled to [-1, 1]
NF4 = [
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
    -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
]  # fmt: skip
# FP4 (1 sign, 2 exponent, 1 mantissa bits) as bitsandbytes scales it to [-1, 1]: the normals 1/6 … 1 and 1/192
FP4 = [s * v for s in (1, -1) for v in (0.0, 1 / 192, 1 / 6, 1 / 4, 1 / 3, 1 / 2, 2 / 3, 1.0)]


@pytest.fixture(scope="module")
def model_64(tokenizer):
    """A tiny Llama whose layers are 64 and 128 wide: bitsandbytes' 4-bit blocks of 64 lie within rows."""
    from simnpo.llm.models import TinyLlamaConfig, tiny_llama

    return tiny_llama(TinyLlamaConfig(hidden_size=64, intermediate_size=128, layers=2, heads=2), tokenizer, 0).eval()


@pytest.fixture(scope="module")
def saved_model(model_64, tokenizer, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-saved")
    model_64.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_int8_is_row_wise_absmax_of_the_float16_weights(saved_model, model_64):
    quantized = load_quantized(saved_model, 8, QuantizeConfig(), "cpu")
    weight = quantized.model.layers[0].mlp.up_proj.weight
    original = model_64.model.layers[0].mlp.up_proj.weight.detach().half().float()
    scale = original.abs().amax(dim=1)
    expected = torch.round(original * 127 / scale[:, None])
    assert weight.dtype == torch.int8 and torch.equal(weight.SCB.float(), scale)
    differ = (expected - weight.data.float()).abs()
    assert differ.max() <= 1 and (differ > 0).float().mean() < 1e-3  # only ties (x.5) may round the other way
    codes = quantized_codes(model_64.model.layers[0].mlp.up_proj.weight.detach(), 8, QuantizeConfig())
    assert (codes != weight.data.float()).float().mean() < 1e-3  # our buckets are bitsandbytes' int8 values


@pytest.mark.parametrize("kind, levels", [("nf4", NF4), ("fp4", FP4)])
def test_four_bit_rounds_each_block_of_64_to_the_nearest_level(saved_model, model_64, kind, levels):
    import bitsandbytes.functional as F

    quantized = load_quantized(saved_model, 4, QuantizeConfig(four_bit_type=kind), "cpu")
    weight = quantized.model.layers[1].self_attn.q_proj.weight
    dequantized = F.dequantize_4bit(weight.data, weight.quant_state).float()
    original = model_64.model.layers[1].self_attn.q_proj.weight.detach()
    blocks = original.flatten().view(-1, 64)
    absmax = blocks.abs().amax(dim=1, keepdim=True)
    code = torch.tensor(levels)
    nearest = code[(blocks / absmax).unsqueeze(-1).sub(code).abs().argmin(-1)]
    assert torch.allclose(dequantized.flatten(), (nearest * absmax).flatten(), atol=1e-6)
    assert not torch.allclose(dequantized, original)  # the premise: 4 bits moved the weights
    codes = quantized_codes(original, 4, QuantizeConfig(four_bit_type=kind)).flatten().view(-1, 64)
    assert torch.allclose(torch.tensor(sorted(levels))[codes] * absmax, dequantized.flatten().view(-1, 64), atol=1e-6)


def test_quantized_layers_are_bitsandbytes_and_the_output_stays_close(saved_model, model_64):
    import bitsandbytes as bnb

    ids = torch.arange(3, 19).view(2, 8)
    full = model_64(ids).logits
    for bits, layer in ((8, bnb.nn.Linear8bitLt), (4, bnb.nn.Linear4bit)):
        quantized = load_quantized(saved_model, bits, QuantizeConfig(), "cpu")
        assert isinstance(quantized.model.layers[0].mlp.down_proj, layer)
        assert not isinstance(quantized.lm_head, layer)  # transformers keeps the output layer in full precision
        logits = quantized(ids).logits
        assert 0 < (logits - full).abs().max() < 0.5


@pytest.mark.parametrize(
    "values, message",
    [
        ({"bits": (3,)}, "4 or 8 bits"),
        ({"bits": ()}, "4 or 8 bits"),
        ({"four_bit_type": "int4"}, "fp4 or nf4"),
        ({"int8_threshold": -1.0}, "--int8-threshold"),
        ({"compute_dtype": "auto"}, "--compute-dtype"),
    ],
)
def test_bad_settings_are_one_line(values, message):
    with pytest.raises(ValueError, match=message):
        QuantizeConfig(**values)


def test_changed_share_counts_weights_that_leave_their_bucket(model_64, saved_model, tmp_path):
    import copy

    moved = copy.deepcopy(model_64)
    weight = moved.model.layers[0].self_attn.o_proj.weight  # 64 × 64: one block a row
    with torch.no_grad():
        small = weight.abs().argmin()  # nearest 0: a nudge of 1e-6 keeps it in 0's bucket at 4 and 8 bits
        weight.view(-1)[small] += 1e-6
        row = weight[5]
        row[row.abs().argmin()] = row.abs().max() * 0.99  # far from its value at every precision; the absmax stays
    moved.save_pretrained(tmp_path)
    count = sum(p.numel() for n, p in model_64.named_parameters() if p.dim() == 2 and "embed" not in n)
    shares = changed_shares(saved_model, tmp_path, QuantizeConfig())  # full, int8, fp4
    assert shares["full"] == pytest.approx(2 / count)
    assert shares["int8"] == pytest.approx(1 / count)
    assert shares["fp4"] == pytest.approx(1 / count)
    assert changed_shares(saved_model, saved_model, QuantizeConfig(bits=(4,)))["fp4"] == 0


def test_a_model_narrower_than_a_block_is_one_line(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path)  # 32 wide
    with pytest.raises(ValueError, match="multiples of 64"):
        load_quantized(tmp_path, 4, QuantizeConfig(), "cpu")
    assert type(load_quantized(tmp_path, 8, QuantizeConfig(), "cpu").model.layers[0].mlp.up_proj).__name__ == (
        "Linear8bitLt"
    )


def test_a_model_attack_reads_back_what_it_wrote(saved_model, tmp_path):
    calls = []

    class Bench:
        results_file = "R.json"

        @staticmethod
        def evaluate(model, tokenizer, plan, reference):
            calls.append(type(model.model.layers[0].mlp.up_proj).__name__)
            return {"loss": float(model(torch.arange(3, 11)[None]).logits.detach().float().std())}

        summary = staticmethod(lambda results: dict(results))

    config = QuantizeConfig()
    first = attack_model(Bench, None, None, saved_model, {"loss": -1.0}, config, tmp_path, "cpu")
    assert calls == ["Linear8bitLt", "Linear4bit"] and first[FULL] == {"loss": -1.0}  # the run's own results
    assert (tmp_path / "int8" / "R.json").is_file() and (tmp_path / "fp4" / "R.json").is_file()
    again = attack_model(Bench, None, None, saved_model, None, config, tmp_path, "cpu")
    assert calls[2:] == ["Linear"] and again["int8"] == first["int8"] and again["fp4"] == first["fp4"]
