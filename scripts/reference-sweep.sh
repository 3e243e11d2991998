#!/usr/bin/env bash
# Train the reference runs of the built-in cohort: MODELS (default: every model that needs no LLM, the
# oracle first) on DATASET (default: synthetic), one run per training seed (SEEDS, default 0,1,2) on
# the split of split seed 0, one torch thread each, written under OUT (default: results/sweep).
# Two lanes in parallel on two cores:  MODELS="leader-student-nokd" scripts/reference-sweep.sh &
#                                      MODELS="oracle popular logreg logreg-current retain gamenet safedrug micron molerec" scripts/reference-sweep.sh
# COGNet (beam search, about an hour per seed here) is run apart: MODELS=cognet SEEDS=... scripts/reference-sweep.sh
# Then copy each run's run.json and predictions.safetensors (and seed-groups/) into results/reference/.
set -euo pipefail
MODELS=${MODELS:-oracle popular logreg logreg-current retain gamenet safedrug micron molerec leader-student-nokd}
DATASET=${DATASET:-synthetic}
SEEDS=${SEEDS:-0,1,2}
OUT=${OUT:-results/sweep}
BENCH=${BENCH:-bench}
for model in $MODELS; do
  start=$(date +%s)
  $BENCH run --model "$model" --dataset "$DATASET" --seeds "$SEEDS" --split-seed 0 --threads 1 --results-dir "$OUT"
  echo "sweep: $model seeds $SEEDS took $(( $(date +%s) - start )) s"
done
