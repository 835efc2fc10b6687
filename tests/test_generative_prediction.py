"""A generative family's prediction outside the Trainer (`predict_rows`) does per prediction what it can, not per
batch or per token: no teacher-forced forward where only the greedy rows are read, the adapter merged once for all
batches, and under autocast each frozen weight cast once instead of at every generated token; the greedy rows stay
those of the per-batch path. Tiny config-built Llama, offline."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import torch
from torch import nn

from ner_ray.config import StudyConfig
from ner_ray.data.document import Document
from ner_ray.families.generative import IGNORE, weights_cast_once
from ner_ray.inference.encode import encode_documents, in_length_order
from ner_ray.inference.predict import predict_rows
from ner_ray.registry import FAMILIES

SENTENCES = ["Cisplatin caused renal failure .", "Lithium tremor was seen .", "No effect was seen .",
             "Heparin induced thrombocytopenia in two patients ."]


@pytest.fixture(scope="module")
def tiny(tiny_llama) -> Path:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tiny_llama
    torch.set_num_threads(threads)


def span_gen(tiny: Path, **options):
    config = StudyConfig.model_validate({
        "data": {"corpus": "demo", "max_length": 160},
        "model": {"name": str(tiny), "family": "span_gen", "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
                  "span_gen": {"max_new_tokens": 8, **options}},
        "train": {"seed": 0, "precision": "fp32"},
    })
    family = FAMILIES.get("span_gen")(config, ("Chemical", "Disease"))
    torch.manual_seed(0)
    model = family.build().eval()
    for name, parameter in model.named_parameters():  # a LoRA that changes the outputs (B starts at zero)
        if "lora_B" in name:
            nn.init.normal_(parameter, std=0.5)
    return family, model


def bare_examples(family):
    documents = [Document(f"d{i}", text) for i, text in enumerate(SENTENCES)]
    return encode_documents(documents, family, training=False)


def counting(monkeypatch, owner, name: str) -> list[int]:
    calls = [0]
    original = getattr(owner, name)

    def counted(*args, **kwargs):
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


def test_a_greedy_prediction_skips_the_teacher_forced_forward_and_merges_the_adapter_once(tiny, monkeypatch):
    family, model = span_gen(tiny)
    examples = bare_examples(family)
    order = in_length_order(examples, family)
    per_batch = [None] * len(examples)  # the rows as the Trainer's evaluation makes them: the loss forward, then decode
    with torch.no_grad():
        for start in range(0, len(examples), 2):
            positions = order[start:start + 2]
            batch = family.collate([examples[i].features for i in positions])
            for i, row in zip(positions, family.decode(model, family.loss(model, batch)[1], batch)[1]):
                per_batch[i] = row
    forwards = counting(monkeypatch, family, "loss")
    merges = counting(monkeypatch, type(model.base_model), "merge_adapter")
    rows = predict_rows(family, model, examples, 2)
    assert forwards[0] == 0 and merges[0] == 1  # two batches, one merge, no teacher forcing
    assert all(family.generated(row) and (row[0] == IGNORE).all() for row in rows)
    assert all(torch.equal(row[1], expected) for row, expected in zip(rows, per_batch))
    assert not any(getattr(m, "merged", False) for m in model.modules())  # unmerged after the prediction


def test_the_token_head_keeps_the_forward_it_reads(tiny, monkeypatch):
    family, model = span_gen(tiny, token_head=True)
    forwards = counting(monkeypatch, family, "loss")
    rows = predict_rows(family, model, bare_examples(family), 2)
    assert forwards[0] == 2 and all(len(row) == 3 for row in rows)


def aten_casts(linear: nn.Linear, x: torch.Tensor, once: bool) -> tuple[int, torch.Tensor]:
    block = weights_cast_once(linear) if once else contextlib.nullcontext()
    with torch.autocast("cpu", dtype=torch.bfloat16), block, torch.no_grad(), torch.profiler.profile() as profile:
        outputs = [linear(x) for _ in range(3)]
    return sum(e.count for e in profile.key_averages() if e.key == "aten::_to_copy"), outputs[-1]


def test_under_autocast_a_frozen_weight_is_cast_once_per_block_not_at_every_call():
    torch.manual_seed(0)
    linear = nn.Linear(16, 8).requires_grad_(False)
    x = torch.randn(2, 16)
    every_call, expected = aten_casts(linear, x, once=False)
    once, output = aten_casts(linear, x, once=True)
    assert every_call - once == 4  # weight and bias: 3 casts each without the block, 1 each within it
    assert torch.equal(output, expected)
    assert not linear.weight.requires_grad and not linear.bias.requires_grad
