"""Family instruct (seed 003) on a tiny Llama with SmolLM2's tokenizer and chat template: the labels mask all but the
assistant's answer, inference renders the training prompt without the answer, gold answers score 1.0 on every
protocol, an unannotated chemical is a false positive, a trained adapter merges and combines exactly, and
model.quantize on CPU stops before Ray starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_span_gen import train_steps

from ner_ray.cli import main
from ner_ray.config import StudyConfig
from ner_ray.data.document import Document, Relation, Span
from ner_ray.families.generative import IGNORE
from ner_ray.inference.decode import predicted_documents
from ner_ray.inference.encode import encode_documents
from ner_ray.inference.evaluate import corpus_documents, score_documents, strip_gold
from ner_ray.inference.model_files import load_model, save_model
from ner_ray.inference.predict import predict_rows
from ner_ray.registry import FAMILIES

TEXT = "Cisplatin caused renal failure. Water did not prevent renal failure after cisplatin."
DOC = Document("d1", TEXT, [Span(0, 9, "Chemical", "D002945"), Span(17, 30, "Disease", "D051437"),
                            Span(54, 67, "Disease", "D051437"), Span(74, 83, "Chemical", "D002945")],
               [Relation("D002945", "D051437", "CID")])


def study(model_dir: Path, lora: dict | None = None, tasks=("chemicals", "diseases", "cid"), **model) -> StudyConfig:
    return StudyConfig.model_validate({
        "data": {"corpus": "demo", "max_length": 448},
        "model": {"name": str(model_dir), "family": "instruct", "lora": lora,
                  "instruct": {"tasks": list(tasks), "max_new_tokens": 48}, **model},
        "train": {"seed": 0, "precision": "fp32"},
    })


def family_on(tiny_llama: Path, lora: dict | None = None, tasks=("chemicals", "diseases", "cid")):
    return FAMILIES.get("instruct")(study(tiny_llama, lora, tasks), ("Chemical", "Disease"))


def gold_rows(family, gold_examples) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows as if the model had generated each example's gold answer (and its eos)."""
    rows = [family.generated_row(e.features["input_ids"][e.features["prompt_length"]:]) for e in gold_examples]
    pad = torch.nn.utils.rnn.pad_sequence
    return pad([r[0] for r in rows], batch_first=True, padding_value=IGNORE), pad([r[1] for r in rows], batch_first=True,
                                                                                  padding_value=IGNORE)


def answered(family, gold: list[Document], rows) -> dict:
    bare = [strip_gold(d) for d in gold]
    predicted = predicted_documents(family, bare, encode_documents(bare, family), rows)
    return {**score_documents(gold, predicted, family.types), **family.extra_metrics(gold, predicted)}


def test_labels_mask_all_but_the_answer_rendered_with_the_chat_template(tiny_llama):
    family = family_on(tiny_llama)
    tok = family.tokenizer
    examples = encode_documents([DOC], family, training=True)
    assert [e.decoding["task"] for e in examples] == ["chemicals", "diseases", "cid"]
    answers = {"chemicals": "Cisplatin; cisplatin", "diseases": "renal failure", "cid": "Cisplatin | renal failure"}
    for example in examples:
        f, task = example.features, example.decoding["task"]
        n = f["prompt_length"]
        assert f["labels"][:n] == [IGNORE] * n and f["labels"][n:] == f["input_ids"][n:]
        assert tok.decode(f["labels"][n:]) == answers[task] + "<|im_end|>"
        conversation = family.conversation(TEXT, task) + [{"role": "assistant", "content": answers[task]}]
        rendered = tok.apply_chat_template(conversation, tokenize=False)
        assert tok.decode(f["input_ids"]) == rendered.rstrip("\n")  # the template's own turn, its eos included
        assert "<|im_start|>system" in tok.decode(f["input_ids"][:n]) and tok.decode(f["input_ids"][:n]).endswith(
            "<|im_start|>assistant\n")


def test_the_prompt_at_inference_is_the_training_prompt_without_the_answer(tiny_llama):
    from ner_ray.serve.engines import FamilyPrompts

    family = family_on(tiny_llama)
    served_chat = FamilyPrompts()  # how the service renders a /v1/chat/completions request
    served_chat.family, served_chat.model_dir = family, tiny_llama
    trained = encode_documents([DOC], family, training=True)
    inferred = encode_documents([strip_gold(DOC)], family, training=False)
    for a, b in zip(trained, inferred):
        prompt = a.features["input_ids"][: a.features["prompt_length"]]
        assert prompt == b.features["input_ids"][: b.features["prompt_length"]]
        assert list(served_chat.encode_chat(family.conversation(TEXT, a.decoding["task"])).ids) == prompt


