#!/usr/bin/env bash
# GPU smoke test of the shipped accelerate configs (DDP, FSDP, DeepSpeed ZeRO-3), for the day a GPU is lent. On one
# GPU, per config: the built-in mini-TOFU's tiny Llama unlearns a few steps and evaluates, its saved model is
# reloaded and evaluated again (the same numbers), and a run resumes from a checkpoint. One line per config, a few
# minutes in all; exit status 1 if any config failed. Logs: WORKDIR/CONFIG/*.log.
#
#     bash benchmarks/gpu_smoke.sh [WORKDIR]
set -uo pipefail
cd "$(dirname "$0")/.."
work=${1:-$(mktemp -d)}
export HF_HUB_OFFLINE=1
status=0
for config in multi_gpu fsdp deepspeed_zero3; do
    python benchmarks/gpu_smoke.py "$config" "$work/$config" || status=1
done
exit $status
