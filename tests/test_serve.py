"""`ner-ray serve`: a real Serve app on loopback (local Ray) serving a tiny span_gen model that writes the gold
completions, and a tiny tagger behind an API key. The seed's completions client (plain urllib, its exact request),
the openai client on completions and chat, /v1/ner, /v1/ner/evaluate equal to `ner-ray evaluate` (streamed with
progress too), a study's best model scored through the service into its results.json and MLflow run, batching of
concurrent prompts, two LoRA adapters on one base picked per request (--top-k), and 20+ kinds of bad request answered 4xx with the service still serving."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from conftest import free_port, local_ray, wait_for_http
from test_export import trained_like
from test_families import build_tiny_bert
from test_serve_adapters import adapter_study_on_tiny
from test_span_gen import documents, family_on, train_steps
from tiny_llama import build_tiny_llama

from ner_ray.config import ServeConfig
from ner_ray.inference.encode import encode_documents
from ner_ray.inference.evaluate import evaluate_model
from ner_ray.inference.model_files import save_model

KEY = "s3cret-test-key"
SEED_PROMPT = "<NER> Cisplatin caused renal failure . <TAG>"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """A span_gen model fully fine-tuned until it writes the gold completions, and a tiny LoRA tagger, saved."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("serve")
    family = family_on(build_tiny_llama(folder / "tiny-llama"))
    model = family.build()
    torch.manual_seed(0)
    train_steps(family, model, encode_documents(documents(), family, training=True), 120, 3e-3)
    span = save_model(model.eval(), family, folder / "span" / "model", "fp32")
    tagger_family, net, _ = trained_like(build_tiny_bert(folder / "tiny-bert"), "token_cls", {"r": 4, "alpha": 8})
    tagger = save_model(net, tagger_family, folder / "tagger" / "model", "fp32")
    torch.set_num_threads(threads)
    return {"span": span, "tagger": tagger}


@pytest.fixture(scope="module")
def study(models, tmp_path_factory) -> Path:
    """A study folder whose best trial (experiment span, trial t2) is the span model, tracked in a SQLite MLflow store."""
    import shutil

    from mlflow.tracking import MlflowClient

    from ner_ray.tune.tracking import STUDY_TAG, TRIAL_TAG

    folder = tmp_path_factory.mktemp("study")
    shutil.copytree(models["span"], folder / "span" / "model")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("span_study", artifact_location=(folder / "mlartifacts").as_uri())
    parent = client.create_run(experiment, tags={STUDY_TAG: "s1"}).info.run_id
    for trial in ("t1", "t2"):
        client.create_run(experiment, run_name=trial, tags={STUDY_TAG: "s1", TRIAL_TAG: trial})
    best = {"experiment": "span", "trial_id": "t2", "model_path": None, "dev_f1": 1.0}
    (folder / "results.json").write_text(json.dumps({"study": "span_study", "metric": "dev_f1", "best": best,
                                                     "trials": [best], "mlflow": {"tracking_uri": uri, "parent_run_id": parent}}))
    return folder


@pytest.fixture(scope="module")
def adapters(tmp_path_factory) -> Path:
    """A study folder whose two best trials are span_gen LoRA adapters on one tiny Llama (test_serve_adapters.py)."""
    return adapter_study_on_tiny(tmp_path_factory, {"a": 0.9, "b": 0.5})


@pytest.fixture(scope="module")
def service(models, study, adapters):
    """On one local Ray: /span (the span model, no key), /tagger (API key KEY), /study (the study folder, whose
    best model is the span model) and /adapters (the two best adapters of another study, --top-k 2); yields the
    base URL."""
    from ray import serve

    from ner_ray.serve.app import build_app

    port = free_port()
    settings = ServeConfig(port=port, threads=1, max_batch_size=16, batch_wait_timeout_s=0.05, max_items=64,
                           max_prompt_chars=4000, max_tokens=128, max_body_bytes=1024 * 1024)
    with local_ray({}, num_cpus=4):  # one logical CPU per replica (each runs one torch thread)
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app(models["span"], settings), name="span", route_prefix="/span")
        serve.run(build_app(models["tagger"], settings, KEY), name="tagger", route_prefix="/tagger")
        serve.run(build_app(study, settings), name="study", route_prefix="/study")
        serve.run(build_app(adapters, settings, top_k=2), name="adapters", route_prefix="/adapters")
        yield f"http://127.0.0.1:{port}"
        serve.shutdown()


