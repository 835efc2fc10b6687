"""Constrained BIO decoding: the same trained models scored with each position's argmax and with Viterbi over
valid BIO sequences (`model.head.constrained`), on dev and test.

Every saved model under RUNS (`ner-ray train`'s output: <experiment>/seed<N>/model, or <experiment>/model for
one seed) is loaded once; each split's
windows go through the encoder once, and both decodings read the same logits, so the two arms differ in decoding
only (same model, windows, batches and precision: the one the model trained in). The arm the run trained with (argmax
for models saved before `model.head.constrained` existed) must reproduce the test F1 in its metrics.json; the script
says so for every model.

    python benchmarks/constrained_decoding.py /tmp/bench/suite
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import record  # noqa: E402

from ner_ray.data.document import Document  # noqa: E402
from ner_ray.inference.decode import predicted_documents  # noqa: E402
from ner_ray.inference.encode import encode_documents  # noqa: E402
from ner_ray.inference.evaluate import corpus_documents, score_documents  # noqa: E402
from ner_ray.inference.model_files import load_model  # noqa: E402
from ner_ray.inference.predict import autocast, eval_batch_size  # noqa: E402

ARMS = ("argmax", "constrained")


def with_constrained(family, constrained: bool):
    """The same family (config, types, tokenizer) with model.head.constrained set."""
    config = family.config.with_updates({"model.head.constrained": constrained})
    return type(family)(config, family.types, family.tokenizer)


def score_both(loaded, documents: list[Document], types: tuple[str, ...]) -> dict[str, dict]:
    """{arm: strict scores} of one model on gold `documents`, both arms decoding the same logits."""
    import torch

    families = {arm: with_constrained(loaded.family, arm == "constrained") for arm in ARMS}
    bare = [Document(doc.id, doc.text, meta=dict(doc.meta)) for doc in documents]
    examples = encode_documents(bare, loaded.family, training=False)
    size = eval_batch_size(loaded.family.config.train)
    rows: dict[str, list] = {arm: [] for arm in ARMS}
    loaded.model.eval()
    with torch.no_grad(), autocast(loaded.precision):
        for start in range(0, len(examples), size):
            batch = loaded.family.collate([e.features for e in examples[start:start + size]])
            _, outputs = loaded.family.loss(loaded.model, batch)
            for arm, family in families.items():
                decoded = family.decode(loaded.model, outputs, batch)
                parts = decoded if isinstance(decoded, tuple) else (decoded,)
                for i in range(len(parts[0])):
                    row = tuple(p[i] for p in parts)
                    rows[arm].append(row if isinstance(decoded, tuple) else row[0])
    scores = {}
    for arm, family in families.items():
        predicted = predicted_documents(family, bare, examples, rows[arm])
        scores[arm] = score_documents(documents, predicted, types)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, help="a `ner-ray train` output folder (<experiment>/[seed<N>/]model)")
    parser.add_argument("--corpus", default="ncbi_disease")
    parser.add_argument("--splits", nargs="+", default=["dev", "test"])
    args = parser.parse_args()

    model_dirs = sorted({*args.runs.glob("*/seed*/model"), *args.runs.glob("*/model")})
    if not model_dirs:
        raise SystemExit(f"no saved models under {args.runs} (<experiment>/[seed<N>/]model)")
    corpora = {}
    runs = []
    for model_dir in model_dirs:
        loaded = load_model(model_dir)
        key = loaded.family.config.data.merge_types
        for split in args.splits:
            if (split, key) not in corpora:
                corpora[split, key] = corpus_documents(args.corpus, split, key)
        seeded = model_dir.parent.name.startswith("seed")
        run = {"experiment": (model_dir.parent.parent if seeded else model_dir.parent).name,
               "seed": loaded.family.config.train.seed, "family": loaded.family.name, "precision": loaded.precision}
        for split in args.splits:
            documents, types = corpora[split, key]
            for arm, scores in score_both(loaded, documents, types).items():
                run.update({f"{split}_{name}_{arm}": scores[name] for name in ("f1", "precision", "recall")})
        # the decoding the run trained and was scored with: a model saved before the key existed decoded argmax
        trained = "constrained" if loaded.meta["config"]["model"]["head"].get("constrained", False) else "argmax"
        run["trained_with"] = trained
        metrics_file = model_dir.parent / "metrics.json"
        if metrics_file.is_file() and "test" in args.splits:
            recorded = json.loads(metrics_file.read_text()).get("test_f1")
            run["recorded_test_f1"] = recorded
            run["reproduces_recorded"] = recorded is not None and abs(recorded - run[f"test_f1_{trained}"]) < 1e-9
        runs.append(run)
        print(json.dumps(run), flush=True)

    summary = {}
    for experiment in dict.fromkeys(r["experiment"] for r in runs):
        mine = [r for r in runs if r["experiment"] == experiment]
        summary[experiment] = {
            f"{split}_{name}_{arm}": [statistics.mean(r[f"{split}_{name}_{arm}"] for r in mine),
                                      statistics.stdev(r[f"{split}_{name}_{arm}"] for r in mine) if len(mine) > 1 else 0.0]
            for split in args.splits for name in ("f1", "precision") for arm in ARMS} | {"n": len(mine)}
    head = "| experiment | n | " + " | ".join(f"{s} F1 {a}" for s in args.splits for a in ARMS) + " | test P argmax | test P constrained |"
    lines = [head, "| --- | ---: |" + " ---: |" * (2 * len(args.splits) + 2)]
    for experiment, s in summary.items():
        cells = [f"{s[f'{split}_f1_{arm}'][0]:.4f} ± {s[f'{split}_f1_{arm}'][1]:.4f}" for split in args.splits for arm in ARMS]
        precisions = [f"{s[f'test_precision_{arm}'][0]:.4f}" for arm in ARMS] if "test" in args.splits else ["-", "-"]
        lines.append(f"| {experiment} | {s['n']} | " + " | ".join(cells + precisions) + " |")
    record(f"Constrained BIO decoding vs argmax, the same models ({args.runs}), {args.corpus} {'/'.join(args.splits)}",
           {"runs": runs, "summary": summary}, "\n".join(lines))


if __name__ == "__main__":
    main()
