"""The unlearning trainer on a tiny model: every method, NPO's cached reference, resume, NaN handling."""

import copy

import pytest
import torch
from accelerate import Accelerator

from simnpo.llm.templates import TEMPLATES
from simnpo.llm.tofu.benchmark import encode_unlearning_data
from simnpo.llm.tofu.data import load_tofu
from simnpo.llm.trainer import NonFiniteLoss, TrainerConfig, epoch_draws, reference_logprobs, unlearn
from simnpo.losses import METHODS, sequence_logprobs

LLAMA2 = TEMPLATES["llama2"]


@pytest.fixture(scope="module")
def accelerator():
    return Accelerator(cpu=True)


@pytest.fixture(scope="module")
def rows(tofu_folder):
    return load_tofu(tofu_folder, "forget10")[:16], load_tofu(tofu_folder, "retain90")[:32]


def fresh(tiny_model):
    return copy.deepcopy(tiny_model)


def quick(method, **kw):
    values = {
        "method": method,
        "beta": 1.0,
        "lr": 5e-3,
        "epochs": 2,
        "batch_size": 8,
        "warmup_epochs": 0.0,
        "weight_decay": 0.0,
        **kw,
    }
    return TrainerConfig.for_method(values.pop("method"), values)


@pytest.mark.parametrize("method", list(METHODS))
def test_each_method_runs_and_lowers_the_forget_likelihood(
    method, trained_model, tokenizer, rows, accelerator, tmp_path
):
    data = encode_unlearning_data(tokenizer, LLAMA2, *rows, method, 128, seed=0)
    before = reference_logprobs(trained_model, data.forget, 8, accelerator)
    extra = {"rmu_layer": 1, "retain_weight": 10.0} if method == "rmu" else {}  # the tiny model's last layer
    model = unlearn(fresh(trained_model), data, quick(method, lr=2e-3, **extra), accelerator, tmp_path)
    after = reference_logprobs(model, data.forget, 8, accelerator)
    assert torch.isfinite(after).all()
    assert after.mean() < before.mean() - 0.1
    assert (tmp_path / "checkpoint" / "state.json").is_file()


def test_npo_cached_reference_equals_a_live_reference_model(tiny_model, tokenizer, rows, accelerator):
    data = encode_unlearning_data(tokenizer, LLAMA2, *rows, "npo", 128, seed=0)
    cached = reference_logprobs(tiny_model, data.forget, 5, accelerator)  # padded batches of 5
    live = copy.deepcopy(tiny_model).eval()
    for i in range(len(data.forget)):  # one item at a time, no padding
        item = data.forget[i : i + 1].trimmed()
        with torch.no_grad():
            expected = sequence_logprobs(live(input_ids=item.input_ids).logits, item.labels)[0]
        assert cached[i].item() == pytest.approx(expected.item(), abs=1e-4)


def test_each_epoch_draws_its_own_batches_and_partners_again_on_resume():
    batches, partners = epoch_draws(10, 6, 4, seed=1, epoch=0)
    assert [len(b) for b in batches] == [4, 4, 4] and set(torch.cat(batches).tolist()) == set(range(10))
    assert partners.shape == (10,) and 0 <= partners.min() and partners.max() < 6
    again, partners_again = epoch_draws(10, 6, 4, seed=1, epoch=0)  # a resumed run's draws for that epoch
    assert all(torch.equal(a, b) for a, b in zip(batches, again)) and torch.equal(partners, partners_again)
    later, _ = epoch_draws(10, 6, 4, seed=1, epoch=1)
    assert not torch.equal(torch.cat(later), torch.cat(batches))