def call(url: str, body: bytes | dict | None = None, headers: dict | None = None, method: str | None = None):
    """(status, parsed JSON body) of one request, errors included."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    request = urllib.request.Request(url, data=data, method=method or ("POST" if data is not None else "GET"),
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            return error.code, json.loads(raw)
        except ValueError:
            return error.code, raw.decode("utf-8", "replace")


def seed_client(base: str, sentence: str) -> list[tuple[int, int]]:
    """The seed's evaluation client: posts input + " <TAG>", splits choices[0].text on ';' and '-'."""
    payload = {"prompt": f"<NER> {sentence}" + " <TAG>", "max_tokens": 64, "temperature": 0}
    request = urllib.request.Request(f"{base}/v1/completions", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        text = json.loads(response.read())["choices"][0]["text"]
    spans = []
    for item in text.split(";"):
        start, _, end = item.strip().partition("-")
        if start.isdigit() and end.isdigit():
            spans.append((int(start), int(end)))
    return spans


def test_the_seed_client_reads_the_gold_offsets_from_completions(service):
    for doc in documents():
        assert seed_client(f"{service}/span", doc.text) == [(s.start, s.end) for s in doc.spans]


def test_models_lists_the_served_model_with_its_family(service):
    status, body = call(f"{service}/span/v1/models")
    assert status == 200 and [m["id"] for m in body["data"]] == ["span"] and body["data"][0]["family"] == "span_gen"


def test_the_openai_client_gets_completions_in_prompt_order_and_a_chat_answer(service):
    from openai import OpenAI

    client = OpenAI(base_url=f"{service}/span/v1", api_key="unused", max_retries=0)
    prompts = [f"<NER> {d.text} <TAG>" for d in documents()]
    together = client.completions.create(model="span", prompt=prompts, max_tokens=32, temperature=0)
    alone = [client.completions.create(model="span", prompt=p, max_tokens=32, temperature=0).choices[0].text for p in prompts]
    assert [c.text for c in together.choices] == alone and [c.index for c in together.choices] == [0, 1, 2, 3]
    assert together.choices[0].text == " 0-9 ; 17-30" and together.choices[0].finish_reason == "stop"
    assert together.usage.completion_tokens > 0 and together.usage.prompt_tokens > 0
    cut = client.completions.create(model="span", prompt=prompts[0], max_tokens=32, temperature=0, stop=[";"])
    assert cut.choices[0].text == " 0-9 " and cut.choices[0].finish_reason == "stop"
    chat = client.chat.completions.create(model="span", messages=[{"role": "user", "content": "Name a drug."}],
                                          max_tokens=8, temperature=0)
    assert isinstance(chat.choices[0].message.content, str) and chat.choices[0].message.role == "assistant"
    assert 0 < chat.usage.completion_tokens <= 8


def test_two_adapters_on_one_base_each_answer_as_served_alone(service, adapters):
    from ner_ray.serve.engines import Generation, HfEngine

    status, listed = call(f"{service}/adapters/v1/models")
    assert status == 200 and [m["id"] for m in listed["data"]] == ["ad:a", "ad:b"]
    prompts = [f"<NER> {d.text} <TAG>" for d in documents()]
    served = {name: call(f"{service}/adapters/v1/completions", {"prompt": prompts, "max_tokens": 24, "temperature": 0,
                                                                 **({"model": name} if name else {})})
              for name in (None, "ad:a", "b", "ad:b")}
    assert all(status == 200 for status, _ in served.values())
    texts = {name: [c["text"] for c in answer["choices"]] for name, (_, answer) in served.items()}
    for trial in ("a", "b"):
        alone = HfEngine(adapters / "trials" / trial)
        expected = [c.text for c in alone.generate([alone.encode_prompt(p) for p in prompts], Generation(24))]
        assert texts[f"ad:{trial}"] == expected, trial
    assert texts[None] == texts["ad:a"] and texts["b"] == texts["ad:b"] != texts["ad:a"]
    assert served["b"][1]["model"] == "ad:b"
    assert call(f"{service}/adapters/v1/completions", {"prompt": prompts[0], "model": "ad:z"})[0] == 404


def test_evaluate_route_gives_exactly_what_ner_ray_evaluate_writes(service, models):
    status, served = call(f"{service}/span/v1/ner/evaluate", {"corpus": "demo", "split": "test"})
    assert status == 200
    expected = json.loads(json.dumps(evaluate_model(models["span"], "demo", "test")))
    assert served == expected and served["test"]["documents"] > 0


def test_evaluate_route_streams_progress_then_the_same_scores(service):
    request = urllib.request.Request(f"{service}/span/v1/ner/evaluate", headers={"Content-Type": "application/json"},
                                     data=json.dumps({"corpus": "demo", "split": "test", "stream": True}).encode())
    with urllib.request.urlopen(request, timeout=120) as response:
        assert response.headers["content-type"].startswith("application/x-ndjson")
        events = [json.loads(line) for line in response]
    progress = [e["progress"] for e in events[:-1]]
    total = progress[0]["total"]
    assert progress[0]["done"] == 0 and progress[-1] == {"done": total, "total": total} and total > 0
    assert [p["done"] for p in progress] == sorted(p["done"] for p in progress)
    assert events[-1]["result"] == call(f"{service}/span/v1/ner/evaluate", {"corpus": "demo", "split": "test"})[1]


def test_evaluate_route_scores_documents_given_in_the_body(service):
    docs = [{"id": d.id, "text": d.text, "spans": [{"start": s.start, "end": s.end, "type": s.type} for s in d.spans]}
            for d in documents()]
    status, served = call(f"{service}/span/v1/ner/evaluate", {"documents": docs, "split": "dev"})
    assert status == 200 and served["dev_f1"] == 1.0 and served["dev"]["tp"] == 6


def test_concurrent_prompts_are_generated_in_fewer_engine_calls_than_requests(service):
    before = call(f"{service}/span/v1/stats")[1]["engine_calls"]
    prompts = [f"<NER> {d.text} <TAG>" for d in documents()] * 4
    with ThreadPoolExecutor(len(prompts)) as pool:
        answers = list(pool.map(lambda p: call(f"{service}/span/v1/completions", {"prompt": p, "max_tokens": 32,
                                                                                  "temperature": 0}), prompts))
    assert all(status == 200 for status, _ in answers)
    assert [a["choices"][0]["text"] for _, a in answers[:4]] == [a["choices"][0]["text"] for _, a in answers[4:8]]
    calls = call(f"{service}/span/v1/stats")[1]["engine_calls"] - before
    assert 1 <= calls < len(prompts)


def test_the_tagger_needs_the_key_and_tags_texts(service):
    texts = ["Cisplatin induced nephrotoxicity in rats.", "", "Aspirin and asthma."]
    assert call(f"{service}/tagger/v1/ner", {"texts": texts})[0] == 401
    assert call(f"{service}/tagger/v1/ner", {"texts": texts}, {"Authorization": "Bearer wrong"})[0] == 401
    status, body = call(f"{service}/tagger/v1/ner", {"texts": texts}, {"Authorization": f"Bearer {KEY}"})
    assert status == 200 and [r["index"] for r in body["results"]] == [0, 1, 2] and body["results"][1]["spans"] == []
    for text, result in zip(texts, body["results"]):
        assert all(text[s["start"]:s["end"]] == s["text"] for s in result["spans"])
    assert call(f"{service}/tagger/health")[0] == 200  # readiness needs no key


BAD_COMPLETIONS = [  # (what, body bytes or dict, extra headers, expected status)
    ("malformed JSON", b'{"prompt": ', {}, 400),
    ("a JSON array", b"[1, 2]", {}, 400),
    ("missing prompt", {"max_tokens": 4}, {}, 400),
    ("prompt a number", {"prompt": 5}, {}, 400),
    ("empty prompt list", {"prompt": []}, {}, 400),
    ("negative max_tokens", {"prompt": "x", "max_tokens": -1}, {}, 400),
    ("zero max_tokens", {"prompt": "x", "max_tokens": 0}, {}, 400),
    ("huge max_tokens", {"prompt": "x", "max_tokens": 10**9}, {}, 400),
    ("max_tokens a string", {"prompt": "x", "max_tokens": "64"}, {}, 400),
    ("negative temperature", {"prompt": "x", "temperature": -1}, {}, 400),
    ("temperature a word", {"prompt": "x", "temperature": "hot"}, {}, 400),
    ("n of 2", {"prompt": "x", "n": 2}, {}, 400),
    ("streaming", {"prompt": "x", "stream": True}, {}, 400),
    ("five stop strings", {"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, {}, 400),
    ("unknown model", {"prompt": "x", "model": "gpt-4"}, {}, 404),
    ("non-UTF-8 body", b'{"prompt": "\xff\xfe"}', {}, 400),
    ("10 MB body", b'{"prompt": "' + b"a" * (10 * 1024 * 1024) + b'"}', {}, 413),
    ("too many prompts", {"prompt": ["x"] * 65}, {}, 400),
    ("too long a prompt", {"prompt": "x" * 4001}, {}, 400),
    ("prompt and max_tokens over the context", {"prompt": "aspirin " * 400, "max_tokens": 128}, {}, 400),
]
BAD_OTHERS = [  # (route, body, headers, expected status)
    ("/span/v1/chat/completions", {"messages": []}, {}, 400),
    ("/span/v1/chat/completions", {"messages": [{"role": "wizard", "content": "hi"}]}, {}, 400),
    ("/span/v1/chat/completions", {"messages": [{"role": "user"}]}, {}, 400),
    ("/span/v1/ner", {"texts": "not a list"}, {}, 400),
    ("/span/v1/ner", {}, {}, 400),
    ("/span/v1/ner/evaluate", {"corpus": "demo", "documents": []}, {}, 400),
    ("/span/v1/ner/evaluate", {"corpus": "no_such_corpus"}, {}, 400),
    ("/span/v1/ner/evaluate", {"corpus": "demo", "split": "nope"}, {}, 400),
    ("/span/v1/ner/evaluate", {"documents": [{"id": "a", "text": "abc", "spans": [{"start": 2, "end": 9, "type": "X"}]}]},
     {}, 400),
    ("/span/v1/no_such_route", {"prompt": "x"}, {}, 404),
    ("/tagger/v1/completions", {"prompt": "x"}, {"Authorization": f"Bearer {KEY}"}, 400),  # an encoder writes no text
    ("/tagger/v1/models", None, {"Authorization": "Bearer wrong"}, 401),
]


def test_bad_requests_get_4xx_naming_the_problem_and_the_service_keeps_serving(service):
    assert len(BAD_COMPLETIONS) + len(BAD_OTHERS) >= 20
    for what, body, headers, expected in BAD_COMPLETIONS:
        status, answer = call(f"{service}/span/v1/completions", body, headers)
        assert status == expected, (what, status, answer)
        assert isinstance(answer, dict) and answer["error"]["message"], what
    for route, body, headers, expected in BAD_OTHERS:
        status, answer = call(f"{service}{route}", body, headers)
        assert status == expected, (route, body, status, answer)
    assert call(f"{service}/span/v1/completions", method="GET")[0] == 405
    assert seed_client(f"{service}/span", documents()[0].text) == [(0, 9), (17, 30)]


@pytest.mark.parametrize(("gpus", "cuda", "asked"), [(None, False, 0.0), (None, True, 1.0), (0.5, True, 0.5), (0.0, True, 0.0)])
def test_the_replica_asks_ray_for_a_gpu_where_the_machine_has_one_unless_told(gpus, cuda, asked, monkeypatch):
    """Ray hides every GPU from an actor that asks for none, so on a CUDA machine the replica asks for one."""
    from ner_ray.serve.app import replica_gpus

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert replica_gpus(ServeConfig(gpus=gpus)) == asked


@pytest.mark.parametrize(("cuda", "placed", "moved"), [(False, "cpu", []), (True, "cpu", ["cuda"]), (True, "meta", [])])
def test_the_hf_engine_moves_a_model_on_the_cpu_to_the_gpu_it_sees(cuda, placed, moved, monkeypatch):
    """A model on the CPU goes to the GPU where there is one; one placed already (bitsandbytes) stays."""
    from ner_ray.serve.engines import on_gpu_if_any

    class Model(torch.nn.Linear):
        def to(self, device):  # records the move (this machine has no CUDA to move to)
            calls.append(device)
            return self

    calls: list[str] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    on_gpu_if_any(Model(2, 2, device=placed))
    assert calls == moved


def test_the_command_binds_loopback_reads_the_key_from_the_environment_and_never_prints_it(models, tmp_path):
    port = free_port()
    log = tmp_path / "serve.log"
    env = {**__import__("os").environ, "NER_RAY_API_KEY": KEY}
    with open(log, "w") as out:
        server = subprocess.Popen([sys.executable, "-m", "ner_ray.serve", str(models["tagger"]), "--port", str(port)],
                                  stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", server, log)
        base = f"http://127.0.0.1:{port}"
        assert call(f"{base}/v1/models")[0] == 401
        status, body = call(f"{base}/v1/ner", {"texts": ["Aspirin and asthma."]}, {"Authorization": f"Bearer {KEY}"})
        assert status == 200 and len(body["results"]) == 1
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert KEY not in log.read_text()
    assert "127.0.0.1" in log.read_text()


def test_a_missing_folder_is_a_one_line_error_before_ray_starts(tmp_path, capsys):
    from ner_ray.cli import main

    assert main(["serve", str(tmp_path / "nothing")]) == 2
    assert "neither a saved ner_ray model" in capsys.readouterr().err


def test_a_study_folder_serves_its_best_trials_exported_model(models, tmp_path):
    import shutil

    from ner_ray.serve.app import served_model

    study = tmp_path / "study"
    shutil.copytree(models["tagger"], study / "lora" / "model")
    (study / "results.json").write_text(json.dumps({"study": "demo_study", "metric": "dev_f1",
                                                    "best": {"experiment": "lora", "model_path": None}}))
    assert served_model(study) == (study / "lora" / "model", "demo_study:lora")
    (study / "results.json").write_text(json.dumps({"study": "demo_study", "metric": "dev_f1", "best": None}))
    with pytest.raises(FileNotFoundError, match="no trial completed"):
        served_model(study)


def test_evaluate_through_the_endpoint_gives_the_in_process_scores(service, models, tmp_path, capsys):
    from ner_ray.cli import main

    assert main(["evaluate", "--endpoint", f"{service}/span", "demo", "--split", "test", "--out", str(tmp_path)]) == 0
    served = json.loads((tmp_path / "scores.json").read_text())
    assert served["test"] == json.loads(json.dumps(evaluate_model(models["span"], "demo", "test")["test"]))
    assert "test_f1" in capsys.readouterr().out
    assert main(["evaluate", "--endpoint", f"{service}/tagger", "demo"]) == 2  # no key: the service's 401, one line
    assert "HTTP 401" in capsys.readouterr().err


def test_a_study_scored_through_its_service_is_recorded_in_results_json_and_mlflow(service, models, study, capsys):
    from mlflow.tracking import MlflowClient

    from ner_ray.cli import main

    assert main(["evaluate", "--endpoint", f"{service}/span", "demo", "--study", str(study)]) == 2  # another model's id
    assert "not the best model of" in capsys.readouterr().err
    assert main(["evaluate", "--endpoint", f"{service}/study", "demo", "--split", "test", "--study", str(study)]) == 0
    expected = evaluate_model(models["span"], "demo", "test")
    results = json.loads((study / "results.json").read_text())
    [entry] = results["served"]
    assert entry["model"] == "span_study:span" and entry["trial_id"] == "t2" and entry["test_f1"] == expected["test_f1"]
    assert entry["endpoint"] == f"{service}/study" and entry["documents"] == expected["test"]["documents"]
    client = MlflowClient(results["mlflow"]["tracking_uri"])
    runs = {r.data.tags["ner_ray.trial_id"]: r for r in client.search_runs([client.get_experiment_by_name("span_study")
                                                                          .experiment_id], "tags.`ner_ray.trial_id` != ''")}
    assert runs["t2"].data.metrics["served_test_f1"] == expected["test_f1"] and "served_test_f1" not in runs["t1"].data.metrics
    assert entry["mlflow_run_id"] == runs["t2"].info.run_id
    assert main(["evaluate", "--endpoint", f"{service}/study", "demo", "--split", "test", "--study", str(study)]) == 0
    assert len(json.loads((study / "results.json").read_text())["served"]) == 1  # a rerun replaces its entry
    assert "recorded as served test_f1 of span_study:span" in capsys.readouterr().out


def test_a_replica_killed_under_load_is_restarted_and_a_retried_request_succeeds(service):
    """Last in this file: it kills the span replica (Serve's controller starts a new one)."""
    import time

    import psutil

    prompt = {"prompt": SEED_PROMPT, "max_tokens": 64, "temperature": 0}
    with ThreadPoolExecutor(8) as pool:
        inflight = [pool.submit(call, f"{service}/span/v1/completions", prompt) for _ in range(8)]
        replicas = [p for p in psutil.process_iter(["cmdline"]) if "ServeReplica:span" in " ".join(p.info["cmdline"] or [])]
        assert replicas, "no span replica process found"
        for replica in replicas:
            replica.kill()
        statuses = [f.result()[0] for f in inflight]
    assert all(s in (200, 500, 502, 503) for s in statuses)  # in flight when killed: answered or refused, not hung
    deadline, answer = time.time() + 180, (0, None)
    while time.time() < deadline:
        answer = call(f"{service}/span/v1/completions", prompt)
        if answer[0] == 200:
            break
        time.sleep(1)
    assert answer[0] == 200 and answer[1]["choices"][0]["text"] == " 0-9 ; 17-30"
