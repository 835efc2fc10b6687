"""The one place PEFT (and Unsloth, its CUDA-only fast path for causal LMs) is called: LoRA on an encoder or a
causal LM, layer-wise LoRA, adapter save/load and combination.

Families describe adapters with `ner_ray.config.LoraConfig`; this module turns that into PEFT's
LoraConfig, so a PEFT API change touches one file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
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


def peft_lora_config(lora: LoraConfig, model: nn.Module, task_type: str | None = None, default_targets: str | None = None,
                     trainable_tokens: list[int] | None = None):
    """PEFT's LoraConfig for our settings (layers_to_transform = the last k layers); `default_targets` stands in
    for target_modules null, `trainable_tokens` are embedding rows trained inside the adapter (new special tokens)."""
    from peft import LoraConfig as PeftLoraConfig

    layers = None
    targets = lora.target_modules if lora.target_modules is not None else default_targets
    if lora.layers_to_transform is not None:
        total = count_layers(model)
        k = min(lora.layers_to_transform, total)
        layers = list(range(total - k, total))
        if targets == "all-linear":  # PEFT takes layers_to_transform with module names only
            targets = linear_names(model)
    return PeftLoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=targets,
        layers_to_transform=layers,
        use_rslora=lora.use_rslora,
        use_dora=lora.use_dora,
        bias="none",
        task_type=task_type,
        trainable_token_indices=trainable_tokens or None,
    )


# Encoders get LoRA on every linear layer unless model.lora.target_modules names others: on MiniLM-L6 / NCBI-disease
# the LoRA recipe study (search_spaces/lora_recipe.yaml, 2026-12-03) found its best trial with every linear layer
# 0.04 dev F1 above its best with PEFT's default for BERT (query and value only), for 2.9% of the weights vs 0.65%.
ENCODER_TARGETS = "all-linear"


def linear_names(model: nn.Module) -> list[str]:
    """The last name component of every linear layer of a model (query, key, value, dense for BERT): "all-linear"
    spelled out, for PEFT's layers_to_transform, which matches them inside the numbered layers only."""
    return sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, nn.Linear)})


def add_lora(encoder: nn.Module, lora: LoraConfig, adapter_name: str = "default") -> nn.Module:
    """The encoder wrapped as a PeftModel with one trainable LoRA adapter; base weights frozen."""
    from peft import get_peft_model

    return get_peft_model(encoder, peft_lora_config(lora, encoder, default_targets=ENCODER_TARGETS), adapter_name=adapter_name)


def add_causal_lm_lora(model: nn.Module, lora: LoraConfig, trainable_tokens: list[int]) -> nn.Module:
    """A causal LM wrapped as a PeftModel: LoRA on every linear projection unless model.lora.target_modules
    names others, and the embedding rows of `trainable_tokens` trained in the adapter (so it stays small)."""
    from peft import get_peft_model

    return get_peft_model(model, peft_lora_config(lora, model, "CAUSAL_LM", "all-linear", trainable_tokens))


UNSLOTH_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]  # Llama's linear layers


def load_unsloth_causal_lm(source: str, dtype: torch.dtype, max_length: int, quantize: str | None = None) -> nn.Module:
    """A causal LM through Unsloth's loader (its fast kernels; CUDA only, imported here only), in 4 or 8 bits for QLoRA."""
    from unsloth import FastLanguageModel

    model, _ = FastLanguageModel.from_pretrained(source, dtype=dtype, max_seq_length=max_length,
                                                 load_in_4bit=quantize == "4bit", load_in_8bit=quantize == "8bit")
    return model


def prepare_quantized(model: nn.Module, gradient_checkpointing: bool) -> nn.Module:
    """A bitsandbytes-quantized base made ready for LoRA training (PEFT's recipe: norms in fp32, input gradients on)."""
    from peft import prepare_model_for_kbit_training

    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)


def add_unsloth_lora(model: nn.Module, lora: LoraConfig, gradient_checkpointing: bool) -> nn.Module:
    """Unsloth's LoRA on a model it loaded. Its get_peft_model takes no trainable token indices, so added special
    tokens keep their initial embedding rows there; LoRA adapts around them."""
    from unsloth import FastLanguageModel

    return FastLanguageModel.get_peft_model(
        model, r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=lora.target_modules or UNSLOTH_TARGETS,
        use_rslora=lora.use_rslora, use_gradient_checkpointing="unsloth" if gradient_checkpointing else False)


def is_peft(module: nn.Module) -> bool:
    from peft import PeftModel

    return isinstance(module, PeftModel)


def save_adapter(encoder: nn.Module, directory: str | Path, save_embedding_layers: bool | str = "auto") -> None:
    """Write the adapter weights (safetensors) and adapter_config.json of a PeftModel (with the whole embedding
    matrices only where PEFT's "auto" finds them resized and nothing else carries the new rows)."""
    encoder.save_pretrained(str(directory), safe_serialization=True, save_embedding_layers=save_embedding_layers)


