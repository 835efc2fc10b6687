"""Family span_gen on a tiny Llama (random weights, SmolLM2's tokenizer) and the demo corpus, offline.

Tokenisation (prompt masked, completion and eos labelled, the special tokens single ids), a loss that falls,
generation the parser reads, LoRA training only the adapter and the new tokens' rows, a model trained to copy
the gold completions of a few sentences scoring F1 1.0 greedy, teacher-forced and through `ner-ray evaluate`
alike, and the merged export generating what adapter + base generate.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_llama import build_tiny_llama

from ner_ray.cli import main
from ner_ray.config import StudyConfig
from ner_ray.data.document import Document, Span
from ner_ray.data.pubtator import write_pubtator
from ner_ray.families.generative import IGNORE
from ner_ray.inference.decode import predicted_documents
from ner_ray.inference.encode import encode_documents
from ner_ray.inference.evaluate import evaluate, score_documents
from ner_ray.inference.model_files import load_model, save_model
from ner_ray.inference.predict import document_predictor, predict_rows
from ner_ray.registry import FAMILIES

SENTENCES = [  # (text, [(start, end, type)])
    ("Cisplatin caused renal failure .", [(0, 9, "Chemical"), (17, 30, "Disease")]),
    ("Lithium tremor was seen .", [(0, 7, "Chemical"), (8, 14, "Disease")]),
    ("No effect was seen .", []),
    ("Heparin induced thrombocytopenia in two patients .", [(0, 7, "Chemical"), (16, 32, "Disease")]),
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))
    torch.set_num_threads(threads)


def study(model_dir: Path, lora: dict | None = None, **span_gen) -> StudyConfig:
    return StudyConfig.model_validate({
        "data": {"corpus": "demo", "max_length": 160},
        "model": {"name": str(model_dir), "family": "span_gen", "lora": lora, "span_gen": span_gen},
        "train": {"seed": 0, "precision": "fp32"},
    })


def documents() -> list[Document]:
    return [Document(f"d{i}", text, [Span(s, e, t) for s, e, t in spans]) for i, (text, spans) in enumerate(SENTENCES)]


def family_on(tiny: Path, lora: dict | None = None, **span_gen):
    return FAMILIES.get("span_gen")(study(tiny, lora, **span_gen), ("Chemical", "Disease"))


def test_tokenisation_masks_the_prompt_and_labels_completion_and_eos(tiny):
    family = family_on(tiny)
    tok = family.tokenizer
    ids = family.special_token_ids()
    assert len(set(ids)) == 5 and all(len(tok("<NER> <TAG>", add_special_tokens=False)["input_ids"]) <= 3 for _ in ids)
    example = encode_documents(documents()[:1], family, training=True)[0]
    f = example.features
    prompt, labels = f["input_ids"][: f["prompt_length"]], f["labels"]
    assert labels[: f["prompt_length"]] == [IGNORE] * f["prompt_length"]
    target = labels[f["prompt_length"]:]
    assert target[-1] == tok.eos_token_id and target == f["input_ids"][f["prompt_length"]:]
    assert tok.decode(target[:-1]) == " 0-9 ; 17-30"
    assert tok.convert_tokens_to_ids("<TAG>") == prompt[-1] and tok.convert_tokens_to_ids("<NER>") in prompt
    assert tok.decode(prompt, skip_special_tokens=False).endswith("<NER> Cisplatin caused renal failure . <TAG>")


def train_steps(family, model, examples, steps: int, lr: float) -> list[float]:
    batch = family.collate([e.features for e in examples])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    losses = []
    model.train()
    for _ in range(steps):
        loss, _ = family.loss(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()))
    return losses


@pytest.fixture(scope="module")
def copier(tiny):
    """The tiny model fully fine-tuned until it writes the gold completions of SENTENCES."""
    family = family_on(tiny)
    model = family.build()
    examples = encode_documents(documents(), family, training=True)
    torch.manual_seed(0)
    losses = train_steps(family, model, examples, 120, 3e-3)
    return family, model.eval(), losses


def test_the_loss_is_finite_and_falls(copier):
    _, _, losses = copier
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0] / 10


def test_a_model_that_copies_the_gold_scores_one_greedy_teacher_forced_and_saved(copier, tmp_path):
    family, model, _ = copier
    gold = documents()
    scores, _ = evaluate(document_predictor(family, model, 4), gold, family.extra_metrics, typed=False)
    assert scores["f1"] == 1.0 and scores["tp"] == 6
    assert "fast_f1" not in scores  # the model read the text alone: no gold, so nothing to teacher-force
    assert scores["invalid_rate"] == scores["hallucination_rate"] == scores["duplicate_rate"] == 0.0
    model_dir = tmp_path / "model"
    save_model(model, family, model_dir, "fp32")
    assert json.loads((model_dir / "ner_ray.json").read_text())["weights"] == "lm"
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for split in ("train", "test"):  # the sentences as a PubTator corpus, for `ner-ray evaluate`
        write_pubtator(corpus / f"{split}.txt", [Document(str(9100 + i), d.text, d.spans) for i, d in enumerate(gold)])
    assert main(["evaluate", str(model_dir), str(corpus), "--split", "test", "--out", str(tmp_path / "eval")]) == 0
    evaluated = json.loads((tmp_path / "eval" / "scores.json").read_text())
    assert evaluated["test_f1"] == 1.0 and evaluated["test"]["tp"] == 6 and evaluated["test"]["per_type"].keys() == {"Entity"}


def test_fast_decoding_alone_leaves_the_greedy_rows_empty(copier):
    family, model, _ = copier
    examples = encode_documents(documents(), family, training=False)
    family.set_full_decoding(False)
    try:
        rows = predict_rows(family, model, examples, 4)
    finally:
        family.set_full_decoding(True)
    assert all(not family.generated(row) for row in rows)
    # dev windows carry their gold (for the dev loss), so the teacher-forced parse reads the copier's gold back
    predicted = predicted_documents(family, documents(), examples, rows)
    assert score_documents(documents(), predicted, typed=False)["f1"] == 1.0


def test_generation_returns_text_the_parser_reads_without_constraint(tiny):
    family = family_on(tiny, constrained=False, max_new_tokens=8)
    model = family.build().eval()
    examples = encode_documents(documents(), family, training=False)
    rows = predict_rows(family, model, examples, 4)
    for example, row in zip(examples, rows):
        assert family.generated(row)
        parsed = family.parse(example, row[1])  # random weights: garbage, counted, never raised
        assert parsed.n_items >= len(parsed.spans)
        assert (torch.as_tensor(row[1]) != IGNORE).sum() <= 8


def test_lora_trains_only_the_adapter_and_the_new_tokens(tiny, tmp_path):
    family = family_on(tiny, {"r": 4, "alpha": 8, "dropout": 0.0})
    model = family.build()
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or "trainable_tokens" in n for n in trainable)
    assert any("trainable_tokens" in n for n in trainable)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    examples = encode_documents(documents(), family, training=True)
    losses = train_steps(family, model, examples, 10, 1e-2)
    assert losses[-1] < losses[0]
    changed = {n for n, p in model.named_parameters() if not torch.equal(before[n], p.detach())}
    assert changed and changed <= set(trainable)
    save_model(model, family, tmp_path, "fp32")
    assert not (tmp_path / "lm").exists()
    embedding_bytes = model.config.vocab_size * model.config.hidden_size * 4
    assert (tmp_path / "adapter" / "adapter_model.safetensors").stat().st_size < embedding_bytes / 20  # rows, not the matrix
    loaded = load_model(tmp_path)
    rows = [predict_rows(f, m, examples, 4) for f, m in ((family, model.eval()), (loaded.family, loaded.model))]
    assert all(torch.equal(a[1], b[1]) for a, b in zip(*rows))


def test_an_output_cut_by_max_new_tokens_loses_its_last_item_and_counts_as_truncated(tiny):
    family = family_on(tiny)
    example = encode_documents(documents()[:1], family, training=False)[0]
    tok = family.tokenizer
    cut = torch.tensor(tok(" 0-9 ; 17-3", add_special_tokens=False)["input_ids"])
    whole = torch.tensor(tok(" 0-9 ; 17-30", add_special_tokens=False)["input_ids"] + [tok.eos_token_id])
    fast = torch.full((1,), IGNORE)
    parsed, truncated = family.read(example, (fast, cut))
    assert truncated and [(s.start, s.end) for s in parsed.spans] == [(0, 9)] and parsed.n_invalid == 0
    parsed, truncated = family.read(example, (fast, whole))
    assert not truncated and [(s.start, s.end) for s in parsed.spans] == [(0, 9), (17, 30)]
    info = family.window_info(example, (fast, cut))
    assert info["truncated"] and info["greedy"] and info["items"] == 1


def fit_with_known_scores(tiny: Path, tmp_path: Path, scores: list[float], **train):
    """The HF Trainer path of a run (FamilyTrainer, the evaluation plan, early stopping as the worker adds it) with
    the dev F1 of each evaluation given, not measured."""
    from transformers import EarlyStoppingCallback

    from ner_ray.train.callbacks import EvaluationPlan
    from ner_ray.train.data import prepare_data
    from ner_ray.train.trainer import FamilyTrainer, training_arguments

    config = study(tiny, {"r": 4, "alpha": 8}).with_updates({
        "data.subsample": 2, "train.batch_size": 8, "model.span_gen.max_new_tokens": 4, **train})
    data = prepare_data(config)
    given = iter(scores)
    callbacks = [EvaluationPlan(config.train, data.family)]
    if config.train.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(config.train.early_stopping_patience, config.train.early_stopping_threshold))
    trainer = FamilyTrainer(
        model=data.family.build(), args=training_arguments(config, str(tmp_path), 1, None), family=data.family,
        train_dataset=[e.features for e in data.train], eval_dataset=[e.features for e in data.dev[:4]],
        data_collator=data.family.collate, compute_metrics=lambda _: {"f1": next(given)}, callbacks=callbacks)
    trainer.train()
    evaluations = [(log["step"], log["eval_f1"]) for log in trainer.state.log_history if "eval_f1" in log]
    return trainer, evaluations


def test_the_best_checkpoint_is_the_one_with_the_highest_dev_f1(tiny, tmp_path):
    trainer, evaluations = fit_with_known_scores(tiny, tmp_path, [0.2, 0.5, 0.3], **{"train.epochs": 3})
    assert [f1 for _, f1 in evaluations] == [0.2, 0.5, 0.3]
    assert trainer.state.best_metric == 0.5
    assert trainer.state.best_model_checkpoint.endswith(f"checkpoint-{evaluations[1][0]}")


def test_the_final_models_dev_scores_are_its_own_fully_decoded_evaluation(tiny, tmp_path):
    """EvaluationPlan.final_model_scores: the best checkpoint, reloaded after training, is not decoded on dev again
    when its evaluation during training decoded fully (each epoch's end does); otherwise it is (None)."""
    from ner_ray.train.callbacks import EvaluationPlan

    trainer, evaluations = fit_with_known_scores(tiny, tmp_path, [0.2, 0.5, 0.3], **{"train.epochs": 3})
    plan = next(cb for cb in trainer.callback_handler.callbacks if isinstance(cb, EvaluationPlan))
    assert plan.fully_decoded == {step for step, _ in evaluations}  # one evaluation at each epoch's end
    scores = plan.final_model_scores(trainer.args, trainer.state)
    assert scores["eval_f1"] == 0.5 and all(key.startswith("eval_") for key in scores)  # the best's, not the last's
    plan.fully_decoded.discard(evaluations[1][0])  # had the best checkpoint been scored with the cheaper decoding
    assert plan.final_model_scores(trainer.args, trainer.state) is None


def test_early_stopping_ends_a_run_after_patience_evaluations_without_gain(tiny, tmp_path):
    # 0.5, then +0.0005 (below the 0.001 threshold), then no gain: patience 2 stops after the third of six evaluations
    _, evaluations = fit_with_known_scores(tiny, tmp_path, [0.5, 0.5005, 0.4, 0.9, 0.9, 0.9], **{
        "train.epochs": 6, "train.early_stopping_patience": 2})
    assert [f1 for _, f1 in evaluations] == [0.5, 0.5005, 0.4]


@pytest.mark.parametrize("typed", [False, True])
def test_the_token_heads_bio_labels_round_trip_to_the_gold_spans(tiny, typed):
    family = family_on(tiny, token_head=True, typed=typed)
    for example, doc in zip(encode_documents(documents(), family, training=True), documents()):
        bio = torch.tensor(example.features["bio"])
        assert (bio != IGNORE).sum() > 0 and bio[0] == IGNORE and bio[-1] == IGNORE  # BOS/<NER> and <TAG> carry none
        gold = [(s.start, s.end, s.type if typed else "Entity") for s in doc.spans]
        assert [(s.start, s.end, s.type) for s in family.head_spans(example, (None, None, bio))] == gold


def test_the_token_head_trains_beside_the_lm_and_comes_back_from_disk(tiny, tmp_path):
    family = family_on(tiny, {"r": 4, "alpha": 8, "dropout": 0.0}, token_head=True)
    model = family.build()
    examples = encode_documents(documents(), family, training=True)
    losses = train_steps(family, model, examples, 15, 1e-2)
    assert losses[-1] < losses[0]
    rows = predict_rows(family, model.eval(), examples, 4)
    assert all(len(row) == 3 for row in rows)
    save_model(model, family, tmp_path, "fp32")
    assert (tmp_path / "token_head.safetensors").is_file()
    loaded = load_model(tmp_path)
    again = predict_rows(loaded.family, loaded.model, examples, 4)
    assert all(torch.equal(a[2], b[2]) and torch.equal(a[1], b[1]) for a, b in zip(rows, again))
    info = family.window_info(examples[0], rows[0])
    assert info["fast_spans"] == [[s.start, s.end, s.type] for s in family.head_spans(examples[0], rows[0])]


def test_backend_unsloth_is_for_cuda_and_names_the_gpu_extra(monkeypatch):
    from ner_ray.errors import ConfigError
    from ner_ray.families import generative

    assert generative.use_unsloth("peft") is False
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert generative.use_unsloth("auto") is False
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        generative.use_unsloth("unsloth")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(generative.importlib.util, "find_spec", lambda name: None)
    assert generative.use_unsloth("auto") is False  # auto falls back to PEFT where Unsloth is not installed
    with pytest.raises(ImportError, match=r"pip install 'ner_ray\[gpu\]'"):
        generative.use_unsloth("unsloth")
    with pytest.raises(ConfigError, match="model.backend unsloth loads causal LMs"):
        StudyConfig().with_updates({"model.backend": "unsloth"})


def test_item_order_picks_the_grammar_decoding_and_serving_use(tiny):
    from ner_ray.data.span_grammar import span_grammar

    text = SENTENCES[0][0]
    for order, any_order in (("sorted", False), ("any", True)):
        family = family_on(tiny, target="mentions", item_order=order)
        assert family.grammar(text) == span_grammar(text, "mentions", False, family.types, any_order=any_order)
        example = encode_documents(documents()[:1], family, training=False)[0]
        assert family.example_prompt(example)[1] == family.grammar(text)  # what Serve hands vLLM's structured outputs
    assert family_on(tiny, target="mentions").grammar(text) != family.grammar(text)  # sorted is the default


@pytest.mark.parametrize(("lora", "token_head"), [(None, False), ({"r": 4, "alpha": 8, "dropout": 0.0}, False),
                                                   ({"r": 4, "alpha": 8, "dropout": 0.0}, True)])
def test_the_head_at_the_completion_only_gives_the_full_heads_loss_next_tokens_and_gradients(tiny, lora, token_head):
    family = family_on(tiny, lora, token_head=token_head)
    torch.manual_seed(3)
    model = family.build().train()
    with torch.no_grad():  # the adapter away from its zero start, so that its gradients differ from the base's
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.1)
    assert family.head_at_labels(model)
    batch = family.collate([e.features for e in encode_documents(documents(), family, training=True)])
    results = []
    for at_labels in (True, False):
        family.head_at_labels = lambda _model, at_labels=at_labels: at_labels
        model.zero_grad()
        loss, outputs = family.loss(model, batch)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((loss.detach(), outputs["next_tokens"], grads))
    (loss_a, next_a, grads_a), (loss_b, next_b, grads_b) = results
    assert torch.allclose(loss_a, loss_b, atol=1e-5) and torch.equal(next_a, next_b)
    assert (next_a != IGNORE).sum() == (batch["labels"] != IGNORE).sum()  # every completion token but none of the prompt's
    assert grads_a.keys() == grads_b.keys() and grads_a
    assert all(torch.allclose(grads_a[n], grads_b[n], atol=1e-5) for n in grads_a)
