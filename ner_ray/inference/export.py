"""`ner-ray export MODEL_DIR --merge OUT`: a saved generative model as one plain Hugging Face folder (LoRA merged
into the base, safetensors, the tokenizer with the family's special tokens, a greedy generation config), which
transformers and vLLM load without PEFT or ner_ray. A QLoRA model is merged into its base reloaded at full precision,
never into the quantized weights. `ner-ray export --combine A B --weights ... --to OUT`: the LoRA adapters of several
saved models of one base folded into one (PEFT's weighted combination), saved as a ner_ray model that evaluate, serve
and --merge take like any other. Both write into a temporary folder beside OUT, then rename it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ner_ray.data.textio import new_folder
from ner_ray.families import peft as peft_seam
from ner_ray.families.generative import ADAPTER_DIR
from ner_ray.inference.model_files import load_family, save_model

COMBINATIONS = ("linear", "ties", "cat")  # PEFT add_weighted_adapter types offered; linear and ties need equal ranks
COMBINED = "combined.json"  # provenance of a combined model: its sources, weights and combination


def export_merged(model_dir: str | Path, out: str | Path) -> Path:
    """Write the merged model of `model_dir` to `out` (which must not exist yet); returns `out`."""
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} exists; ner-ray export writes a new folder (remove it, or name another)")
    family, meta = load_family(model_dir)
    merge = getattr(family, "merged", None)
    if merge is None:
        raise ValueError(f"{model_dir}: family {family.name} has no merged export (only the causal-LM families do; "
                         "an encoder model folder is already complete)")
    if family.config.model.quantize:  # merge into the full-precision base, never into 4/8-bit weights
        family.config = family.config.with_updates({"model.quantize": None})
    model = merge(family.load(Path(model_dir), meta))
    precision = meta.get("precision", "fp32")
    with new_folder(out) as partial:
        if hasattr(model.config, "quantization_config"):  # a plain folder: no GGUF or bitsandbytes settings carried over
            del model.config.quantization_config
        model.save_pretrained(partial, safe_serialization=True)
        family.tokenizer.save_pretrained(partial)
        (partial / "ner_ray_export.json").write_text(json.dumps(
            {"source": str(model_dir), "family": family.name, "prompt": family.prompt("{sentence}"),
             "trained_precision": precision}, indent=2) + "\n")
    return out


def combine_models(model_dirs: list[str | Path], weights: list[float], out: str | Path, combination: str = "linear",
                   density: float | None = None) -> Path:
    """Write to `out` (which must not exist yet) a saved model whose adapter is the weighted combination of the
    adapters of `model_dirs`: LoRA models of one causal-LM family on one base; the first model's settings, with the
    family's own union of what the others add (instruct: the tasks). Returns `out`."""
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} exists; ner-ray export writes a new folder (remove it, or name another)")
    if len(model_dirs) < 2 or len(weights) != len(model_dirs):
        raise ValueError(f"--combine takes two models or more and one weight each: {len(model_dirs)} models, {len(weights)} weights")
    if combination not in COMBINATIONS:
        raise ValueError(f"combination {combination!r}: use one of {', '.join(COMBINATIONS)}")
    loaded = [load_family(d) for d in model_dirs]
    first, meta = loaded[0]
    for directory, (family, other) in zip(model_dirs, loaded):
        _check_combinable(directory, family, other, first, meta)
    combine = first.combined_config([family.config for family, _ in loaded])
    types = tuple(dict.fromkeys(t for family, _ in loaded for t in family.types))
    family = type(first)(combine, types, first.tokenizer)
    model = family.load_base()
    names = [f"source{i}" for i in range(len(model_dirs))]
    for name, directory in zip(names, model_dirs):
        model = peft_seam.load_named_adapter(model, Path(directory) / ADAPTER_DIR, name)
    peft_seam.combine_adapters(model, names, list(weights), combination, density=density)
    with new_folder(out) as partial:
        save_model(model, family, partial, meta.get("precision", "fp32"))
        (partial / COMBINED).write_text(json.dumps({"sources": [str(d) for d in model_dirs], "weights": list(weights),
                                                    "combination": combination, "density": density}, indent=2) + "\n")
    return out


def _check_combinable(directory: str | Path, family: Any, meta: dict[str, Any], first: Any, first_meta: dict[str, Any]) -> None:
    """A clear error, naming the model and the key, for a model whose adapter cannot join the first one's."""
    if not hasattr(family, "combined_config"):
        raise ValueError(f"{directory}: family {family.name} has no adapter combination here (the causal-LM families do)")
    if meta.get("weights") != "adapter":
        raise ValueError(f"{directory}: a full fine-tune has no LoRA adapter to combine (model.lora was null)")
    if family.special_tokens:
        raise ValueError(f"{directory}: family {family.name} trains the rows of the tokens it adds inside its adapter, "
                         "which PEFT's weighted combination does not merge; combine instruct adapters")
    for key in ("name", "family", "quantize"):
        mine, theirs = getattr(family.config.model, key), getattr(first.config.model, key)
        if mine != theirs:
            raise ValueError(f"{directory}: model.{key} is {mine!r}, the first model's {theirs!r}: adapters combine on one base")
