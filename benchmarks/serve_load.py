"""Load on one served span_gen model: N of the seed's /v1/completions requests (its exact body) from C concurrent
clients against one engine (hf unless told), sentences from a corpus split cycled in order. Records failures (any
exception or non-200 answer), latency percentiles, requests/s and the engine calls that served them (fewer than
the requests when Serve batched them).

    python benchmarks/serve_load.py MODEL_DIR [--requests 500 --concurrency 32 --engine hf]
    python benchmarks/serve_load.py /tmp/smollm2-span --untrained   # builds SmolLM2-135M span_gen as serve.py does
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
from serve import model_and_sentences, model_arguments, seed_completion  # noqa: E402

from ner_ray.config import ServeConfig  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def timed(base: str, sentence: str) -> tuple[float, str | None]:
    """(seconds, None) for a request answered with a completion; (seconds, the error) otherwise."""
    start = time.perf_counter()
    try:
        seed_completion(base, sentence)
        return time.perf_counter() - start, None
    except Exception as error:  # noqa: BLE001 - every failure is counted, whatever its kind
        return time.perf_counter() - start, f"{type(error).__name__}: {error}"


def stats(base: str) -> dict:
    """The service's /v1/stats (engine calls so far)."""
    with urllib.request.urlopen(f"{base}/v1/stats", timeout=60) as response:
        return json.loads(response.read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    model_arguments(parser)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--engine", default="hf")
    args = parser.parse_args()
    loaded, _, sentences = model_and_sentences(args)
    sentences = [sentences[i % len(sentences)] for i in range(args.requests)]

    import ray
    from ray import serve as ray_serve

    from ner_ray.serve.app import build_app

    port = 8766
    base = f"http://127.0.0.1:{port}"
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="ERROR")
    ray_serve.start(http_options={"host": "127.0.0.1", "port": port})
    settings = ServeConfig(port=port, engine=args.engine, max_batch_size=args.concurrency, batch_wait_timeout_s=0.02)
    ray_serve.run(build_app(args.model_dir, settings), name=args.engine, route_prefix="/")
    seed_completion(base, sentences[0])  # warm-up: grammar compiler, first generate
    calls_before = stats(base).get("engine_calls")  # hf: Serve's batches; vllm batches itself (its peak_running below)
    start = time.perf_counter()
    with ThreadPoolExecutor(args.concurrency) as pool:
        answers = list(pool.map(lambda s: timed(base, s), sentences))
    wall = time.perf_counter() - start
    after = stats(base)
    calls = after["engine_calls"] - calls_before if calls_before is not None else None
    ray_serve.shutdown()
    ray.shutdown()
    latencies = [seconds for seconds, error in answers if error is None]
    errors = [error for _, error in answers if error is not None]
    result = {
        "model": str(args.model_dir), "untrained": args.untrained, "engine": args.engine, "precision": loaded.precision,
        "requests": args.requests, "concurrency": args.concurrency, "distinct_sentences": len(set(sentences)),
        "failures": len(errors), "first_errors": errors[:5], "wall_seconds": wall, "requests_per_second": args.requests / wall,
        "engine_calls": calls, "requests_per_engine_call": args.requests / max(calls, 1) if calls is not None else None,
        "engine_peak_running": after.get("peak_running"),
        "latency_seconds": {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95),
                            "p99": percentile(latencies, 99), "max": max(latencies), "mean": statistics.fmean(latencies)}
        if latencies else None,
    }
    record(f"Serve load: {args.requests} seed requests at concurrency {args.concurrency}, {args.engine} engine, "
           f"{args.corpus} {args.split} sentences, {loaded.precision}", result)


if __name__ == "__main__":
    main()
