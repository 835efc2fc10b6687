"""Defaults that depend on what is trained: the encoder LoRA recipe.

A LoRA adapter on an encoder learns at a learning rate far above full fine-tuning's: at lr 2e-4 with the head at
1x (the compare suite's first recipe; the schema's generic lr is 5e-5) LoRA r16 on MiniLM-L6 scored test F1 0.000 on
NCBI-disease after 3 epochs (issue 14). So a study that trains an encoder family (token_cls, crf, multitask, fusion)
with a model.lora block and leaves these keys unset gets the values our own studies chose on dev
(NCBI-disease, MiniLM-L6, 3 epochs; BENCHMARKS.md "LoRA recipe study", 2026-12-03):
  train.lr 2e-3 and model.head.lr_multiplier 10   search_spaces/lora_recipe.yaml, then lora_recipe_narrow.yaml
  model.lora.dropout 0                              search_spaces/lora_recipe_steps.yaml
(every linear layer adapted is already model.lora.target_modules' default). The values are filled when a study
file, its overrides or a config dict is read; a key the study sets keeps the study's value, and a config built
from a saved or dumped config (Tune trials, `with_updates`, saved models) keeps the values it holds.
"""

from __future__ import annotations

from typing import Any

ENCODER_FAMILIES = ("token_cls", "crf", "multitask", "fusion")
DEFAULT_FAMILY = "token_cls"  # model.family when a study names none (ModelConfig.family reads it)
ENCODER_LORA_RECIPE: dict[tuple[str, ...], float] = {
    ("train", "lr"): 2.0e-3,
    ("model", "head", "lr_multiplier"): 10.0,
    ("model", "lora", "dropout"): 0.0,
}


def trains_encoder_lora(raw: dict[str, Any]) -> bool:
    """Whether a raw study config trains a LoRA adapter on an encoder family."""
    model = raw.get("model")
    if not isinstance(model, dict):
        return False
    return model.get("family", DEFAULT_FAMILY) in ENCODER_FAMILIES and isinstance(model.get("lora"), dict)


def with_recipe_defaults(raw: Any) -> Any:
    """`raw` (a raw study config) with the encoder LoRA recipe's values at the keys it leaves unset; `raw` itself
    when the recipe does not apply (not a mapping, or no LoRA on an encoder family). Never changes `raw`."""
    if not isinstance(raw, dict) or not trains_encoder_lora(raw):
        return raw
    filled = dict(raw)
    for path, value in ENCODER_LORA_RECIPE.items():
        node = filled
        for part in path[:-1]:
            child = node.get(part, {})
            if not isinstance(child, dict):  # null or a wrong type: validation reports it at its own key
                break
            node[part] = dict(child)
            node = node[part]
        else:
            node.setdefault(path[-1], value)
    return filled
