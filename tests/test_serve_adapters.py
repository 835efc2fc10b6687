"""`ner-ray serve STUDY_DIR --top-k N`: the best trials' LoRA adapters on one base model. Two span_gen adapters on a
tiny Llama, trained apart; the engine holding both answers each as the engine holding it alone does (completions
and scores), the study's trials are ranked by its metric, and trials that cannot share a base model are refused
naming the key. The Serve route test (model picked per request) is in test_serve.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from test_span_gen import documents, family_on, train_steps
from tiny_llama import build_tiny_llama

from ner_ray.inference.encode import encode_documents
from ner_ray.inference.model_files import save_model
from ner_ray.serve.adapters import resolve_model, top_trials
from ner_ray.serve.engines import Generation, HfEngine

LORA = {"r": 4, "alpha": 8, "dropout": 0.0}


def train_adapter(tiny: Path, folder: Path, steps: int, seed: int) -> Path:
    """A span_gen LoRA adapter trained `steps` steps on the demo sentences (0: as initialised), saved in `folder`."""
    family = family_on(tiny, LORA)
    torch.manual_seed(seed)
    model = family.build()
    if steps:
        train_steps(family, model, encode_documents(documents(), family, training=True), steps, 1e-2)
    return save_model(model.eval(), family, folder, "fp32")


def adapter_study(folder: Path, tiny: Path, dev_f1: dict[str, float]) -> Path:
    """A study folder whose trials (trial id -> dev F1) are adapters: a (trained 60 steps), b (trained 2), c (full LM)."""
    trials = []
    for trial, score in dev_f1.items():
        model = folder / "trials" / trial
        if trial == "c":
            family = family_on(tiny)  # full fine-tuning: a whole LM, no adapter
            save_model(family.build().eval(), family, model, "fp32")
        else:
            train_adapter(tiny, model, 60 if trial == "a" else 2, seed=ord(trial))
        trials.append({"experiment": "span", "trial_id": trial, "status": "completed", "dev_f1": score,
                       "model_path": str(model)})
    trials.append({"experiment": "span", "trial_id": "x", "status": "error", "dev_f1": None, "model_path": None})
    (folder / "results.json").write_text(json.dumps({"study": "ad", "metric": "dev_f1", "mode": "max",
                                                     "best": trials[0], "trials": trials}))
    return folder


def adapter_study_on_tiny(tmp_path_factory, dev_f1: dict[str, float]) -> Path:
    """adapter_study on a new tiny Llama, trained with one torch thread (as the other span_gen tests train)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        folder = tmp_path_factory.mktemp("adapters")
        return adapter_study(folder, build_tiny_llama(folder / "tiny-llama"), dev_f1)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    return adapter_study_on_tiny(tmp_path_factory, {"a": 0.9, "b": 0.5, "c": 0.1})


def test_the_best_trials_are_served_best_first_and_a_whole_model_is_refused(study):
    assert list(top_trials(study, 2)) == ["ad:a", "ad:b"]
    with pytest.raises(ValueError, match=r"ad:c .* not an adapter"):
        top_trials(study, 3)
    with pytest.raises(ValueError, match="has 3 completed trial"):
        top_trials(study, 4)
    assert resolve_model(None, ["ad:a", "ad:b"]) == "ad:a" and resolve_model("b", ["ad:a", "ad:b"]) == "ad:b"
    assert resolve_model("ad:b", ["ad:a", "ad:b"]) == "ad:b" and resolve_model("ad:z", ["ad:a", "ad:b"]) is None


def test_adapters_that_do_not_share_the_prompt_format_are_refused(study, tmp_path):
    shutil.copytree(study, tmp_path / "s")
    meta_path = tmp_path / "s" / "trials" / "b" / "ner_ray.json"
    meta = json.loads(meta_path.read_text())
    meta["config"]["model"]["span_gen"]["typed"] = True
    meta_path.write_text(json.dumps(meta))
    results = json.loads((tmp_path / "s" / "results.json").read_text())
    for trial in results["trials"]:
        trial["model_path"] = (trial["model_path"] or "").replace(str(study), str(tmp_path / "s")) or None
    (tmp_path / "s" / "results.json").write_text(json.dumps(results))
    with pytest.raises(ValueError, match=r"ad:b has model.span_gen = .*share it"):
        top_trials(tmp_path / "s", 2)


def test_each_adapter_answers_as_its_model_served_alone(study):
    models = top_trials(study, 2)
    together = HfEngine(models["ad:a"], models)
    alone = {model_id: HfEngine(folder) for model_id, folder in models.items()}
    prompts = [together.encode_prompt(f"<NER> {d.text} <TAG>") for d in documents()]
    greedy = {model_id: [c.text for c in engine.generate(prompts, Generation(24))] for model_id, engine in alone.items()}
    assert greedy["ad:a"] != greedy["ad:b"]  # trained apart: they write different completions
    for model_id in ("ad:b", "ad:a", "ad:b"):  # switching back and forth
        assert [c.text for c in together.generate(prompts, Generation(24, adapter=model_id))] == greedy[model_id]
    gold, types = documents(), ["Chemical", "Disease"]
    for model_id, engine in alone.items():
        assert together.evaluate(gold, "demo", "dev", types, model_id) == engine.evaluate(gold, "demo", "dev", types)
        assert [d.spans for d in together.tag(gold, model_id)] == [d.spans for d in engine.tag(gold)]
