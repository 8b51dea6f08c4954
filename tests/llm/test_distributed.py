"""Two CPU processes (gloo) under `accelerate launch --multi_gpu`, each launched script asserting that two processes
ran: the same global batches as one process, evaluation shared out, one run folder, resume after a kill in the middle
of a checkpoint, a NaN on one process only. (`accelerate launch --cpu --num_processes 2` starts one process.)"""

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from typer.testing import CliRunner

from simnpo.cli import app
from simnpo.runs import read_json

HERE = Path(__file__).parent
PORT = iter(range(29517, 29600))


def launch(processes: int, script: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``accelerate launch`` of ``script`` on ``processes`` CPU processes (one thread each)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    kind = ["--multi_gpu"] if processes > 1 else ["--cpu"]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", *kind, "--num_processes", str(processes)]
    cmd += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    cmd += ["--main_process_port", str(next(PORT)), str(script), *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=cwd)


def unlearn_script(processes: int, out: Path, **args) -> subprocess.CompletedProcess:
    out.mkdir(exist_ok=True)
    payload = {"out": str(out), "processes": processes, **args}
    return launch(processes, HERE / "two_process_unlearn.py", json.dumps(payload, default=str))


@pytest.fixture(scope="module")
def runs(tokenizer, tofu_folder, small_muse, tmp_path_factory):
    """1 process × per-device 8, and 2 processes × per-device 2 × accumulation 2 (with the MUSE evaluation)."""
    root = tmp_path_factory.mktemp("distributed")
    common = {"tokenizer": tokenizer.name_or_path, "data": tofu_folder}
    for name, processes, per_device, extra in [("one", 1, 8, {}), ("two", 2, 2, {"muse": small_muse[0]})]:
        proc = unlearn_script(processes, root / name, per_device=per_device, **common, **extra)
        assert proc.returncode == 0, proc.stderr[-3000:]
    return root, common


def test_two_processes_with_accumulation_match_one_process(runs):
    root, _ = runs
    assert read_json(root / "two" / "ran.json")["ranks"] == [0, 1]
    one, two = torch.load(root / "one" / "weights.pt"), torch.load(root / "two" / "weights.pt")
    # SimNPO is a mean over sequences and the NLL term divides by the global token count, so the two splits of
    # each global batch give the same gradient up to float summation order
    worst = max((one[k] - two[k]).abs().max().item() for k in one)
    assert worst < 1e-5, worst
    assert read_json(root / "two" / "ran.json")["evaluated_epochs"] == [1, 2, 3]


def test_the_saved_model_holds_the_trained_weights(runs):
    from simnpo.llm.models import load_model

    root, _ = runs
    saved = load_model(root / "two" / "model").state_dict()
    weights = torch.load(root / "two" / "weights.pt")
    assert all(torch.equal(saved[k], weights[k]) for k in saved)


def test_evaluation_in_two_processes_equals_one_process(runs, tiny_model, tokenizer, tofu_folder, small_muse):
    import copy

    from simnpo.llm.muse.evaluate import MuseEvalConfig, evaluate_muse
    from simnpo.llm.tofu.evaluate import TofuEvalConfig, evaluate_tofu

    root, _ = runs
    sharded = read_json(root / "two" / "TOFU_EVAL.json")
    model = copy.deepcopy(tiny_model)
    model.load_state_dict(torch.load(root / "two" / "weights.pt"))
    single = evaluate_tofu(model.eval(), tokenizer, str(tofu_folder), TofuEvalConfig(max_new_tokens=4))
    for key in ("forget_truth_ratio", "retain_Q_A_Prob", "wf_Q_A_Prob_normalised", "ra_Truth_Ratio"):
        assert len(sharded[key]["value_by_index"]) == len(single[key]["value_by_index"])
        assert sharded[key]["agg_value"] == pytest.approx(single[key]["agg_value"], abs=1e-5), key
    generations = lambda r: [v["generation"] for v in r["forget_Q_A_ROUGE"]["value_by_index"].values()]  # noqa: E731
    assert generations(sharded) == generations(single)
    # MUSE: 4 verbmem and knowmem items, 4 + 4 privleak texts over 2 processes, with the TOFU run's tokenizer
    sharded = read_json(root / "two" / "MUSE_EVAL.json")
    config = MuseEvalConfig(verbmem_tokens=6, knowmem_tokens=4, batch_size=3)
    single = evaluate_muse(model, tokenizer, str(small_muse[0]), config, retrain_auc=0.5)
    generations_of = lambda entry: [v["generation"] for v in entry["value_by_index"].values()]  # noqa: E731
    for key in ("verbmem_f", "knowmem_f", "knowmem_r"):
        assert sharded[key]["agg_value"] == pytest.approx(single[key]["agg_value"])
        assert generations_of(sharded[key]) == generations_of(single[key])
    assert sharded["privleak"]["forget_scores"] == pytest.approx(single["privleak"]["forget_scores"], abs=1e-5)
    assert sharded["privleak"]["agg_value"] == pytest.approx(single["privleak"]["agg_value"], abs=1e-6)


def test_a_run_killed_in_the_middle_of_a_checkpoint_resumes_to_the_same_weights(runs, tmp_path):
    root, common = runs
    killed = unlearn_script(2, tmp_path, per_device=2, kill_in_checkpoint=2, **common)
    assert killed.returncode != 0
    # process 1 wrote its part of epoch 2's state; the swap never happened: epoch 1's checkpoint stands
    assert read_json(tmp_path / "run" / "checkpoint" / "state.json")["epoch"] == 1
    assert (tmp_path / "run" / "checkpoint.tmp").is_dir() and not (tmp_path / "model").exists()
    resumed = unlearn_script(2, tmp_path, per_device=2, **common)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert read_json(tmp_path / "ran.json") == {"ranks": [0, 1], "evaluated_epochs": [2, 3]}
    assert not (tmp_path / "run" / "checkpoint.tmp").exists()
    whole, again = torch.load(root / "two" / "weights.pt"), torch.load(tmp_path / "weights.pt")
    assert max((whole[k] - again[k]).abs().max().item() for k in whole) < 1e-6


def test_a_model_sharded_across_two_processes_evaluates_as_the_whole_model(
    trained_model, tokenizer, tofu_folder, tmp_path
):
    import copy

    from simnpo.llm.distributed import is_sharded
    from simnpo.llm.tofu.evaluate import TofuEvalConfig, evaluate_tofu

    generations = lambda r: [v["generation"] for v in r["forget_Q_A_ROUGE"]["value_by_index"].values()]  # noqa: E731
    config = TofuEvalConfig(max_new_tokens=24, generation_batch_size=1)
    model = copy.deepcopy(trained_model)  # generation also stops at the first answer's first token: answers that
    first = generations(evaluate_tofu(model, tokenizer, str(tofu_folder), config))[0]  # start with it end at once
    stop = tokenizer(first, add_special_tokens=False)["input_ids"][0]
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, stop]
    model.save_pretrained(str(tmp_path / "model"))
    tokenizer.save_pretrained(str(tmp_path / "model"))
    proc = launch(2, HERE / "fsdp_evaluate.py", str(tmp_path / "model"), str(tofu_folder), str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    sharded = read_json(tmp_path / "TOFU_EVAL.json")
    whole = evaluate_tofu(model, tokenizer, str(tofu_folder), config)
    assert not is_sharded(model)
    # answers stop at different steps on the two processes: generation had to keep both stepping (synced_gpus)
    assert len({len(tokenizer(g)["input_ids"]) for g in generations(whole)}) > 1
    assert generations(sharded) == generations(whole)
    for key in ("forget_truth_ratio", "forget_Q_A_Prob", "retain_Q_A_ROUGE", "wf_Truth_Ratio"):
        assert sharded[key]["agg_value"] == pytest.approx(whole[key]["agg_value"], abs=1e-5), key


# ------------------------------------------------------------------------------------------------ the command
TINY = ["llm", "--bench", "tofu", "--finetune-epochs", "2", "--epochs", "2", "--max-new-tokens", "4"]


@pytest.fixture(scope="module")
def one_process_run(tmp_path_factory):
    """`simnpo llm` in this process: it builds the built-in models into the cache the launched runs share."""
    root = tmp_path_factory.mktemp("cli")
    args = [*TINY, "--device", "cpu", "--cache-dir", str(root / "cache"), "--out", str(root / "one")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return root


def test_llm_on_two_processes_writes_one_run_folder_with_the_one_process_table(one_process_run, tmp_path):
    cache = one_process_run / "cache"
    # as a new user would: no --out, no --device (auto: the CPU here)
    proc = launch(2, HERE / "launch_cli.py", *TINY, "--cache-dir", str(cache), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    folders = list((tmp_path / "runs").iterdir())
    assert len(folders) == 1, folders  # no --out: the main process chose it and shared it
    config = read_json(folders[0] / "config.json")
    assert config["processes"] == 2  # the premise: two processes ran
    assert proc.stdout.count("precision: float32 weights, no autocast") == 1 and proc.stdout.count("wrote ") == 1
    one, two = read_json(one_process_run / "one" / "summary.json"), read_json(folders[0] / "summary.json")
    for method in ("npo_nll", "simnpo_nll"):
        one[method] = read_json(one_process_run / "one" / method / "history.json")[-1]
        two[method] = read_json(folders[0] / method / "history.json")[-1]
    for label, summary in one.items():
        for key, value in summary.items():
            if isinstance(value, float):
                assert two[label][key] == pytest.approx(value, rel=1e-4, abs=1e-4), (label, key)


def test_a_nan_on_one_process_stops_every_process_with_one_line(one_process_run, tmp_path):
    cache = one_process_run / "cache"
    args = ["--nan-on-process=1", *TINY, "--device", "cpu", "--cache-dir", str(cache), "--out", str(tmp_path)]
    proc = launch(2, HERE / "launch_cli.py", *args)
    assert proc.returncode != 0
    assert "process 1: NaN injected" in proc.stderr  # the premise: only process 1 saw a NaN
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [errors[0]] and "the loss became nan on process 1 at epoch 1 step 2" in errors[0], errors
    assert "simnpo/" not in proc.stderr.split("NaN injected")[-1]  # no stack trace through our code
    assert read_json(tmp_path / "config.json")["processes"] == 2


# ------------------------------------------------------------------------------------------- backends, in one process
def fake_accelerator(kind: str, zero_stage: int | None = None):
    plugin = None
    if zero_stage is not None:
        auto = dict.fromkeys(("train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "gradient_clipping"))
        plugin = SimpleNamespace(zero_stage=zero_stage, deepspeed_config={k: "auto" for k in auto})
    return SimpleNamespace(distributed_type=kind, state=SimpleNamespace(deepspeed_plugin=plugin), num_processes=8)


@pytest.mark.parametrize(
    "kind, stage, method, lora, message",
    [
        ("FSDP", None, "npo_kl", 0, "npo_kl keeps a frozen reference model, which FSDP cannot shard"),
        ("DEEPSPEED", 3, "simnpo_kl", 0, "which DeepSpeed ZeRO-3 cannot shard"),
        ("DEEPSPEED", 3, "undial", 0, "undial keeps a frozen reference model"),  # it reads the reference's logits
        ("FSDP", None, "simnpo_nll", 8, "--lora-rank is not supported under FSDP"),
    ],
)
def test_sharded_backends_refuse_kl_references_and_lora_with_one_line(kind, stage, method, lora, message):
    from simnpo.llm.distributed import check_backend

    with pytest.raises(ValueError, match=message):
        check_backend(fake_accelerator(kind, stage), method, lora)


def test_sharded_backends_run_methods_reading_no_more_of_the_reference_than_its_log_probabilities():
    from simnpo.llm.distributed import check_backend

    for method in ("npo_nll", "simnpo_nll", "idkpo", "wga", "satimp", "ceu", "pdu"):
        check_backend(fake_accelerator("FSDP"), method, 0)


def test_unsharded_backends_run_every_method():
    from simnpo.llm.distributed import check_backend, sharded_backend

    for accelerator in (fake_accelerator("MULTI_GPU"), fake_accelerator("DEEPSPEED", 2), fake_accelerator("NO")):
        assert sharded_backend(accelerator) is None
        check_backend(accelerator, "npo_kl", 8)


def test_deepspeed_gets_our_batches_and_clipping():
    from simnpo.llm.distributed import configure_deepspeed

    accelerator = fake_accelerator("DEEPSPEED", 3)
    configure_deepspeed(accelerator, micro_batch=1, accumulation=4, max_grad_norm=0.0)
    config = accelerator.state.deepspeed_plugin.deepspeed_config
    assert config["train_micro_batch_size_per_gpu"] == 1 and config["gradient_accumulation_steps"] == 4
    assert config["train_batch_size"] == 32 and config["gradient_clipping"] == 0.0