def test_an_interrupted_run_resumes_to_the_same_model(tiny_model, tokenizer, rows, accelerator, tmp_path):
    data = encode_unlearning_data(tokenizer, LLAMA2, *rows, "simnpo_nll", 128, seed=0)
    config = quick("simnpo_nll", epochs=3)
    whole = unlearn(fresh(tiny_model), data, config, accelerator, tmp_path / "whole")

    def killed_after_epoch_1(model, epoch):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        unlearn(fresh(tiny_model), data, config, accelerator, tmp_path / "run", killed_after_epoch_1, eval_every=1)
    seen = []
    resumed = unlearn(fresh(tiny_model), data, config, accelerator, tmp_path / "run", lambda m, e: seen.append(e), 1)
    assert seen == [2, 3]  # epoch 1 was not redone
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6)


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_state(tiny_model, tokenizer, rows, accelerator, tmp_path):
    data = encode_unlearning_data(tokenizer, LLAMA2, *rows, "simnpo", 128, seed=0)

    def diverge(model, epoch):  # as if the weights had blown up during epoch 2
        with torch.no_grad():
            next(model.parameters()).fill_(float("nan"))

    with pytest.raises(NonFiniteLoss, match=r"loss became nan at epoch 2 step 1; stopped, keeping epoch 1 state"):
        unlearn(fresh(tiny_model), data, quick("simnpo"), accelerator, tmp_path, diverge, eval_every=1)
    from simnpo.runs import read_json

    assert read_json(tmp_path / "checkpoint" / "state.json")["epoch"] == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "npo_sim"}, "unknown method"),
        ({"beta": 0.0}, "beta must be"),
        ({"schedule": "cosine"}, "schedule"),
        ({"optimizer": "sgd"}, "optimizer"),
        ({"lora_rank": -1}, "lora_rank"),
        ({"max_grad_norm": -1.0}, "max_grad_norm"),
    ],
)
def test_bad_trainer_configs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainerConfig.for_method(kwargs.pop("method", "simnpo"), kwargs)


def test_options_split_between_the_loss_and_the_trainer():
    config = TrainerConfig.for_method("npo_kl", {"beta": 0.3, "retain_weight": 2.0, "lr": 1e-3, "split": "forget05"})
    assert (config.method, config.loss.beta, config.loss.retain_weight, config.lr) == ("npo_kl", 0.3, 2.0, 1e-3)
    assert TrainerConfig.for_method("simnpo", {}).loss.beta == 4.5  # the method's default β (losses.DEFAULT_BETA)


def test_accumulation_must_divide_the_batch():
    assert TrainerConfig(batch_size=32, per_device_batch_size=4).accumulation(2) == 4
    with pytest.raises(ValueError, match="not a multiple of per-device batch 3"):
        TrainerConfig(batch_size=32, per_device_batch_size=3).accumulation(1)


def test_lora_trains_adapters_only_and_saves_a_plain_model(trained_model, tokenizer, rows, accelerator, tmp_path):
    from simnpo.llm.distributed import save_model
    from simnpo.llm.models import load_model

    data = encode_unlearning_data(tokenizer, LLAMA2, *rows, "simnpo", 128, seed=0)
    base = copy.deepcopy(trained_model)
    before = reference_logprobs(base, data.forget, 8, accelerator)
    model = unlearn(copy.deepcopy(trained_model), data, quick("simnpo", lora_rank=4, lr=1e-2), accelerator, tmp_path)
    assert any("lora_" in name for name, _ in model.named_parameters())
    after = reference_logprobs(model, data.forget, 8, accelerator)
    save_model(model, accelerator, tmp_path / "model", tokenizer)
    plain = load_model(tmp_path / "model")
    assert set(plain.state_dict()) == set(base.state_dict()) and not (tmp_path / "model.tmp").exists()
    assert torch.allclose(reference_logprobs(plain, data.forget, 8, accelerator), after, atol=1e-4)
    assert after.mean() < before.mean()


def test_token_means_do_not_depend_on_the_accumulation_split(trained_model, tokenizer, rows, accelerator, tmp_path):
    # one process: a batch of 8 at once against 4 × 2 accumulation steps; NLL divides by the global token count
    data = encode_unlearning_data(tokenizer, LLAMA2, *rows, "graddiff", 128, seed=0)
    whole = unlearn(fresh(trained_model), data, quick("graddiff", lr=1e-3), accelerator, tmp_path / "a")
    split = unlearn(
        fresh(trained_model), data, quick("graddiff", lr=1e-3, per_device_batch_size=4), accelerator, tmp_path / "b"
    )
    worst = max((a - b).abs().max().item() for a, b in zip(whole.state_dict().values(), split.state_dict().values()))
    assert worst < 1e-5, worst


