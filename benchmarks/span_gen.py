"""Generative span-string NER quality: SmolLM2-135M-Instruct with LoRA (family span_gen) on a corpus, for the
`offsets` and `mentions` targets, each trained once and decoded greedily with the grammar constraint (items sorted, as
trained), with the any-order grammar (`model.span_gen.item_order: any`) and without a constraint (`--decodings`;
each rescores dev, where a default decoding is chosen, and test); F1 (untyped, strict, windows from the text alone),
invalid / hallucination / duplicate / truncation rates and the teacher-forced vs greedy gap on dev, through the same
`ner-ray train` path users run (search_spaces/lora_span.yaml's settings with its CPU overrides). `--typed` writes and
scores the entity types too (per-type F1 beside the overall one); `--dev-docs N` selects on the first N dev documents
only (greedy decoding of a whole BC5CDR dev split is ~25 minutes here), test is always whole.

    python benchmarks/span_gen.py --corpus ncbi_disease --epochs 2 --lr 3e-4 [--subsample 0.2] [--targets offsets mentions]
    python benchmarks/span_gen.py --corpus bc5cdr --typed --dev-docs 40 --targets mentions --epochs 1 --lr 3e-4 --decodings
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus_cut import cut_corpus  # noqa: E402
from record import record  # noqa: E402

from ner_ray.config import load_study  # noqa: E402
from ner_ray.inference.evaluate import evaluate_model, progress_bar  # noqa: E402
from ner_ray.train.run import train_experiment  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RATES = ("invalid_rate", "hallucination_rate", "duplicate_rate", "truncated_rate")


DECODINGS = {"unconstrained": {"constrained": False}, "any-order": {"item_order": "any"}}  # beside the trained model's own


def decoding_copy(model_dir: Path, decoding: str) -> Path:
    """The saved model's metadata with DECODINGS[decoding] set under model.span_gen, beside it (weights shared by
    symlink)."""
    copy = model_dir.with_name(f"{model_dir.name}-{decoding}")
    copy.mkdir(exist_ok=True)
    for item in model_dir.iterdir():
        if item.name != "ner_ray.json" and not (copy / item.name).exists():
            (copy / item.name).symlink_to(item.resolve())
    meta = json.loads((model_dir / "ner_ray.json").read_text())
    meta["config"]["model"]["span_gen"].update(DECODINGS[decoding])
    (copy / "ner_ray.json").write_text(json.dumps(meta))
    return copy


def rescored(model_dir: Path, corpus: str, fmt: str | None, decoding: str) -> dict[str, float | None]:
    """A decoding's dev F1 (what chooses a default decoding) and its test scores and rates."""
    scores = {}
    for split in ("dev", "test"):
        with progress_bar(f"{decoding} {split}") as progress:
            scores[split] = evaluate_model(model_dir, corpus, split, fmt=fmt, progress=progress)[split]
    dev, test = scores["dev"], scores["test"]
    return {"dev_f1": dev["f1"], "test_f1": test["f1"], "test_precision": test["precision"], "test_recall": test["recall"],
            **{k: test.get(k) for k in RATES}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", default="ncbi_disease")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--subsample", type=float, default=None, help="share of the training documents (default: all)")
    parser.add_argument("--targets", nargs="*", default=["offsets", "mentions"])
    parser.add_argument("--typed", action="store_true", help="completions carry the entity type (model.span_gen.typed)")
    parser.add_argument("--dev-docs", type=int, default=0, help="select on the first N dev documents (0: all)")
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output-dir", default="runs/bench_span_gen")
    parser.add_argument("--decodings", nargs="*", default=list(DECODINGS), choices=list(DECODINGS),
                        help="the decodings that rescore dev and test beside the trained model's own (sorted, constrained) "
                        "one (none: that one alone)")
    parser.add_argument("--reuse", action="store_true", help="a target already trained in --output-dir (its metrics.json and "
                        "model/) is scored again, not retrained")
    args = parser.parse_args()
    os.environ["NER_RAY_DATA"] = args.data_dir
    base = load_study(ROOT / "search_spaces" / "lora_span.yaml").resolve("lora_span")
    corpus, fmt = args.corpus, None
    if args.dev_docs:
        corpus = str(cut_corpus(args.corpus, {"train": 0, "dev": args.dev_docs, "test": 0}, Path(args.output_dir) / "corpus"))
        fmt = "pubtator"
    summary = {}
    for target in args.targets:
        config = base.with_updates({
            "model.name": "smollm2-135m", "model.backend": "peft", "resources.use_gpu": False,
            "resources.cpus_per_worker": os.cpu_count() or 1, "data.corpus": corpus, "data.format": fmt,
            "data.subsample": args.subsample, "model.span_gen.target": target, "model.span_gen.typed": args.typed, "train.epochs": args.epochs, "train.lr": args.lr,
            "train.batch_size": args.batch_size, "train.seed": args.seed, "train.output_dir": args.output_dir,
            "search": {}, "tune.searcher.points_to_evaluate": [], "tracking.enabled": False})
        name = f"{args.corpus}-{target}" + ("-typed" if args.typed else "")
        model_dir = Path(args.output_dir) / name / "model"
        trained = model_dir.parent / "metrics.json"
        if args.reuse and trained.is_file():
            metrics = json.loads(trained.read_text())
        else:
            metrics = train_experiment(config, name, Path(args.output_dir))
        others = {decoding: rescored(decoding_copy(model_dir, decoding), corpus, fmt, decoding)
                  for decoding in args.decodings}
        summary[target] = {
            "constrained": {"dev_f1": metrics["dev_f1"], "test_f1": metrics["test_f1"],
                            "test_precision": metrics["test_precision"], "test_recall": metrics["test_recall"],
                            **{k: metrics["test"].get(k) for k in RATES}},
            "test_f1_per_type": {t: v["f1"] for t, v in metrics["test"].get("per_type", {}).items()} if args.typed else None,
            "test_untyped_f1": metrics["test"].get("untyped", {}).get("f1") if args.typed else None,
            **others,
            "dev_f1": metrics["dev_f1"], "dev_fast_f1": metrics.get("dev_fast_f1"),
            "dev_greedy_fast_gap": metrics.get("dev_greedy_fast_gap"), "train_seconds": metrics["train_seconds"],
            "steady_samples_per_second": metrics["steady_samples_per_second"], "peak_memory_mb": metrics["peak_memory_mb"],
            "trainable_percent": metrics["trainable_percent"], "train_precision": metrics["train_precision"],
            "train_windows": metrics["train_windows"],
        }
    precision = ", ".join(sorted({s["train_precision"] for s in summary.values()}))
    rows = ["| target | decoding | dev F1 | test F1 | P | R | invalid | halluc. | dup. | truncated |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for target, result in summary.items():
        for decoding in ("constrained", *args.decodings):
            r = result[decoding]
            rows.append(f"| {target} | {decoding} | {r['dev_f1']:.4f} | {r['test_f1']:.4f} | {r['test_precision']:.4f} | "
                        f"{r['test_recall']:.4f} | "
                        + " | ".join(f"{r[k]:.3f}" if r[k] is not None else "-" for k in RATES) + " |")
    if args.typed:
        rows += ["", "| target | strict test F1 per type (constrained) | untyped |", "|---|---|---|"]
        rows += [f"| {target} | " + ", ".join(f"{t} {f1:.3f}" for t, f1 in result["test_f1_per_type"].items())
                 + f" | {result['test_untyped_f1']:.3f} |" for target, result in summary.items()]
    share = f"{args.subsample:.0%} of the" if args.subsample else "the full"
    dev = f"the first {args.dev_docs} dev documents" if args.dev_docs else "the whole dev split"
    record(f"span_gen quality: smollm2-135m LoRA r8 on {args.corpus} ({share} training set, {args.epochs} epoch(s), lr "
           f"{args.lr}, batch {args.batch_size}; {'typed' if args.typed else 'untyped'} strict test F1 on the whole test "
           f"split, selected on {dev}, windows from the text alone; seed {args.seed}, {precision})",
           summary, "\n".join(rows))


if __name__ == "__main__":
    main()
