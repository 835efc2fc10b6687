"""Family fusion: trained LoRA adapters (e.g. one per corpus) on one base encoder, combined, under a new head.

`linear` / `cat` fold the adapters into one frozen adapter with PEFT's add_weighted_adapter (saved like
any LoRA model); `learned` keeps every adapter active and frozen and trains, with the head, a softmax
over the adapters in each LoRA-adapted layer that weights their outputs (`AdapterMixer`).
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ner_ray.artifacts import MODEL_DIR, MODEL_META, read_model_meta, run_dir
from ner_ray.families import peft as peft_seam
from ner_ray.families.models import resolve_model
from ner_ray.families.tagger import ADAPTER_DIR, EncoderFamily, TaggerModel

log = logging.getLogger(__name__)

SOURCE_PREFIX = "fusion_"  # source adapter i is loaded as "fusion_i"; a linear/cat result is "default"
HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass(frozen=True)
class SourceAdapter:
    """One entry of model.fusion.adapters, resolved: where its PEFT adapter lies and what it was trained for."""

    entry: str  # as written in model.fusion.adapters
    location: str  # PEFT adapter folder (or hub id)
    types: tuple[str, ...] = ()  # entity types of the model it was exported with (empty: a bare adapter)
    base: str | None = None  # model.name it was trained on (None: unknown)


def source_names(count: int) -> list[str]:
    """PEFT adapter names of the sources, in model.fusion.adapters order."""
    return [f"{SOURCE_PREFIX}{i}" for i in range(count)]


def resolve_adapter(entry: str, config) -> SourceAdapter:
    """A fusion adapter entry → its adapter folder.

    An experiment name is looked up as `train.output_dir/<name>/seed<train.seed>/model` (a repeat fuses
    the adapters of its own seed), then `train.output_dir/<name>/model`. A path may be a saved model folder
    (ner_ray.json + adapter/) or a bare PEFT adapter folder; an `org/name`
    that is no local path is passed to PEFT as a hub id.
    """
    if "/" in entry or Path(entry).exists():
        candidates = [Path(entry)]
    else:
        root = Path(config.train.output_dir)
        candidates = [run_dir(root, entry, config.train.seed) / MODEL_DIR, run_dir(root, entry) / MODEL_DIR]
    for folder in candidates:
        if (folder / MODEL_META).is_file():
            meta = read_model_meta(folder)
            if meta.get("weights") != "adapter":
                raise ValueError(f"model.fusion.adapters: {entry!r} ({folder}) holds full encoder weights, not a LoRA "
                                 "adapter; fuse experiments trained with a model.lora block")
            return SourceAdapter(entry, str(folder / ADAPTER_DIR), tuple(meta["types"]), meta["config"]["model"]["name"])
        if (folder / "adapter_config.json").is_file():
            return SourceAdapter(entry, str(folder))
    if "/" in entry and not Path(entry).exists() and HUB_ID.match(entry):
        return SourceAdapter(entry, entry)
    tried = ", ".join(str(c) for c in candidates)
    raise ValueError(f"model.fusion.adapters: no trained adapter for {entry!r} (looked for {MODEL_META} or "
                     f"adapter_config.json in {tried}); train that experiment first (ner-ray train STUDY.yaml "
                     "--experiment NAME) or give the path of a saved model or PEFT adapter folder")


class AdapterMixer(nn.Module):
    """Learned fusion weights: for every LoRA-adapted layer, a softmax over the adapters it holds.

    What is learned is `logits` (layers x adapters) and nothing else. Each forward sets, in every
    adapted layer l, adapter a's LoRA scaling to `softmax(logits[l])[a] * s_a` (s_a = its trained
    alpha / r), so the layer computes W x + sum_a w_la s_a B_a A_a x with sum_a w_la = 1.
    """

    def __init__(self, layers: list[nn.Module], adapters: list[str], weights: list[float]):
        super().__init__()
        self.layers = layers  # a plain list: the layers belong to the encoder, not to this module
        self.adapters = list(adapters)
        present = torch.tensor([[a in layer.scaling for a in adapters] for layer in layers], dtype=torch.bool)
        base = [[float(layer.scaling.get(a, 0.0)) for a in adapters] for layer in layers]
        self.register_buffer("present", present, persistent=False)
        self.register_buffer("base_scaling", torch.tensor(base), persistent=False)
        initial = torch.tensor([math.log(w / sum(weights)) for w in weights])
        self.logits = nn.Parameter(initial.expand(len(layers), -1).clone())

    def mixing_weights(self) -> torch.Tensor:
        """The current softmax weights (layers x adapters); an adapter a layer lacks gets 0."""
        return self.logits.masked_fill(~self.present, float("-inf")).softmax(-1)

    def forward(self) -> torch.Tensor:
        # A module call (not a plain method) so that DeepSpeed ZeRO-3 gathers `logits` first.
        scaling = self.mixing_weights() * self.base_scaling
        for i, layer in enumerate(self.layers):
            for j, adapter in enumerate(self.adapters):
                if adapter in layer.scaling:
                    layer.scaling[adapter] = scaling[i, j]  # LoRA multiplies its output by it: gradients reach logits
        return scaling


class FusionTagger(TaggerModel):
    """The encoder tagger whose forward first sets the learned mixing weights (when there is a mixer)."""

    def __init__(self, encoder: nn.Module, num_labels: int, dropout: float, mixer: AdapterMixer | None = None):
        super().__init__(encoder, num_labels, dropout)
        self.mixer = mixer

    def forward(self, input_ids, attention_mask, token_type_ids=None, **kwargs):
        if self.mixer is not None:
            self.mixer()
        return super().forward(input_ids, attention_mask, token_type_ids, **kwargs)

    def activation_checkpointing_enable(self, activation_checkpointing_kwargs: dict | None = None, **options) -> None:
        kwargs = dict(activation_checkpointing_kwargs or {})
        if self.mixer is not None:
            # Reentrant checkpointing recomputes a layer after the mixing weights' graph has been freed.
            kwargs["use_reentrant"] = False
        super().activation_checkpointing_enable(kwargs or None, **options)


class FusionTagging(EncoderFamily):
    """Token classification on fused adapters: the adapters stay frozen; the new head (over the study's
    entity types) trains, and under `learned` the mixing weights too."""

    name = "fusion"

    @property
    def weights(self) -> list[float]:
        """model.fusion.weights, or 1/n each (the adapters' average update)."""
        fusion = self.config.model.fusion
        return list(fusion.weights) if fusion.weights is not None else [1.0 / len(fusion.adapters)] * len(fusion.adapters)

    def build(self) -> FusionTagger:
        from transformers import AutoModel

        fusion = self.config.model.fusion
        sources = [resolve_adapter(entry, self.config) for entry in fusion.adapters]
        self._check_sources(sources)
        names = source_names(len(sources))
        encoder = AutoModel.from_pretrained(resolve_model(self.config.model.name), add_pooling_layer=False)
        for name, source in zip(names, sources):
            try:
                encoder = peft_seam.load_named_adapter(encoder, source.location, name)
            except (OSError, ValueError) as err:
                if Path(source.location).exists():
                    raise
                raise ValueError(f"model.fusion.adapters: {source.entry!r} is no local folder, and loading it as a "
                                 f"hub adapter failed: {err}") from err
        self._check_combinable(encoder, sources, names)
        if fusion.combination != "learned":
            peft_seam.combine_adapters(encoder, names, self.weights, fusion.combination)
        return self.build_on(encoder)

    def build_on(self, encoder: nn.Module) -> FusionTagger:
        """The tagger around fused adapters: freshly built, or restored by `load`."""
        peft_seam.freeze(encoder)
        mixer = None
        if self.config.model.fusion.combination == "learned":
            names = source_names(len(self.config.model.fusion.adapters))
            peft_seam.activate_adapters(encoder, names)
            mixer = AdapterMixer(peft_seam.lora_layers(encoder), names, self.weights)
        return FusionTagger(encoder, len(self.labels.labels), self.config.model.head.dropout, mixer)

    def _check_sources(self, sources: list[SourceAdapter]) -> None:
        ours = resolve_model(self.config.model.name)
        for source in sources:
            if source.base is not None and resolve_model(source.base) != ours:
                raise ValueError(f"model.fusion.adapters: {source.entry!r} was trained on model {source.base!r}, but "
                                 f"model.name is {self.config.model.name!r}; fuse adapters of the same base model")
            unseen = sorted(set(source.types) - set(self.types))
            if unseen:
                # The head is trained on the study's corpus, so it can only learn the types that corpus annotates.
                log.warning("fusion: adapter %r was trained on types %s that the training corpus %r does not annotate; "
                            "the head predicts only %s", source.entry, ", ".join(unseen), self.config.data.corpus,
                            ", ".join(self.types))

    def _check_combinable(self, encoder: nn.Module, sources: list[SourceAdapter], names: list[str]) -> None:
        """Adapters fusion cannot combine (DoRA; for PEFT's add_weighted_adapter: unequal ranks under linear,
        different layers), named in our terms."""
        combination = self.config.model.fusion.combination
        configs = [encoder.peft_config[name] for name in names]
        listed = ", ".join(f"{s.entry!r} (r={c.r})" for s, c in zip(sources, configs))
        if any(c.use_dora for c in configs):
            raise ValueError(f"model.fusion.adapters: DoRA adapters (model.lora.use_dora) cannot be fused: PEFT merges "
                             f"no magnitude vectors and their outputs do not add up ({listed})")
        if combination == "learned":
            return
        if combination == "linear" and len({c.r for c in configs}) > 1:
            raise ValueError(f"model.fusion.combination linear needs adapters of equal rank, got {listed}; "
                             "use cat (rank = the sum) or learned")
        if len({json.dumps(c.layers_to_transform) for c in configs}) > 1:
            raise ValueError(f"model.fusion.combination {combination}: the adapters adapt different layers "
                             "(model.lora.layers_to_transform) and PEFT keeps only the first adapter's; use learned")
