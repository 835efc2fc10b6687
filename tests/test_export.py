"""Save/load round trip of trained encoder models (train/export.py) on a tiny BERT built from a config.

The folder holds safetensors, JSON and tokenizer files only (nothing to unpickle); a LoRA model is
saved as its adapter alone; the head comes back bit for bit; a LoRA model whose base was unfrozen is
saved merged; an incomplete folder is a clear error.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from test_families import build_tiny_bert, predicted_ids, study

from ner_ray.families.peft import unfreeze_base
from ner_ray.inference.model_files import load_model, save_model
from ner_ray.train.data import prepare_data

ALLOWED_SUFFIXES = {".safetensors", ".json", ".txt", ".md"}  # .txt: vocab; .md: PEFT's adapter card
PICKLE_MAGIC = (b"\x80", b"PK")  # a pickle protocol header, or torch.save's zip container (text never starts so)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: more threads only add overhead
    yield build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))
    torch.set_num_threads(threads)


def trained_like(tiny: Path, family_name: str, lora: dict | None, **model):
    """(family, model, dev examples) with random non-zero adapter and head weights (as after training)."""
    from transformers import AutoTokenizer

    config = study(tiny, family_name, lora, **model)
    data = prepare_data(config, AutoTokenizer.from_pretrained(tiny))
    family = data.family
    torch.manual_seed(1)
    net = family.build()
    with torch.no_grad():
        for name, param in net.named_parameters():
            if param.requires_grad and ("lora_" in name or not name.startswith("encoder.")):
                param.normal_(0, 0.5)  # LoRA B starts at zero: make the adapter matter
    return family, net.eval(), data.dev


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


@pytest.mark.parametrize("family_name,lora", [("token_cls", {"r": 4}), ("crf", None), ("multitask", {"r": 4})],
                         ids=["token_cls-lora", "crf-full", "multitask-lora"])
def test_folder_holds_safetensors_json_and_tokenizer_only(tiny, tmp_path, family_name, lora):
    family, net, _ = trained_like(tiny, family_name, lora)
    folder = save_model(net, family, tmp_path / "model", "fp32")
    files = [f for f in folder.rglob("*") if f.is_file()]
    assert {f.name for f in files} >= {"ner_ray.json", "head.safetensors"}
    assert {f.suffix for f in files} <= ALLOWED_SUFFIXES, sorted(f.name for f in files)
    for f in files:
        if f.suffix == ".safetensors":
            with safe_open(f, framework="pt") as weights:
                assert list(weights.keys())
        else:
            assert not f.read_bytes().startswith(PICKLE_MAGIC), f
    assert (folder / "tokenizer" / "tokenizer.json").is_file()


def test_lora_saves_the_adapter_only(tiny, tmp_path):
    lora_family, lora_net, _ = trained_like(tiny, "token_cls", {"r": 4})
    full_family, full_net, _ = trained_like(tiny, "token_cls", None)
    lora_dir = save_model(lora_net, lora_family, tmp_path / "lora", "fp32")
    full_dir = save_model(full_net, full_family, tmp_path / "full", "fp32")
    assert json.loads((lora_dir / "ner_ray.json").read_text())["weights"] == "adapter"
    assert json.loads((full_dir / "ner_ray.json").read_text())["weights"] == "encoder"
    assert (lora_dir / "adapter").is_dir() and not (lora_dir / "encoder").exists()
    assert folder_bytes(lora_dir / "adapter") * 50 < folder_bytes(full_dir / "encoder")


@pytest.mark.parametrize("family_name,lora", [("token_cls", {"r": 4}), ("crf", {"r": 4}), ("multitask", None)],
                         ids=["token_cls-lora", "crf-lora", "multitask-full"])
def test_head_and_predictions_come_back_exactly(tiny, tmp_path, family_name, lora):
    family, net, dev = trained_like(tiny, family_name, lora)
    save_model(net, family, tmp_path / "model", "fp32")
    loaded = load_model(tmp_path / "model")
    ours, theirs = net.head_state_dict(), loaded.model.head_state_dict()
    assert ours.keys() == theirs.keys() and ours
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert loaded.family.config == family.config and not loaded.model.training
    assert predicted_ids(loaded.family, loaded.model, dev) == predicted_ids(family, net, dev)


def test_unfrozen_lora_is_saved_merged_with_the_same_predictions(tiny, tmp_path):
    family, net, dev = trained_like(tiny, "token_cls", {"r": 4})
    before = predicted_ids(family, net, dev)
    unfreeze_base(net)  # as UnfreezeCallback does for the final epoch
    folder = save_model(net, family, tmp_path / "model", "fp32")
    assert json.loads((folder / "ner_ray.json").read_text())["weights"] == "encoder"
    loaded = load_model(folder)
    assert not any("lora_" in n for n, _ in loaded.model.named_parameters())
    assert predicted_ids(loaded.family, loaded.model, dev) == before


@pytest.mark.parametrize("missing", ["head.safetensors", "ner_ray.json", "tokenizer"])
def test_incomplete_folder_is_a_clear_error(tiny, tmp_path, missing):
    import shutil

    family, net, _ = trained_like(tiny, "token_cls", {"r": 4})
    folder = save_model(net, family, tmp_path / "model", "fp32")
    shutil.rmtree(folder / missing) if (folder / missing).is_dir() else (folder / missing).unlink()
    with pytest.raises(FileNotFoundError, match=f"{missing}/? is missing"):
        load_model(folder)
