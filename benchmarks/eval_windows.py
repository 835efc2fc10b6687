"""What cutting evaluation windows from the text alone costs: one trained model, one split, scored twice
in one run with the same batches and precision:
  1. windows cut from the text alone (what ner_ray does: a model in production has no gold);
  2. windows cut as training windows are, their sentence breaks and cuts moved off the gold entities (what
     ner_ray did before): the model still reads only text, but the gold chose where each window ends.
The difference is the optimism the gold gave the figure.

    python benchmarks/eval_windows.py runs/bench_quality/ncbi_disease-full/model ncbi_disease
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import record  # noqa: E402

from ner_ray.inference.decode import predicted_documents  # noqa: E402
from ner_ray.inference.encode import encode_documents  # noqa: E402
from ner_ray.inference.evaluate import corpus_documents, evaluate, score_documents  # noqa: E402
from ner_ray.inference.model_files import load_model  # noqa: E402
from ner_ray.inference.predict import document_predictor, eval_batch_size, predict_rows  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("corpus")
    parser.add_argument("--split", default="test")
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    args = parser.parse_args()
    os.environ["NER_RAY_DATA"] = args.data_dir
    loaded = load_model(args.model_dir)
    family, precision = loaded.family, loaded.precision
    documents, types = corpus_documents(args.corpus, args.split, family.config.data.merge_types)
    size = eval_batch_size(family.config.train)

    text_only, _ = evaluate(document_predictor(family, loaded.model, size, precision), documents, types=types)
    # The old way: the gold documents themselves decide the window boundaries (training windows).
    examples = encode_documents(documents, family, training=True)
    guided = score_documents(documents, predicted_documents(family, documents, examples,
                                                            predict_rows(family, loaded.model, examples, size, precision)), types)
    keys = ("f1", "precision", "recall", "tp", "fp", "fn", "gold_crossing_windows")
    result = {"model": str(args.model_dir), "corpus": args.corpus, "split": args.split, "precision": precision,
              "windows from the text alone": {k: text_only[k] for k in keys},
              "windows moved off the gold": {k: guided[k] for k in keys},
              "f1 difference (text alone - gold-guided)": text_only["f1"] - guided["f1"]}
    table = "\n".join(["| evaluation windows | test F1 | precision | recall | tp | fp | fn | gold entities cut by a window |",
                       "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"] + [
        f"| {name} | {s['f1']:.4f} | {s['precision']:.4f} | {s['recall']:.4f} | {s['tp']} | {s['fp']} | {s['fn']} | "
        f"{s['gold_crossing_windows']} |" for name, s in (("from the text alone (now)", text_only), ("moved off the gold (before)", guided))
    ] + ["", f"difference: {result['f1 difference (text alone - gold-guided)']:+.4f} F1"])
    record(f"Evaluation windows without gold: {args.corpus} {args.split}, one model scored both ways ({precision})",
           result, table)


if __name__ == "__main__":
    main()
