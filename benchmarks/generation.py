"""Greedy generation throughput of a saved span_gen model: batched (left-padded, KV cache, one generate call per
batch) vs one sentence at a time, on the first N test sentences of a corpus, arms interleaved (A B A B ...), the
same decoding (constrained or not, as the model was trained) and precision, after an untimed pass that compiles each
sentence's grammar; checks the two give the same outputs. Batches are formed in `in_length_order`, as every prediction.

    python benchmarks/generation.py MODEL_DIR --corpus ncbi_disease [--sentences 64] [--batch-size 16] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import record  # noqa: E402

from ner_ray.inference.encode import encode_documents  # noqa: E402
from ner_ray.inference.evaluate import corpus_documents  # noqa: E402
from ner_ray.inference.model_files import load_model  # noqa: E402
from ner_ray.inference.predict import predict_rows  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--corpus", default="ncbi_disease")
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--sentences", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    os.environ["NER_RAY_DATA"] = args.data_dir
    loaded = load_model(args.model_dir)
    family = loaded.family
    documents, _ = corpus_documents(args.corpus, "test")
    bare = [doc.with_spans([]) for doc in documents[:40]]
    examples = encode_documents(bare, family, training=False)[: args.sentences]
    # untimed: every sentence's grammar compiled once (the constraint's cache keeps them, as it does across a run's
    # evaluations), so that neither arm pays the compiling and the other reads the cache
    predict_rows(family, loaded.model, examples, args.batch_size, loaded.precision)
    seconds: dict[str, list[float]] = {"batched": [], "one_at_a_time": []}
    outputs: dict[str, list] = {}
    for _ in range(args.rounds):
        for arm, size in (("batched", args.batch_size), ("one_at_a_time", 1)):
            start = time.perf_counter()
            rows = predict_rows(family, loaded.model, examples, size, loaded.precision)
            seconds[arm].append(time.perf_counter() - start)
            outputs[arm] = [family.completion(row[1]) for row in rows]
    same = sum(a == b for a, b in zip(outputs["batched"], outputs["one_at_a_time"]))
    medians = {arm: statistics.median(values) for arm, values in seconds.items()}
    result = {
        "sentences": len(examples), "batch_size": args.batch_size, "rounds": args.rounds, "precision": loaded.precision,
        "constrained": family.constrained, "seconds": seconds, "median_seconds": medians,
        "sentences_per_second": {arm: len(examples) / m for arm, m in medians.items()},
        "speedup": medians["one_at_a_time"] / medians["batched"], "identical_outputs": same,
    }
    record(f"span_gen greedy generation: batched ({args.batch_size}) vs one sentence at a time, {len(examples)} "
           f"{args.corpus} test sentences, {loaded.precision}, constrained={family.constrained}", result)


if __name__ == "__main__":
    main()