def test_gold_answers_score_one_on_spans_mentions_and_cid_pairs(tiny_llama):
    family = family_on(tiny_llama)
    gold, _ = corpus_documents("demo", "test")
    scores = answered(family, gold, gold_rows(family, encode_documents(gold, family)))
    assert scores["f1"] == scores["mention_f1"] == scores["cid_f1"] == 1.0
    assert scores["invalid_rate"] == scores["hallucination_rate"] == scores["duplicate_rate"] == scores["truncated_rate"] == 0.0
    assert scores["cid_unmapped_rate"] == 0.0 and scores["tp"] == sum(len(d.spans) for d in gold)


def test_an_unannotated_chemical_is_a_false_positive_everywhere(tiny_llama):
    family = family_on(tiny_llama)
    tok = family.tokenizer
    examples = encode_documents([DOC], family)
    wrong = {"chemicals": "Cisplatin; cisplatin; Water", "diseases": "renal failure; kidney stones",
             "cid": "Cisplatin | renal failure; Water | renal failure"}
    rows = gold_rows(family, [e for e in examples])
    rows = (rows[0], torch.nn.utils.rnn.pad_sequence(
        [torch.tensor(tok(wrong[e.decoding["task"]], add_special_tokens=False)["input_ids"] + [tok.eos_token_id])
         for e in examples], batch_first=True, padding_value=IGNORE))
    scores = answered(family, [DOC], rows)
    assert scores["fp"] == 1 and scores["tp"] == 4  # "Water" placed in the text; "kidney stones" is nowhere in it
    assert scores["mention_precision"] == pytest.approx(2 / 4) and scores["mention_recall"] == 1.0
    assert scores["cid_precision"] == pytest.approx(1 / 2) and scores["cid_unmapped_rate"] == pytest.approx(1 / 2)
    assert scores["hallucination_rate"] == pytest.approx(1 / 7)  # kidney stones, of 7 items


def test_answers_that_are_garbage_are_counted_not_raised(tiny_llama):
    family = family_on(tiny_llama)
    tok = family.tokenizer
    texts = ["; ;Cisplatin;Cisplatin", "none", "Cisplatin renal failure; | x"]
    rows = (torch.full((3, 1), IGNORE), torch.nn.utils.rnn.pad_sequence(
        [torch.tensor(tok(t, add_special_tokens=False)["input_ids"]) for t in texts], batch_first=True, padding_value=IGNORE))
    scores = answered(family, [DOC], rows)  # no eos: every answer counts as cut by max_new_tokens
    assert scores["truncated_rate"] == 1.0 and 0 < scores["invalid_rate"] <= 1 and scores["cid_f1"] == 0.0


