#!/usr/bin/env bash
# Run `emoapp bench` on a machine with an NVIDIA GPU, in one go, and keep what it says.
#
# Usage (from anywhere):  scripts/gpu_bench.sh [OUT_DIR]      (default OUT_DIR: $OUT or bench-gpu)
#
# Measures CPU float32, CPU bfloat16 (where the CPU runs it natively) and CUDA float16
# encoder cost and overhead, then scaling, the 60 s live run and start-up on CUDA (the
# primary variant when a GPU is present). Builds the full-size random-weight models first
# (about 20 s). Takes about 4-5 minutes on an H100 host; a hard limit of 8 minutes stops it.
# Then the encoder part again with the default profile's architectures (`--models large`:
# HuBERT-large, RoBERTa-large; about 1 minute more, limit 4 minutes).
#
# Installs nothing and needs no network. The Python it runs ($PYTHON, else .venv/bin/python,
# else python3) must have: torch with CUDA, transformers, tokenizers, safetensors, numpy,
# av (PyAV), opencv-python-headless, librosa, soundfile, silero-vad, scikit-image, pillow.
# The fer peer is skipped (it needs TensorFlow in a venv of its own).
#
# Writes into OUT_DIR: bench-gpu.json (every figure), bench-gpu.txt (the table),
# bench-gpu.log (progress and warnings), the same three for bench-gpu-large, and
# nvidia-smi.txt. The built models (about 850 MB, and 2.6 GB for the large ones) go to
# $EMOAPP_BENCH_DIR, else /tmp/emoapp-bench, not into OUT_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-bench-gpu}}"
models="${EMOAPP_BENCH_DIR:-/tmp/emoapp-bench}"
mkdir -p "$out" "$models"
py="${PYTHON:-}"
if [ -z "$py" ]; then
  if [ -x .venv/bin/python ]; then py=.venv/bin/python; else py=python3; fi
fi
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || echo "nvidia-smi not found" > "$out/nvidia-smi.txt"
"$py" - <<'EOF'
import importlib.util, sys
missing = [m for m in ("torch", "transformers", "av", "cv2", "librosa", "soundfile",
                       "silero_vad", "skimage", "PIL") if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"gpu_bench: missing Python packages: {', '.join(missing)}")
import torch
if not torch.cuda.is_available():
    sys.exit(f"gpu_bench: torch {torch.__version__} sees no CUDA device")
print(f"gpu_bench: torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"{torch.cuda.get_device_name(0)}", file=sys.stderr)
EOF

status=0
timeout 480 "$py" -m emoapp bench --device auto --skip peers \
  --models-dir "$models" --json "$out/bench-gpu.json" \
  > "$out/bench-gpu.txt" 2> "$out/bench-gpu.log" || status=$?
cat "$out/bench-gpu.txt"
if [ "$status" -ne 0 ]; then
  echo "gpu_bench: emoapp bench exited with status $status (124: the 8-minute limit); see $out/bench-gpu.log" >&2
  tail -n 20 "$out/bench-gpu.log" >&2
fi
# The default profile's own architectures (HuBERT-large, RoBERTa-large): encoder cost only.
if [ "$status" -eq 0 ]; then
  large=0
  timeout 240 "$py" -m emoapp bench --device auto --models large --part encoders \
    --models-dir "$models" --json "$out/bench-gpu-large.json" \
    > "$out/bench-gpu-large.txt" 2> "$out/bench-gpu-large.log" || large=$?
  cat "$out/bench-gpu-large.txt"
  if [ "$large" -ne 0 ]; then
    echo "gpu_bench: the large-model run exited with status $large; see $out/bench-gpu-large.log" >&2
    status=$large
  fi
fi
exit "$status"
