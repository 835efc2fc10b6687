"""The one place PEFT is called: LoRA on an encoder, layer-wise LoRA, adapter save/load and combination.

Families describe adapters with `ner_ray.config.LoraConfig`; this module turns that into PEFT's
LoraConfig, so a PEFT API change touches one file.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ner_ray.config import LoraConfig


def count_layers(model: nn.Module) -> int:
    """The number of transformer layers of an encoder (from its config)."""
    config = getattr(model, "config", None)
    layers = getattr(config, "num_hidden_layers", None)
    if layers is None:
        raise ValueError(f"{type(model).__name__} has no config.num_hidden_layers; layer-wise LoRA needs it")
    return int(layers)


def peft_lora_config(lora: LoraConfig, model: nn.Module):
    """PEFT's LoraConfig for our settings (layers_to_transform = the last k layers)."""
    from peft import LoraConfig as PeftLoraConfig

    layers = None
    if lora.layers_to_transform is not None:
        total = count_layers(model)
        k = min(lora.layers_to_transform, total)
        layers = list(range(total - k, total))
    return PeftLoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        layers_to_transform=layers,
        use_rslora=lora.use_rslora,
        use_dora=lora.use_dora,
        bias="none",
    )


def add_lora(encoder: nn.Module, lora: LoraConfig, adapter_name: str = "default") -> nn.Module:
    """The encoder wrapped as a PeftModel with one trainable LoRA adapter; base weights frozen."""
    from peft import get_peft_model

    return get_peft_model(encoder, peft_lora_config(lora, encoder), adapter_name=adapter_name)


def is_peft(module: nn.Module) -> bool:
    from peft import PeftModel

    return isinstance(module, PeftModel)


def save_adapter(encoder: nn.Module, directory: str | Path) -> None:
    """Write the adapter weights (safetensors) and adapter_config.json of a PeftModel."""
    encoder.save_pretrained(str(directory), safe_serialization=True)


def load_adapter(base: nn.Module, directory: str | Path, adapter_name: str = "default", trainable: bool = False) -> nn.Module:
    """A base encoder with a saved adapter loaded (safetensors)."""
    from peft import PeftModel

    return PeftModel.from_pretrained(base, str(directory), adapter_name=adapter_name, is_trainable=trainable)


def unfreeze_base(encoder: nn.Module) -> list[nn.Parameter]:
    """Make every frozen parameter of the encoder trainable; returns the parameters newly unfrozen."""
    newly = [p for p in encoder.parameters() if not p.requires_grad]
    for p in newly:
        p.requires_grad_(True)
    return newly


def trainable_parameters(module: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    total = sum(p.numel() for p in module.parameters())
    return trainable, total


@torch.no_grad()
def merged_encoder(encoder: nn.Module) -> nn.Module:
    """A plain encoder with the LoRA update folded into its weights (for export after unfreezing)."""
    return encoder.merge_and_unload() if is_peft(encoder) else encoder
