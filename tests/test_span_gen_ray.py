"""Family span_gen on Ray: `search_spaces/lora_span.yaml` run with its documented CPU overrides (a tiny Llama in
place of SmolLM2, the demo corpus) end to end through `python -m ner_ray.tune` (results.json, MLflow runs, the best
model exported), that model merged by `ner-ray export --merge` and generating what adapter + base generate, and
a 2-worker DDP run of the family."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import documented_cpu_overrides
from test_tune_study import mlflow_runs

from ner_ray.cli import main
from ner_ray.config import StudyConfig
from ner_ray.inference.encode import encode_documents
from ner_ray.inference.evaluate import corpus_documents
from ner_ray.inference.model_files import load_model
from ner_ray.inference.predict import predict_rows

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "search_spaces" / "lora_span.yaml"


def test_lora_span_study_runs_with_its_cpu_overrides(tiny_llama, tmp_path, train_v2_ray):
    overrides = documented_cpu_overrides(STUDY, "# The 8B")
    assert "model.name=smollm2-135m" in overrides and "resources.use_gpu=false" in overrides
    out = tmp_path / "out"
    test_only = [f"model.name={tiny_llama}", "data.corpus=demo", "data.max_length=128", "data.subsample=0.5", "train.epochs=2",
                 "train.batch_size=4", "tune.num_samples=2", "model.span_gen.max_new_tokens=24", "train.precision=fp32",
                 "train.gradient_checkpointing=false", f"train.output_dir={out}"]
    assert main(["tune", str(STUDY), *overrides, *test_only]) == 0
    results = json.loads((out / "results.json").read_text())
    trials = results["trials"]
    assert len(trials) == 2 and all(t["status"] in ("completed", "early_stopped") for t in trials)
    best = next(t for t in trials if t["status"] == "completed")
    for key in ("dev_f1", "dev_fast_f1", "dev_invalid_rate", "dev_hallucination_rate", "dev_truncated_rate", "test_f1"):
        assert best[key] is not None, key
    assert best["dev_invalid_rate"] == 0.0 and best["dev_hallucination_rate"] == 0.0  # constrained decoding
    model_dir = out / "lora_span" / "model"
    assert json.loads((model_dir / "ner_ray.json").read_text())["weights"] == "adapter"
    _, parents, runs = mlflow_runs(f"sqlite:///{out / 'mlflow.db'}", "lora_span")
    assert len(parents) == 1 and len(runs) == 2
    assert {"dev_f1", "dev_fast_f1", "test_f1"} <= set(runs[0].data.metrics) | set(runs[1].data.metrics)

    # The exported adapter, merged into a plain folder, greedily writes what adapter + base write.
    merged_dir = tmp_path / "merged"
    assert main(["export", str(model_dir), "--merge", str(merged_dir)]) == 0
    assert main(["export", str(model_dir), "--merge", str(merged_dir)]) == 2  # never overwrites
    assert {p.suffix for p in merged_dir.iterdir()} <= {".json", ".safetensors", ".jinja", ".txt"}
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    assert "quantization_config" not in json.loads((merged_dir / "config.json").read_text())
    loaded = load_model(model_dir)
    documents, _ = corpus_documents("demo", "test")
    examples = encode_documents(documents[:2], loaded.family, training=False)[:8]
    adapter_rows = predict_rows(loaded.family, loaded.model, examples, 4)
    merged_rows = predict_rows(loaded.family, merged, examples, 4)
    assert all(torch.equal(a[1], b[1]) for a, b in zip(adapter_rows, merged_rows))


def test_two_ddp_workers_train_the_family(tiny_llama, tmp_path, train_v2_ray):
    from ner_ray.train.run import fit_experiment

    config = StudyConfig().with_updates({
        "model.name": str(tiny_llama), "model.family": "span_gen", "model.lora": {"r": 4, "alpha": 8}, "data.max_length": 128,
        "data.subsample": 4, "model.span_gen.max_new_tokens": 16, "train.epochs": 1, "train.batch_size": 4,
        "train.lr": 1e-3, "train.precision": "fp32", "resources.num_workers": 2, "train.output_dir": str(tmp_path)})
    result = fit_experiment(config, "span-ddp", tmp_path)
    assert result.error is None
    metrics = result.metrics
    assert metrics["final"] is True and 0.0 <= metrics["test_f1"] <= 1.0 and metrics["dev_hallucination_rate"] == 0.0
    assert set(metrics["test"]["per_type"]) == {"Entity"}  # untyped: scored as one type
    # The local Ray ner_ray starts has Ray Train's preemption watcher off (cpu_isolation.PREEMPTION_WATCHER).
    import ray
    from ray.util.state import list_actors

    actors = list_actors(address=ray.get_runtime_context().gcs_address, limit=10_000, raise_on_missing_output=False)
    assert any(actor.class_name == "TrainController" for actor in actors), actors  # it sees the run's actors
    assert not [actor for actor in actors if actor.class_name == "PreemptionWatcher"], actors


@pytest.mark.slow
def test_the_zero3_variant_trains_on_two_cpu_workers(tiny_llama, tmp_path, train_v2_ray):
    """search_spaces/lora_span_zero3.yaml as its header runs it on CPU workers (ZeRO-3, CPU offload: DeepSpeed compiles its
    CPU Adam once), on 2 workers with the tiny model: greedy generation under sharded weights (synced across ranks)."""
    from ner_ray.config import load_study
    from ner_ray.train.run import fit_experiment

    path = ROOT / "search_spaces" / "lora_span_zero3.yaml"
    assert "model.name=smollm2-135m resources.use_gpu=false" in path.read_text()
    config = load_study(path).resolve("lora_span_zero3").with_updates({
        "resources.use_gpu": False, "model.name": str(tiny_llama), "resources.num_workers": 2, "data.corpus": "demo",
        "data.max_length": 128, "data.subsample": 4, "model.span_gen.max_new_tokens": 16, "train.epochs": 1,
        "train.precision": "fp32", "train.gradient_checkpointing": False, "train.output_dir": str(tmp_path),
        "search": {}, "tune.searcher.points_to_evaluate": []})
    assert config.train.deepspeed.stage == 3 and config.train.deepspeed.offload == "cpu"
    result = fit_experiment(config, "span-zero3", tmp_path)
    assert result.error is None and result.metrics["final"] is True and 0.0 <= result.metrics["test_f1"] <= 1.0
    assert json.loads((Path(result.checkpoint.path) / "ner_ray.json").read_text())["weights"] == "adapter"