def test_gradients_are_clipped_to_max_grad_norm(trained_model, tokenizer, rows, accelerator, tmp_path):
    # clipped to 1e-12, AdamW's steps shrink to lr·g/eps ≈ 0: the weights stay; unclipped they move by ~lr
    data = encode_unlearning_data(tokenizer, LLAMA2, *rows, "simnpo", 128, seed=0)
    start = fresh(trained_model).state_dict()
    moved = {}
    for norm in (0.0, 1e-12):
        config = quick("simnpo", epochs=1, max_grad_norm=norm)
        model = unlearn(fresh(trained_model), data, config, accelerator, tmp_path / str(norm), save_checkpoints=False)
        moved[norm] = max((v - start[k]).abs().max().item() for k, v in model.state_dict().items())
    assert moved[0.0] > 1e-3 and moved[1e-12] < 1e-6, moved


def test_gradient_checkpointing_gives_the_same_model(trained_model, tokenizer, rows, accelerator, tmp_path):
    data = encode_unlearning_data(tokenizer, LLAMA2, *rows, "simnpo_nll", 128, seed=0)
    plain = unlearn(fresh(trained_model), data, quick("simnpo_nll"), accelerator, tmp_path / "a")
    checkpointed = unlearn(
        fresh(trained_model), data, quick("simnpo_nll", gradient_checkpointing=True), accelerator, tmp_path / "b"
    )
    # non-reentrant, as DDP needs with several forwards per backward
    functions = [
        m._gradient_checkpointing_func for m in checkpointed.modules() if m.__dict__.get("gradient_checkpointing")
    ]
    assert functions and all(f.keywords["use_reentrant"] is False for f in functions)
    for a, b in zip(plain.state_dict().values(), checkpointed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5)


def test_rmu_trains_only_the_chosen_projections_and_moves_forget_activations_toward_the_control(
    trained_model, tokenizer, rows, accelerator, tmp_path
):
    from simnpo.llm.rmu import layer_output, rmu_layers
    from simnpo.losses import rmu_forget_loss

    data = encode_unlearning_data(tokenizer, LLAMA2, *rows, "rmu", 128, seed=0)
    config = quick("rmu", rmu_layer=1, steering=4.0, retain_weight=1.0, lr=1e-2, epochs=8)
    control = rmu_layers(fresh(trained_model), fresh(trained_model), 1, None, 4.0, config.seed).control

    def forget_term(model) -> float:
        batch = data.forget.trimmed()
        with torch.no_grad(), layer_output(model.model.layers[1]) as hidden:
            model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
        return rmu_forget_loss(hidden[0][:, :-1], batch.labels[:, 1:] != -100, control).item()

    model = unlearn(fresh(trained_model), data, config, accelerator, tmp_path)
    before, after = trained_model.state_dict(), model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    # the default parameters: layer 1's and the layers below's down-projections (this model has layers 0 and 1)
    assert changed == {"model.layers.0.mlp.down_proj.weight", "model.layers.1.mlp.down_proj.weight"}
    assert forget_term(model) < 0.5 * forget_term(trained_model)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"rmu_layer": 5}, "--rmu-layer 5 matches no module"),
        ({"rmu_layer": 1, "rmu_params": r"lm_head\.bias"}, "matches no parameter"),
    ],
)
def test_rmu_layer_and_parameters_must_exist(values, message, tiny_model, tokenizer, rows, accelerator, tmp_path):
    data = encode_unlearning_data(tokenizer, LLAMA2, *rows, "rmu", 128, seed=0)
    with pytest.raises(ValueError, match=message):
        unlearn(fresh(tiny_model), data, quick("rmu", **values), accelerator, tmp_path)


def test_an_rmu_layer_index_matching_several_modules_is_one_line():
    """A model with two towers of layers (a vision and a text stack): ``layers.0`` names two modules."""
    from simnpo.llm.rmu import rmu_layers

    def towers():
        stack = lambda: torch.nn.ModuleDict({"layers": torch.nn.ModuleList([torch.nn.Linear(2, 2)])})  # noqa: E731
        return torch.nn.ModuleDict({"vision": stack(), "text": stack()})

    with pytest.raises(ValueError, match=r"--rmu-layer 0 matches 2 modules \(vision.layers.0, text.layers.0\)"):
        rmu_layers(towers(), towers(), 0, None, 6.5, seed=0)
