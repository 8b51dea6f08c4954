"""2-process CPU `accelerate launch` against 1 process with the same effective batch."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).with_name("two_process_unlearn.py")


def launch(processes: int, per_device: int, tokenizer_dir, data_dir, out: Path, muse_dir=None) -> dict:
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--cpu",
        "--num_processes",
        str(processes),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        "29517",
        str(SCRIPT),
        str(tokenizer_dir),
        str(data_dir),
        str(out),
        str(per_device),
        *([str(muse_dir)] if muse_dir else []),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return torch.load(out / "weights.pt")


def test_two_processes_match_one_process_with_the_same_effective_batch(tokenizer, tofu_folder, tmp_path):
    # effective batch 8: 1 process × per-device 4 × accumulation 2, against 2 processes × per-device 4 × 1
    one = launch(1, 4, tokenizer.name_or_path, tofu_folder, tmp_path / "one")
    two = launch(2, 4, tokenizer.name_or_path, tofu_folder, tmp_path / "two")
    # SimNPO is a mean over sequences, so the averaged gradients agree up to float summation order
    worst = max((one[k] - two[k]).abs().max().item() for k in one)
    assert worst < 1e-4, worst


def test_evaluation_in_two_processes_equals_one_process(tiny_model, tokenizer, tofu_folder, small_muse, tmp_path):
    import copy

    from simnpo.llm.muse.evaluate import MuseEvalConfig, evaluate_muse
    from simnpo.llm.tofu.evaluate import TofuEvalConfig, evaluate_tofu
    from simnpo.runs import read_json

    weights = launch(2, 4, tokenizer.name_or_path, tofu_folder, tmp_path / "two", muse_dir=small_muse[0])
    sharded = read_json(tmp_path / "two" / "TOFU_EVAL.json")
    model = copy.deepcopy(tiny_model)
    model.load_state_dict(weights)
    single = evaluate_tofu(model.eval(), tokenizer, str(tofu_folder), TofuEvalConfig(max_new_tokens=4))
    for key in ("forget_truth_ratio", "retain_Q_A_Prob", "wf_Q_A_Prob_normalised", "ra_Truth_Ratio"):
        assert len(sharded[key]["value_by_index"]) == len(single[key]["value_by_index"])
        assert sharded[key]["agg_value"] == pytest.approx(single[key]["agg_value"], abs=1e-5), key
    generations = lambda r: [v["generation"] for v in r["forget_Q_A_ROUGE"]["value_by_index"].values()]  # noqa: E731
    assert generations(sharded) == generations(single)
    # MUSE: 4 verbmem and knowmem items, 4 + 4 privleak texts over 2 processes, with the TOFU run's tokenizer
    sharded = read_json(tmp_path / "two" / "MUSE_EVAL.json")
    config = MuseEvalConfig(verbmem_tokens=6, knowmem_tokens=4, batch_size=3)
    single = evaluate_muse(model, tokenizer, str(small_muse[0]), config, retrain_auc=0.5)
    generations_of = lambda entry: [v["generation"] for v in entry["value_by_index"].values()]  # noqa: E731
    for key in ("verbmem_f", "knowmem_f", "knowmem_r"):
        assert sharded[key]["agg_value"] == pytest.approx(single[key]["agg_value"])
        assert generations_of(sharded[key]) == generations_of(single[key])
    assert sharded["privleak"]["forget_scores"] == pytest.approx(single["privleak"]["forget_scores"], abs=1e-5)
    assert sharded["privleak"]["agg_value"] == pytest.approx(single["privleak"]["agg_value"], abs=1e-6)
