"""`ner-ray serve STUDY_DIR --top-k N`: the N best trials' LoRA adapters on one base model, each served under its own
model id `<study>:<trial_id>` (a request may name it so or by the bare trial id; none: the best). The trials must
differ in their adapters only: one base model, family, entity types, prompt format and window length, no token head
(whose weights are not an adapter's). The hf engine holds them all in one PEFT model and switches per engine call.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ner_ray.artifacts import RESULTS, read_model_meta

# what every served adapter's model must share with the best one's (dotted keys of its saved config), beside its family
SHARED = ("model.name", "model.family", "model.span_gen", "model.instruct", "model.quantize", "model.backend", "data.max_length",
          "data.merge_types")


def top_trials(study_dir: str | Path, top_k: int) -> dict[str, Path]:
    """{model id: model folder} of the `top_k` best completed trials of a study (best first), checked to share one
    base model; a ValueError naming the trial and the key otherwise."""
    path = Path(study_dir) / RESULTS
    if not path.is_file():
        raise FileNotFoundError(f"--top-k serves a study's trials: {path} is missing (give a study folder)")
    results = json.loads(path.read_text(encoding="utf-8"))
    metric, mode = results["metric"], results.get("mode", "max")
    done = [t for t in results.get("trials") or []
            if t.get("status") == "completed" and t.get(metric) is not None and t.get("model_path")]
    if len(done) < top_k:
        raise ValueError(f"--top-k {top_k}: {path} has {len(done)} completed trial(s) with {metric} and a saved model")
    ranked = sorted(done, key=lambda t: t[metric], reverse=mode == "max")[:top_k]
    models = {f"{results['study']}:{t['trial_id']}": Path(t["model_path"]) for t in ranked}
    check_one_base(models)
    return models


def check_one_base(models: dict[str, Path]) -> None:
    """Every model a LoRA adapter without a token head, sharing SHARED and the entity types with the first."""
    metas = {model_id: read_model_meta(folder) for model_id, folder in models.items()}
    (best_id, best), *_ = metas.items()
    for model_id, meta in metas.items():
        if meta.get("weights") != "adapter":
            raise ValueError(f"--top-k serves LoRA adapters on one base model: {model_id} ({models[model_id]}) saved "
                             f"{meta.get('weights') or 'a whole model'}, not an adapter")
        if (meta["config"]["model"].get("span_gen") or {}).get("token_head"):
            raise ValueError(f"--top-k: {model_id} has a token head (model.span_gen.token_head), which is no part of "
                             "an adapter; serve it alone")
        for key in ("types", *SHARED):
            if lookup(meta, key) != lookup(best, key):
                raise ValueError(f"--top-k: {model_id} has {key} = {lookup(meta, key)!r}, the best trial {best_id} "
                                 f"{lookup(best, key)!r}: adapters served together share it")


def lookup(meta: dict[str, Any], key: str) -> Any:
    """A saved model's metadata value: `types`, or a dotted key of its config."""
    if key == "types":
        return meta["types"]
    value: Any = meta["config"]
    for part in key.split("."):
        value = (value or {}).get(part)
    return value


def resolve_model(requested: str | None, served: list[str]) -> str | None:
    """The served id a request's `model` names (None: the first, the best): the id itself, or the part after its
    colon (a bare adapter or experiment name) where that names one model; None when it names none."""
    if requested is None:
        return served[0]
    if requested in served:
        return requested
    bare = [model_id for model_id in served if model_id.rpartition(":")[2] == requested]
    return bare[0] if len(bare) == 1 else None
