"""Served span_gen throughput, per engine (hf, and vllm where installed): the seed's client (one /v1/completions
request at a time, its exact request), the same client from 16 threads at once (Serve batches their prompts), and
one /v1/ner/evaluate request for the documents those sentences come from; arms interleaved (every arm of every
engine once per round), one local Serve app per engine, the model's own precision. Counts how many completions
equal the hf engine's sequential ones.

    python benchmarks/serve.py MODEL_DIR [--engines hf,vllm --corpus ncbi_disease --split dev --documents 6 --rounds 2]
    python benchmarks/serve.py /tmp/smollm2-span --untrained   # first builds SmolLM2-135M span_gen, LoRA r8 as initialised
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import record  # noqa: E402

from ner_ray.config import ServeConfig, StudyConfig  # noqa: E402
from ner_ray.inference.encode import encode_documents  # noqa: E402
from ner_ray.inference.evaluate import corpus_documents  # noqa: E402
from ner_ray.inference.model_files import load_model, save_model  # noqa: E402


def build_untrained(folder: Path, precision: str = "auto") -> None:
    """SmolLM2-135M span_gen with a fresh LoRA r8 (B = 0: the base model's own outputs, under the grammar)."""
    from ner_ray.registry import FAMILIES

    config = StudyConfig.model_validate({"data": {"corpus": "ncbi_disease", "max_length": 192},
                                         "model": {"name": "smollm2-135m", "family": "span_gen", "backend": "peft",
                                                   "lora": {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": "all-linear"}},
                                         "train": {"precision": precision}})
    family = FAMILIES.get("span_gen")(config, ("Disease",))
    from ner_ray.inference.predict import resolve_precision

    save_model(family.build().eval(), family, folder, resolve_precision(precision))


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=3600) as response:
        return json.loads(response.read())


def seed_completion(base: str, sentence: str) -> str:
    """The seed's request, as it sends it."""
    body = {"prompt": f"<NER> {sentence}" + " <TAG>", "max_tokens": 64, "temperature": 0}
    return post(f"{base}/v1/completions", body)["choices"][0]["text"]


def model_arguments(parser: argparse.ArgumentParser) -> None:
    """The served model and the corpus split its sentences come from (this script's and serve_load.py's)."""
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--untrained", action="store_true", help="build the untrained SmolLM2 span_gen model first")
    parser.add_argument("--precision", default="auto", help="the untrained model's precision (auto, bf16, fp32)")
    parser.add_argument("--corpus", default="ncbi_disease")
    parser.add_argument("--split", default="dev")
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))


def model_and_sentences(args: argparse.Namespace) -> tuple:
    """(the loaded model, the split's documents, their windows' sentences as the model's family cuts them)."""
    os.environ["NER_RAY_DATA"] = args.data_dir
    if args.untrained and not (args.model_dir / "ner_ray.json").is_file():
        build_untrained(args.model_dir, args.precision)
    loaded = load_model(args.model_dir)
    documents, _ = corpus_documents(args.corpus, args.split)
    documents = documents[: getattr(args, "documents", None)]
    sentences = [e.window.text for e in encode_documents([d.with_spans([]) for d in documents], loaded.family, training=False)]
    return loaded, documents, sentences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    model_arguments(parser)
    parser.add_argument("--documents", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--engines", default="hf", help="comma-separated: hf, vllm")
    args = parser.parse_args()
    loaded, documents, sentences = model_and_sentences(args)
    gold = [{"id": d.id, "text": d.text, "spans": [{"start": s.start, "end": s.end, "type": s.type} for s in d.spans]}
            for d in documents]

    import ray
    from ray import serve

    from ner_ray.serve.app import build_app

    port = 8765
    engines = args.engines.split(",")
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="ERROR")
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    for engine in engines:
        settings = ServeConfig(port=port, engine=engine, max_batch_size=args.threads, batch_wait_timeout_s=0.02)
        serve.run(build_app(args.model_dir, settings), name=engine, route_prefix=f"/{engine}")
        seed_completion(f"http://127.0.0.1:{port}/{engine}", sentences[0])  # warm-up: grammar compiler, first generate
    arms = [(engine, arm) for engine in engines for arm in ("seed_sequential", f"seed_{args.threads}_threads", "ner_evaluate")]
    seconds: dict[str, list[float]] = {f"{engine}/{arm}": [] for engine, arm in arms}
    outputs: dict[str, list[str]] = {}
    scores: dict[str, dict] = {}
    for _ in range(args.rounds):
        for engine, arm in arms:
            base = f"http://127.0.0.1:{port}/{engine}"
            start = time.perf_counter()
            if arm == "seed_sequential":
                outputs[f"{engine}/{arm}"] = [seed_completion(base, s) for s in sentences]
            elif arm == "ner_evaluate":
                scores[engine] = post(f"{base}/v1/ner/evaluate", {"documents": gold, "split": args.split})
            else:
                with ThreadPoolExecutor(args.threads) as pool:
                    outputs[f"{engine}/{arm}"] = list(pool.map(lambda s, base=base: seed_completion(base, s), sentences))
            seconds[f"{engine}/{arm}"].append(time.perf_counter() - start)
    serve.shutdown()
    ray.shutdown()
    medians = {arm: statistics.median(values) for arm, values in seconds.items()}
    rate = {arm: len(sentences) / m for arm, m in medians.items()}
    reference = outputs[f"{engines[0]}/seed_sequential"]
    result = {
        "model": str(args.model_dir), "untrained": args.untrained, "sentences": len(sentences), "documents": len(documents),
        "precision": loaded.precision, "constrained": loaded.family.constrained, "rounds": args.rounds, "engines": engines,
        "seconds": seconds, "median_seconds": medians, "sentences_per_second": rate,
        "speedup_vs_sequential": {arm: rate[arm] / rate[f"{arm.split('/')[0]}/seed_sequential"] for arm in rate},
        f"same_as_{engines[0]}_sequential": {arm: sum(a == b for a, b in zip(reference, out)) for arm, out in outputs.items()},
        f"{args.split}_f1_served": {engine: answer.get(f"{args.split}_f1") for engine, answer in scores.items()},
    }
    record(f"Serve ({', '.join(engines)}): the seed's sequential client vs {args.threads} concurrent clients vs /v1/ner/evaluate, "
           f"{len(sentences)} {args.corpus} {args.split} sentences, {loaded.precision}", result)


if __name__ == "__main__":
    main()
