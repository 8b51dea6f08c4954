"""Training and unlearning on a small mixture: losses fall, NPO's cached reference log-probs, caching."""

import pytest
import torch

from simnpo.losses import ga_loss, npo_loss, sequence_logprobs, simnpo_loss
from simnpo.markov.data import DataConfig, TokenBatch, case_chains, sample_data, split_tokens
from simnpo.markov.model import ModelConfig
from simnpo.markov.train import (
    TrainConfig,
    cached_training,
    forward_all,
    new_model,
    train_lm,
    unlearn,
    unlearn_config,
)
from simnpo.runs import cache_key

SMALL = ModelConfig(n_layer=2, d_model=32, d_mlp=32)


@pytest.fixture(scope="module")
def setup():
    data = sample_data(DataConfig(case_chains("length", 3, retain_samples=600, forget_samples=300)), seed=0)
    pre = split_tokens(data, "train", [0, 1, 2])
    model = new_model(SMALL, 10, 20, seed=0)
    first = train_lm(model, pre, TrainConfig(epochs=1, batch_size=64, lr=3e-3), seed=0)
    last = train_lm(model, pre, TrainConfig(epochs=2, batch_size=64, lr=3e-3), seed=1)
    return data, model, (first, last)


def test_pretraining_lowers_the_loss(setup):
    _, _, (first, last) = setup
    assert last < first


def forget_scores(model, forget):
    return sequence_logprobs(forward_all(model, forget), forget.labels)


@pytest.mark.parametrize("method", ["ga", "graddiff", "npo", "npo_nll", "npo_kl", "simnpo", "simnpo_nll", "simnpo_kl"])
def test_a_short_run_of_each_method_lowers_its_forget_loss(setup, method):
    data, pretrained, _ = setup
    forget, retain = split_tokens(data, "train", [1, 2]), split_tokens(data, "train", [0])
    config = unlearn_config((method,), iterations=8, lr=2e-3)
    seen = []
    model = unlearn(pretrained, forget, retain, config, method, 0, lambda m, i, losses: seen.append(i))
    assert seen == list(range(9))
    ref, lengths = forget_scores(pretrained, forget)
    after, _ = forget_scores(model, forget)
    assert after.mean() < ref.mean()  # the forget log-likelihood falls
    loss = {"ga": ga_loss(after, lengths), "npo": npo_loss(after, ref, 1.0), "simnpo": simnpo_loss(after, lengths, 1.0)}
    before = {"ga": ga_loss(ref, lengths), "npo": npo_loss(ref, ref, 1.0), "simnpo": simnpo_loss(ref, lengths, 1.0)}
    family = {"graddiff": "ga"}.get(method, method.split("_")[0])
    assert loss[family] < before[family]
    # the pretrained model (the reference) is untouched
    assert torch.equal(forget_scores(pretrained, forget)[0], ref)


def test_idkpo_is_refused_for_markov_chains():
    with pytest.raises(ValueError, match="idkpo needs refusal answers"):
        unlearn_config(("idkpo",))


def test_cached_training_saves_and_reloads(tmp_path, setup):
    data, _, _ = setup
    retain = split_tokens(data, "train", [0])
    key = cache_key(kind="retrain", model=SMALL, seed=3)
    assert key == cache_key(seed=3, model=SMALL, kind="retrain") and key != cache_key(
        kind="retrain", model=SMALL, seed=4
    )
    make = lambda: new_model(SMALL, 10, 20, seed=3)  # noqa: E731
    config = TrainConfig(epochs=1, batch_size=128)
    trained, loaded = cached_training(tmp_path, key, make, retain, config, seed=3)
    assert not loaded and (tmp_path / f"{key}.pt").is_file()
    again, loaded = cached_training(tmp_path, key, make, retain, config, seed=3)
    assert loaded
    assert all(torch.equal(a, b) for a, b in zip(trained.state_dict().values(), again.state_dict().values()))


class _SpyBatch(TokenBatch):
    """A TokenBatch that records the indices unlearning takes from it."""

    taken: list

    def __getitem__(self, index):
        if isinstance(index, torch.Tensor):
            self.taken.append(index.tolist())
        return super().__getitem__(index)


def test_unlearning_draws_forget_batches_without_replacement_and_evaluates_every_k(setup):
    data, pretrained, _ = setup
    forget = split_tokens(data, "train", [1, 2])[:40]
    spy = _SpyBatch(forget.input_ids, forget.labels, forget.chain)
    spy.taken = []
    seen = []
    config = unlearn_config(("simnpo",), iterations=10, batch_size=4, eval_every=4)
    unlearn(pretrained, spy, split_tokens(data, "train", [0]), config, "simnpo", 0, lambda m, i, _: seen.append(i))
    assert seen == [0, 4, 8, 10]  # every 4th and the last
    drawn = [i for batch in spy.taken for i in batch]
    assert len(drawn) == 40 and sorted(drawn) == list(range(40))  # 10 batches of 4 = one pass over the 40


def test_eval_every_outside_the_steps_is_refused():
    with pytest.raises(ValueError, match="--eval-every must be between 1 and the 5 steps, got 6"):
        unlearn_config(("npo",), iterations=5, eval_every=6)
