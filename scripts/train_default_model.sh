#!/usr/bin/env bash
# Train the packaged default model's Matryoshka heads (polycolbert-e5-small) on TRAINING sets only
# (shared/data/README.md): QA pairs in it/zh/ja/ar, SciFact's train qrels, Tatoeba translation pairs.
# Usage: scripts/train_default_model.sh [OUTPUT]   (default: build/default-model)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${POLYCOLBERT_DATA:-../shared/data}
OUT=${1:-build/default-model}
TATOEBA="ara deu ell spa hin rus tha tur vie cmn fra ita por jpn kor nld pol"
args=()
for set in squad-it cmrc2018-zh jaquad-ja arcd-ar; do args+=(--data "$DATA/$set:test.tsv"); done
args+=(--data "$DATA/scifact:train.tsv")
for lang in $TATOEBA; do args+=(--data "$DATA/tatoeba-laser/$lang:test.tsv"); done
exec .venv/bin/polycolbert train --output "$OUT" "${args[@]}" \
  --limit-per-source "${LIMIT:-600}" --steps "${STEPS:-500}" --batch-size 32 --negatives 1 \
  --init-heads pca --self-distill "${SELF_DISTILL:-1.0}" --lr "${LR:-1e-3}" --temperature "${TEMPERATURE:-1.0}" \
  --train-backbone "${TRAIN_BACKBONE:-none}" --top-layers "${TOP_LAYERS:-2}" --backbone-lr "${BACKBONE_LR:-5e-5}" \
  --doc-maxlen 256 --seed 0 --save-every "${SAVE_EVERY:-100}" --no-resume
