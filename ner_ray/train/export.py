"""A trained model on disk and back: the LoRA adapter (or full encoder), the head, labels and config.

Layout: `ner_ray.json` (study config, labels, family), `adapter/` (PEFT, safetensors) or `encoder/`
(full weights, safetensors), `head.safetensors` (classifier, CRF, sentence head) and the tokenizer.
Everything loads with safetensors; nothing is unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file, save_file

from ner_ray.config import StudyConfig
from ner_ray.families import peft as peft_seam
from ner_ray.families.base import FAMILIES, LabelSet
from ner_ray.families.models import resolve_model

META = "ner_ray.json"
HEAD = "head.safetensors"


def save_model(model, family, directory: str | Path) -> Path:
    """Write a trained model so that `load_model` rebuilds it with identical predictions."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    encoder = model.encoder
    adapter_only = peft_seam.is_peft(encoder) and not any(
        p.requires_grad for n, p in encoder.named_parameters() if "lora_" not in n)
    if adapter_only:
        peft_seam.save_adapter(encoder, directory / "adapter")
    else:
        peft_seam.merged_encoder(encoder).save_pretrained(directory / "encoder", safe_serialization=True)
    save_file({k: v.contiguous() for k, v in model.head_state_dict().items()}, directory / HEAD)
    family.tokenizer.save_pretrained(directory / "tokenizer")
    meta = {"family": family.name, "labels": list(family.labels.types), "weights": "adapter" if adapter_only else "encoder",
            "config": family.config.model_dump(mode="json")}
    (directory / META).write_text(json.dumps(meta, indent=2))
    return directory


def load_model(directory: str | Path):
    """(family, model) from a folder written by `save_model`; the model is in eval mode."""
    from transformers import AutoModel, AutoTokenizer

    directory = Path(directory)
    for required in (META, HEAD):
        if not (directory / required).is_file():
            raise FileNotFoundError(f"{directory} is no saved ner_ray model: {required} is missing "
                                    f"(save_model writes {META}, {HEAD}, tokenizer/ and adapter/ or encoder/)")
    meta = json.loads((directory / META).read_text())
    config = StudyConfig.model_validate(meta["config"])
    tokenizer = AutoTokenizer.from_pretrained(directory / "tokenizer")
    family = FAMILIES.get(meta["family"])(config, tokenizer, LabelSet(tuple(meta["labels"])))
    if meta["weights"] == "adapter":
        base = AutoModel.from_pretrained(resolve_model(config.model.name), add_pooling_layer=False)
        encoder = peft_seam.load_adapter(base, directory / "adapter")
    else:
        encoder = AutoModel.from_pretrained(directory / "encoder", add_pooling_layer=False)
    model = family.build_on(encoder)
    missing, unexpected = model.load_state_dict(load_file(directory / HEAD), strict=False)
    assert not unexpected and all(k.startswith("encoder.") for k in missing), (missing, unexpected)
    return family, model.eval()