def load_adapter(base: nn.Module, directory: str | Path, adapter_name: str = "default", trainable: bool = False) -> nn.Module:
    """A base encoder with the adapters saved in `directory` loaded (safetensors): the one at its root as
    `adapter_name`, and each adapter PEFT saved in a subfolder (a model holding several) under that folder's name."""
    directory = Path(directory)
    found = [(adapter_name, directory)] if (directory / "adapter_config.json").is_file() else []
    found += [(sub.name, sub) for sub in sorted(directory.iterdir()) if (sub / "adapter_config.json").is_file()]
    if not found:
        raise FileNotFoundError(f"{directory}: no adapter_config.json, neither at its root nor in a subfolder")
    encoder = base
    for name, path in found:
        encoder = load_named_adapter(encoder, path, name, trainable)
    return encoder


def load_named_adapter(encoder: nn.Module, directory: str | Path, adapter_name: str, trainable: bool = False) -> nn.Module:
    """Load one saved adapter as `adapter_name`: onto a plain encoder (returns a PeftModel) or beside the
    adapters of a PeftModel (returns it; the active adapter is unchanged)."""
    from peft import PeftModel

    if is_peft(encoder):
        encoder.load_adapter(str(directory), adapter_name=adapter_name, is_trainable=trainable)
        return encoder
    return PeftModel.from_pretrained(encoder, str(directory), adapter_name=adapter_name, is_trainable=trainable)


def combine_adapters(encoder: nn.Module, adapters: list[str], weights: list[float], combination: str,
                     adapter_name: str = "default", density: float | None = None) -> None:
    """Fold `adapters` into one new adapter with PEFT's add_weighted_adapter ("linear" and "ties" need equal ranks,
    "ties" keeps the `density` share of each update's largest entries and resolves sign conflicts; "cat" concatenates:
    rank = sum); the new adapter becomes the only one, active and frozen."""
    encoder.add_weighted_adapter(adapters, weights, adapter_name=adapter_name, combination_type=combination,
                                 density=density)
    fused = encoder.peft_config[adapter_name]
    if fused.use_rslora:
        # PEFT copies the first adapter's use_rslora while setting lora_alpha = r, which would scale the
        # combined update by sqrt(r) instead of 1: the weights already carry each adapter's own scaling.
        from dataclasses import replace

        encoder.peft_config[adapter_name] = replace(fused, use_rslora=False)
        for layer in lora_layers(encoder):
            if adapter_name in layer.scaling:
                layer.scaling[adapter_name] = 1.0
                layer.use_rslora[adapter_name] = False
    encoder.set_adapter(adapter_name)
    for name in adapters:
        encoder.delete_adapter(name)
    freeze(encoder)


def activate_adapters(encoder: nn.Module, adapters: list[str]) -> None:
    """Make several adapters of a PeftModel active at once (their LoRA outputs add up); all stay frozen."""
    encoder.base_model.set_adapter(list(adapters), inference_mode=True)


def lora_layers(encoder: nn.Module) -> list[nn.Module]:
    """Every LoRA-adapted layer (each holds per-adapter `lora_A`, `lora_B` and a `scaling` dict)."""
    from peft.tuners.lora import LoraLayer

    return [module for module in encoder.modules() if isinstance(module, LoraLayer)]


def freeze(module: nn.Module) -> None:
    """Make every parameter of `module` non-trainable."""
    for p in module.parameters():
        p.requires_grad_(False)


def unfreeze_base(model: nn.Module) -> list[nn.Parameter]:
    """Make every frozen parameter of a model (a LoRA base, fused adapters) trainable; returns those newly unfrozen."""
    newly = [p for p in model.parameters() if not p.requires_grad]
    for p in newly:
        p.requires_grad_(True)
    return newly


@contextlib.contextmanager
def adapter_merged(model: nn.Module) -> Iterator[None]:
    """Within the block, a PeftModel's adapters are folded into its weights (one matmul per layer instead of three:
    greedy generation on CPU runs ~2.5x faster), and taken out again after; sharded (ZeRO-3) weights stay as they are.
    Nested in a block that merged them already, it leaves them to that block."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    if not is_peft(model) or any(hasattr(p, "ds_id") for p in model.parameters()):
        yield
        return
    if any(isinstance(m, BaseTunerLayer) and m.merged for m in model.modules()):
        yield
        return
    with torch.no_grad():
        model.merge_adapter()
    try:
        yield
    finally:
        with torch.no_grad():
            model.unmerge_adapter()


@torch.no_grad()
def merged_model(encoder: nn.Module) -> nn.Module:
    """A plain model with the LoRA update folded into its weights (an encoder after unfreezing, a causal LM for export)."""
    return encoder.merge_and_unload() if is_peft(encoder) else encoder
