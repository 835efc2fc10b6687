"""`import ner_ray` (and its data, metrics, config and CLI modules) stays cheap: no Ray, MLflow, Optuna, vLLM."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("ray", "mlflow", "optuna", "vllm", "deepspeed", "unsloth")


def test_import_does_not_pull_heavy_dependencies():
    code = (
        "import sys, importlib\n"
        "for m in ('ner_ray', 'ner_ray.data.corpora', 'ner_ray.data.pubtator', 'ner_ray.data.stats', 'ner_ray.metrics',\n"
        "          'ner_ray.config', 'ner_ray.registry', 'ner_ray.cli'):\n"
        "    importlib.import_module(m)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
