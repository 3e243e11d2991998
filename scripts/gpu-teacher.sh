#!/usr/bin/env bash
# The GPU route of LEADER (docs/leader.md#gpu): train leader-teacher for one epoch on DATASET (default:
# synthetic) from a LOCAL model folder, then leader-student distilling from that run, both written
# under OUT (default: results/gpu). The machine needs no network: copy the model folder there first.
#
#   scripts/gpu-teacher.sh --set base_model=/path/to/model [--dry-run] [more `bench run` options for the teacher]
#
# device=auto puts the teacher on the GPU under bf16 (fp16 without bf16) autocast, with grad_accum
# folded into the micro-batch (the same prompts per optimiser step). Several GPUs:
# LAUNCH="accelerate launch -m bench" (the teacher step only; the student trains on one device).
# Env: DATASET, OUT, SEED (0), TRAIN_PROTOCOL (every), BENCH (bench), LAUNCH (default: $BENCH).
# --dry-run checks the arguments and prints the two commands without running them (no GPU needed).
set -euo pipefail
DATASET=${DATASET:-synthetic}
OUT=${OUT:-results/gpu}
SEED=${SEED:-0}
TRAIN_PROTOCOL=${TRAIN_PROTOCOL:-every}
BENCH=${BENCH:-bench}
LAUNCH=${LAUNCH:-$BENCH}

fail() { echo "gpu-teacher.sh: $*" >&2; exit 2; }

base_model="" dry_run=0 extra=()
while (($#)); do
  case "$1" in
    --dry-run) dry_run=1; shift ;;
    --set)
      (($# >= 2)) || fail "--set needs key=value"
      if [[ $2 == base_model=* ]]; then base_model=${2#base_model=}; else extra+=(--set "$2"); fi
      shift 2 ;;
    *) extra+=("$1"); shift ;;
  esac
done
[[ -n $base_model ]] \
  || fail "give the local model folder: --set base_model=/path/to/model (a Hugging Face causal-LM folder with config.json)"
[[ -f $base_model/config.json ]] \
  || fail "base_model $base_model: no model folder there (config.json missing); copy the folder to this machine first"

teacher=($LAUNCH run --model leader-teacher --dataset "$DATASET" --seed "$SEED" --results-dir "$OUT"
         --train-protocol "$TRAIN_PROTOCOL" --set "base_model=$base_model" --set device=auto
         --set epochs=1 --set steps=0 ${extra[@]+"${extra[@]}"})
student=($BENCH run --model leader-student --dataset "$DATASET" --seed "$SEED" --results-dir "$OUT"
         --train-protocol "$TRAIN_PROTOCOL" --threshold 0.3)
if ((dry_run)); then
  echo "${teacher[*]}"
  echo "${student[*]}"
  exit 0
fi
python -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' \
  || fail "no CUDA GPU visible to torch (torch.cuda.is_available() is false); use bench run on CPU instead"
start=$(date +%s)
"${teacher[@]}"
echo "gpu-teacher.sh: teacher took $(( $(date +%s) - start )) s"
# the student finds the teacher run just written: the latest compatible one under OUT
"${student[@]}"
echo "gpu-teacher.sh: teacher and student took $(( $(date +%s) - start )) s"
