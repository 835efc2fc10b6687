"""Family instruct on Ray: `search_spaces/instruct_cdr.yaml` run with its documented CPU overrides (a tiny Llama with
SmolLM2's chat template in place of SmolLM2, the demo corpus) end to end through `ner-ray tune`: results.json with
every task's dev and test scores, MLflow runs, the best model exported merged and registered."""

from __future__ import annotations

import json

from conftest import ROOT, documented_cpu_overrides
from test_tune_study import mlflow_runs

from ner_ray.cli import main

STUDY = ROOT / "search_spaces" / "instruct_cdr.yaml"


def test_instruct_cdr_study_runs_with_its_cpu_overrides(tiny_llama, tmp_path, train_v2_ray):
    overrides = documented_cpu_overrides(STUDY, "# Then:")
    assert {"model.name=smollm2-135m", "model.quantize=null", "resources.use_gpu=false"} <= set(overrides)
    out = tmp_path / "out"
    test_only = [f"model.name={tiny_llama}", "data.corpus=demo", "data.max_length=448", "train.epochs=2", "train.batch_size=4",
                 "train.grad_accum=1", "tune.num_samples=2", "model.instruct.max_new_tokens=32", "train.precision=fp32",
                 "train.gradient_checkpointing=false", f"train.output_dir={out}"]
    assert main(["tune", str(STUDY), *overrides, *test_only]) == 0
    trials = json.loads((out / "results.json").read_text())["trials"]
    assert len(trials) == 2 and all(t["status"] in ("completed", "early_stopped") for t in trials)
    best = next(t for t in trials if t["status"] == "completed")
    for key in ("dev_f1", "dev_mention_f1", "dev_cid_f1", "dev_cid_unmapped_rate", "dev_invalid_rate",
                "dev_hallucination_rate", "dev_truncated_rate", "test_f1"):
        assert best[key] is not None, key
    model_dir = out / "instruct_cdr" / "model"
    meta = json.loads((model_dir / "ner_ray.json").read_text())
    assert meta["weights"] == "adapter" and meta["config"]["model"]["instruct"]["tasks"] == ["chemicals", "diseases", "cid"]
    _, parents, runs = mlflow_runs(f"sqlite:///{out / 'mlflow.db'}", "instruct_cdr")
    assert len(parents) == 1 and len(runs) == 2
    assert {"dev_f1", "dev_mention_f1", "dev_cid_f1", "test_f1"} <= set(runs[0].data.metrics) | set(runs[1].data.metrics)

    # the header's last step: the best model merged and registered
    assert main(["export", str(model_dir), "--merge", str(tmp_path / "merged"), "--register", "instruct-cdr",
                 "--tracking-uri", f"sqlite:///{out / 'mlflow.db'}"]) == 0
    assert {p.suffix for p in (tmp_path / "merged").iterdir()} <= {".json", ".safetensors", ".jinja", ".txt"}
    assert main(["evaluate", str(model_dir), "demo", "--split", "test", "--out", str(tmp_path / "eval")]) == 0
    scores = json.loads((tmp_path / "eval" / "scores.json").read_text())
    assert scores["family"] == "instruct" and "cid_f1" in scores["test"] and "mention_f1" in scores["test"]
