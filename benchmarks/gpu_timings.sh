#!/usr/bin/env bash
# Wall time of the pipeline's training jobs on a GPU vs on the same machine's CPU (one process each,
# MLflow logging on, model logging off). Usage: bash benchmarks/gpu_timings.sh [OUT_MD]
# Needs artifacts/splits (dvc repro prepare). Prints a Markdown table.
set -euo pipefail
out=${1:-benchmarks/results/gpu.md}
tmp=$(mktemp -d)
row() {  # name, overrides...
  local name=$1; shift
  local t0=$(date +%s.%N)
  python -m dlzoo.train "$@" train.log_model=false trainer.enable_progress_bar=false trainer.enable_model_summary=false \
    output_dir="$tmp/$name" logger.tracking_uri="sqlite:///$tmp/mlflow.db" hydra.run.dir="$tmp/hydra/$name" > "$tmp/$name.log" 2>&1
  local t1=$(date +%s.%N)
  local acc=$(python -c "import json;print(round(json.load(open('$tmp/$name/run_info.json'))['test']['test/acc'],4))")
  local ep=$(python -c "import json;print(json.load(open('$tmp/$name/run_info.json'))['epochs'])")
  local wall=$(python -c "print(f'{$t1 - $t0:.1f}')")
  echo "| $name | $* | $ep | $wall | $acc |" | tee -a "$out"
}
mkdir -p "$(dirname "$out")"
{
  echo "# Training wall time on a GPU machine"
  echo
  echo "$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1), $(nproc) CPU cores; torch $(python -c 'import torch;print(torch.__version__)'); $(date -u +%F)."
  echo "Command: \`bash benchmarks/gpu_timings.sh\`. Wall time includes process start (~5-10 s of imports)."
  echo
  echo "| job | overrides | epochs | wall s | test acc |"
  echo "|---|---|---|---|---|"
} > "$out"
for exp in digits_mlp digits_lenet5 mnist1d_mlp mnist1d_cnn1d; do
  row "${exp}-cpu" experiment=$exp trainer=cpu
  row "${exp}-gpu-fp32" experiment=$exp trainer=gpu trainer.precision=32-true
  row "${exp}-gpu-bf16" experiment=$exp trainer=gpu
done
row "digits_lenet5-gpu-bf16-compile" experiment=digits_lenet5 trainer=gpu train.compile=true