@pytest.fixture(scope="module")
def adapters(tiny_llama, tmp_path_factory):
    """Two LoRA models of the tiny_llama Llama, one per task (chemicals, diseases), trained a few steps and saved."""
    out = tmp_path_factory.mktemp("instruct-adapters")
    saved = {}
    for task in ("chemicals", "diseases"):
        family = family_on(tiny_llama, {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": "all-linear"}, (task,))
        torch.manual_seed(0)
        model = family.build()
        losses = train_steps(family, model, encode_documents([DOC], family, training=True), 30, 5e-3)
        assert losses[-1] < losses[0]
        saved[task] = save_model(model.eval(), family, out / task, "fp32")
    return saved


def greedy_rows(family, model, documents):
    return predict_rows(family, model, encode_documents(documents, family), 4)


def test_merged_export_generates_what_adapter_and_base_generate(adapters, tmp_path):
    from transformers import AutoModelForCausalLM

    model_dir = adapters["chemicals"]
    assert json.loads((model_dir / "ner_ray.json").read_text())["weights"] == "adapter"
    assert main(["export", str(model_dir), "--merge", str(tmp_path / "merged")]) == 0
    loaded = load_model(model_dir)
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    documents, _ = corpus_documents("demo", "test")
    adapter_rows = greedy_rows(loaded.family, loaded.model, documents[:2] + [DOC])
    merged_rows = greedy_rows(loaded.family, merged, documents[:2] + [DOC])
    assert all(torch.equal(a[1], b[1]) for a, b in zip(adapter_rows, merged_rows))
    assert any(len([i for i in a[1] if i != IGNORE]) > 1 for a in adapter_rows)  # it generated something to compare


def test_combining_two_adapters_with_weights_one_and_zero_equals_the_first(adapters, tmp_path):
    out = tmp_path / "combined"
    argv = ["export", "--combine", str(adapters["chemicals"]), str(adapters["diseases"]), "--weights", "1", "0", "--to", str(out)]
    assert main(argv) == 0
    combined, first = load_model(out), load_model(adapters["chemicals"])
    assert combined.family.tasks == ("chemicals", "diseases") and combined.family.types == ("Chemical", "Disease")
    assert json.loads((out / "combined.json").read_text())["weights"] == [1.0, 0.0]
    documents, _ = corpus_documents("demo", "test")
    mine = greedy_rows(combined.family, combined.model, documents[:2])
    theirs = greedy_rows(first.family, first.model, documents[:2])
    chemicals = [row for row, example in zip(mine, encode_documents(documents[:2], combined.family))
                 if example.decoding["task"] == "chemicals"]
    assert all(torch.equal(a[1], b[1]) for a, b in zip(chemicals, theirs))
    assert main([*argv[:-1], str(tmp_path / "ties"), "--combination", "ties"]) == 0  # TIES runs and is scorable
    ties = load_model(tmp_path / "ties")
    assert len(greedy_rows(ties.family, ties.model, documents[:1])) == 2
    assert main(argv) == 2  # never overwrites


def test_the_merged_export_is_registered_in_the_mlflow_model_registry(adapters, tmp_path, capsys):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'registry.db'}"
    for _ in range(2):
        out = tmp_path / f"merged{_}"
        assert main(["export", str(adapters["diseases"]), "--merge", str(out), "--register", "instruct-cdr",
                     "--tracking-uri", uri]) == 0
    versions = MlflowClient(uri).search_model_versions("name = 'instruct-cdr'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    assert all(v.source.startswith((tmp_path / "mlartifacts").resolve().as_uri()) for v in versions)  # beside the store
    assert any(p.name == "model.safetensors" for p in (tmp_path / "mlartifacts").rglob("*"))
    assert "registered: instruct-cdr version 2" in capsys.readouterr().out


def test_push_to_hub_needs_a_token_and_uploads_the_folder(adapters, tmp_path, monkeypatch, capsys):
    from ner_ray.inference.publish import push_to_hub

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # no stored login either
    assert main(["export", str(adapters["diseases"]), "--merge", str(tmp_path / "m"), "--push-to-hub"]) == 2
    assert "needs a Hugging Face token" in capsys.readouterr().err and not (tmp_path / "m").exists()

    calls = []

    class Hub:  # the Hub's API as push_to_hub calls it (offline here)

        def create_repo(self, repo_id, private, exist_ok):
            calls.append(("create", repo_id, private))

        def upload_folder(self, folder_path, repo_id, commit_message):
            calls.append(("upload", repo_id, sorted(p.name for p in Path(folder_path).iterdir())))

    repo = push_to_hub(adapters["diseases"], None, token="hf_" + "x" * 30, api=Hub())
    assert repo.startswith("ner-ray-diseases-") and calls[0] == ("create", repo, True)
    assert calls[1][0] == "upload" and "ner_ray.json" in calls[1][2]


def test_quantize_on_cpu_is_a_clear_error_before_ray_starts(tiny_llama, tmp_path, capsys, monkeypatch):
    import ner_ray.train.run

    monkeypatch.setattr(ner_ray.train.run, "train_repeats", lambda *a, **k: pytest.fail("training started"))
    path = tmp_path / "study.yaml"
    path.write_text(f"name: q\ndata: {{corpus: demo, max_length: 448}}\nmodel: {{name: {tiny_llama}, family: instruct, "
                    f"quantize: 4bit, lora: {{r: 4}}}}\ntrain: {{output_dir: {tmp_path / 'out'}}}\n")
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err
    assert "model.quantize: 4bit (QLoRA)" in err and "CUDA GPUs only" in err and "model.quantize: null" in err
    with pytest.raises(Exception, match="trains LoRA adapters on a frozen quantized base"):
        StudyConfig.model_validate({"model": {"family": "instruct", "quantize": "4bit"}})
    with pytest.raises(Exception, match="loads causal LMs"):
        StudyConfig.model_validate({"model": {"family": "token_cls", "quantize": "8bit", "lora": {}}})


def test_a_model_without_a_chat_template_is_refused_by_name(tiny_llama, tmp_path):
    family = family_on(tiny_llama)
    family.tokenizer.chat_template = None
    with pytest.raises(ValueError, match="has none: use an instruction-tuned model"):
        FAMILIES.get("instruct")(study(tiny_llama), ("Chemical",), family.tokenizer)
