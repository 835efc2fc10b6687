"""`ner-ray export MODEL_DIR --merge OUT`: a saved generative model as one plain Hugging Face folder (LoRA merged
into the base, safetensors, the tokenizer with the family's special tokens, a greedy generation config), which
transformers and vLLM load without PEFT or ner_ray. Written into a temporary folder beside OUT, then renamed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from ner_ray.inference.model_files import load_model


def export_merged(model_dir: str | Path, out: str | Path) -> Path:
    """Write the merged model of `model_dir` to `out` (which must not exist yet); returns `out`."""
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} exists; ner-ray export writes a new folder (remove it, or name another)")
    loaded = load_model(model_dir)
    merge = getattr(loaded.family, "merged", None)
    if merge is None:
        raise ValueError(f"{model_dir}: family {loaded.family.name} has no merged export (only the causal-LM families do; "
                         "an encoder model folder is already complete)")
    model = merge(loaded.model)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        if hasattr(model.config, "quantization_config"):  # a plain folder: no GGUF or bitsandbytes settings carried over
            del model.config.quantization_config
        model.save_pretrained(partial, safe_serialization=True)
        loaded.family.tokenizer.save_pretrained(partial)
        (partial / "ner_ray_export.json").write_text(json.dumps(
            {"source": str(model_dir), "family": loaded.family.name, "prompt": loaded.family.prompt("{sentence}"),
             "trained_precision": loaded.precision}, indent=2) + "\n")
        os.rename(partial, out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return out
