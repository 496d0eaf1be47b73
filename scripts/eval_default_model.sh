#!/usr/bin/env bash
# One `polycolbert eval` run over every evaluation set and the cross-lingual XQuAD pools.
# Usage: scripts/eval_default_model.sh [MODEL] [OUTPUT]   (defaults: the packaged model, build/eval-default)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${POLYCOLBERT_DATA:-../shared/data}
MODEL=${1:-polycolbert-e5-small}
OUT=${2:-build/eval-default}
LANGS="ar de el en es hi ru th tr vi zh"
args=(--dataset "$DATA/scifact" --dataset "$DATA/belebele-en" --dataset "$DATA/belebele-de")
for lang in $LANGS; do args+=(--dataset "$DATA/xquad-$lang"); done
for lang in $LANGS; do [ "$lang" = en ] || args+=(--dataset "$DATA/xquad-$lang@en"); done
args+=(--dataset "$DATA/xquad-de@mixed")
exec .venv/bin/polycolbert eval --model "$MODEL" "${args[@]}" --output "$OUT"
