"""A trained model on disk and back, for every family: the family writes its weights (safetensors), this
module writes the tokenizer and the metadata (ner_ray.artifacts names the files) and rebuilds the family
from them. Nothing is unpickled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ner_ray.artifacts import MODEL_META, TOKENIZER_DIR, read_model_meta, write_json
from ner_ray.config import StudyConfig
from ner_ray.credentials import redact_tree
from ner_ray.registry import FAMILIES


def save_model(model: Any, family: Any, directory: str | Path, precision: str) -> Path:
    """Write a trained model so that `load_model` rebuilds it with identical predictions; `precision` is the
    one it trained (and was evaluated) in, which evaluation on the saved model uses too."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    saved = family.save(model, directory)
    family.tokenizer.save_pretrained(directory / TOKENIZER_DIR)
    meta = {"family": family.name, "types": list(family.types), "precision": precision,
            "config": redact_tree(family.config.model_dump(mode="json")), **saved}
    write_json(directory / MODEL_META, meta)
    return directory


@dataclass
class LoadedModel:
    """A saved model, rebuilt: its family (config, types, tokenizer), the model in eval mode, its metadata."""

    family: Any
    model: Any
    meta: dict[str, Any]

    @property
    def precision(self) -> str:
        return self.meta.get("precision", "fp32")


def load_family(directory: str | Path) -> tuple[Any, dict[str, Any]]:
    """(the family, the metadata) of the model `save_model` wrote in `directory`, its weights not loaded (an engine
    that loads them itself, vLLM, needs the family's tokenizer, prompts and decoding only)."""
    directory = Path(directory)
    meta = read_model_meta(directory)
    family_cls = FAMILIES.get(meta["family"])
    if not (directory / TOKENIZER_DIR).is_dir():
        raise FileNotFoundError(f"{directory} is no saved ner_ray model: {TOKENIZER_DIR}/ is missing")
    family = family_cls(StudyConfig.model_validate(meta["config"]), tuple(meta["types"]),
                        family_cls.load_tokenizer(directory / TOKENIZER_DIR))
    return family, meta


def load_model(directory: str | Path) -> LoadedModel:
    """The model `save_model` wrote in `directory`."""
    family, meta = load_family(directory)
    return LoadedModel(family, family.load(Path(directory), meta), meta)
