"""Training throughput of family span_gen against a plain HF Trainer + PEFT script, one run side by side: the same
model (smollm2-135m), data (NCBI-disease training sentences, prompt "<NER> {sentence} <TAG>", completion " s-e ; s-e"
+ eos, prompt masked), LoRA (r 8, all linear layers, the special tokens' rows trainable), batch, gradient
checkpointing and precision (`train.precision: auto`'s choice). Arms alternate (plain, ours, plain, ours, ...), each
in a fresh Python process (so that no arm runs beside the Ray cluster an earlier `ours` left running, or with the
thread pools of another); each figure is the median of its rounds, steady samples/s excluding the first 5 steps and
evaluation. Ours evaluates once, on 16 dev sentences, after its last step (outside the timed steps).

    python benchmarks/span_gen_throughput.py --steps 40 --rounds 2
    python benchmarks/span_gen_throughput.py --arms plain,ours_main,ours --steps 40 --rounds 2   # Ray's share, ours
    python benchmarks/span_gen_throughput.py --arms plain,ours_main,ours,ours_one_arena --steps 40 --rounds 2

The plain script computes the logits of every position (HF's forward with `labels`); ours those of the completion
only (`CausalLmFamily.head_at_labels`), so ours_main may run faster than plain.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import record  # noqa: E402

from ner_ray.config import StudyConfig  # noqa: E402
from ner_ray.data.corpora import load_corpus  # noqa: E402
from ner_ray.data.pubtator import write_pubtator  # noqa: E402
from ner_ray.inference.predict import resolve_precision  # noqa: E402
from ner_ray.train.accounting import ThroughputMeter, peak_memory_mb  # noqa: E402
from ner_ray.train.callbacks import ThroughputCallback  # noqa: E402
from ner_ray.train.run import train_experiment  # noqa: E402

SPECIALS = ["<NER>", "<TAG>", "<O>", "<B>", "<I>"]


def corpus_folder(folder: Path) -> Path:
    """NCBI-disease's training abstracts and its first 3 dev abstracts as a corpus folder (train.txt, dev.txt)."""
    corpus = load_corpus("ncbi_disease", splits=("train", "dev"))
    write_pubtator(folder / "train.txt", corpus.splits["train"])
    write_pubtator(folder / "dev.txt", corpus.splits["dev"][:3])
    return folder


def run_plain(folder: Path, steps: int, batch_size: int, precision: str) -> dict:
    """A plain script: sentences from ner_ray's own windows (the same text), HF Trainer, PEFT LoRA, no Ray."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from ner_ray.data.span_string import format_span_string
    from ner_ray.families.models import resolve_model
    from ner_ray.inference.encode import training_windows
    from ner_ray.registry import FAMILIES

    bf16 = precision == "bf16"
    config = study(folder, steps, batch_size, precision)
    start = time.perf_counter()
    source = resolve_model("smollm2-135m")
    tokenizer = AutoTokenizer.from_pretrained(source)
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIALS}, replace_extra_special_tokens=False)
    tokenizer.pad_token = tokenizer.eos_token
    family = FAMILIES.get("span_gen")(config, ("Disease",), tokenizer)  # its windows only: the sentences ours trains on
    rows = []
    for doc in load_corpus(str(folder), splits=("train",)).splits["train"]:
        for window in training_windows(doc, family).windows:
            prompt = tokenizer(f"<NER> {window.text} <TAG>")["input_ids"]
            target = tokenizer(format_span_string(window.spans)[len("<TAG>"):], add_special_tokens=False)["input_ids"]
            target += [tokenizer.eos_token_id]
            rows.append({"input_ids": prompt + target, "attention_mask": [1] * (len(prompt) + len(target)),
                         "labels": [-100] * len(prompt) + target})
    model = AutoModelForCausalLM.from_pretrained(source)
    model.resize_token_embeddings(len(tokenizer))
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules="all-linear",
                                             task_type="CAUSAL_LM",
                                             trainable_token_indices=tokenizer.convert_tokens_to_ids(SPECIALS)))
    meter = ThroughputMeter(batch_size)
    args = TrainingArguments(
        output_dir=tempfile.mkdtemp(), max_steps=steps, per_device_train_batch_size=batch_size, learning_rate=2e-4,
        bf16=bf16, use_cpu=True, report_to="none", save_strategy="no", eval_strategy="no", logging_steps=50,
        train_sampling_strategy="group_by_length", gradient_checkpointing=True, disable_tqdm=True, seed=42,
        warmup_steps=0.05, remove_unused_columns=False)
    trainer = Trainer(model=model, args=args, train_dataset=rows, callbacks=[ThroughputCallback(meter)],
                      data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True))
    trainer.train()
    return {"steady_samples_per_second": meter.samples_per_second, "wall_seconds": time.perf_counter() - start,
            "peak_memory_mb": peak_memory_mb(), "threads": torch.get_num_threads(), "train_windows": len(rows)}


def study(folder: Path, steps: int, batch_size: int, precision: str, output_dir: str = "runs") -> StudyConfig:
    """The arms' study; `output_dir` matters to the arms that train through ner_ray (the plain arm reads its windows)."""
    return StudyConfig.model_validate({
        "data": {"corpus": str(folder), "test_split": None, "max_length": 192},
        "model": {"name": "smollm2-135m", "family": "span_gen", "backend": "peft",
                  "lora": {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": "all-linear"},
                  "span_gen": {"max_new_tokens": 64}},
        "train": {"max_steps": steps, "eval_steps": steps, "batch_size": batch_size, "lr": 2e-4, "warmup_ratio": 0.05,
                  "precision": precision, "gradient_checkpointing": True, "output_dir": output_dir},
        "resources": {"num_workers": 1, "cpus_per_worker": os.cpu_count() or 1},
        "tracking": {"enabled": False},
    })


def run_ours(folder: Path, steps: int, batch_size: int, precision: str) -> dict:
    """ner_ray's path, its run (checkpoints, adapter, Ray's storage) in a temporary folder removed after."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_span_gen_throughput-") as output_dir:
        metrics = train_experiment(study(folder, steps, batch_size, precision, output_dir), "span-throughput", Path(output_dir))
    return {"steady_samples_per_second": metrics["steady_samples_per_second"], "wall_seconds": time.perf_counter() - start,
            "peak_memory_mb": metrics["peak_memory_mb"], "training_memory_mb": metrics["training_memory_mb"],
            "threads": metrics["threads_per_worker"], "train_windows": metrics["train_windows"]}


def run_ours_in_process(folder: Path, steps: int, batch_size: int, precision: str) -> dict:
    """ner_ray's training step without Ray, on the main thread (throughput.train_without_ray): where the overhead
    is, Ray's or ours."""
    import torch
    from throughput import train_without_ray

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_span_gen_throughput-") as output_dir:
        rate, windows = train_without_ray(study(folder, steps, batch_size, precision, output_dir), output_dir)
    return {"steady_samples_per_second": rate, "wall_seconds": time.perf_counter() - start,
            "peak_memory_mb": peak_memory_mb(), "threads": torch.get_num_threads(), "train_windows": windows}


def run_ours_one_arena(folder: Path, steps: int, batch_size: int, precision: str) -> dict:
    """`ours` with the Ray workers' environment of an encoder study (MALLOC_ARENA_MAX=1, cpu_isolation.ONE_ARENA_ENV)."""
    from ner_ray.train import cpu_isolation

    cpu_isolation.one_malloc_arena = lambda family: True
    return run_ours(folder, steps, batch_size, precision)


def run_ours_nice15(folder: Path, steps: int, batch_size: int, precision: str) -> dict:
    """`ours` with the Ray workers at Ray's default niceness, 15 (ner_ray's local Ray runs them at 0)."""
    from ner_ray.train import cpu_isolation

    os.environ[cpu_isolation.WORKER_NICENESS] = "15"
    return run_ours(folder, steps, batch_size, precision)


ARMS = {"plain": run_plain, "ours_main": run_ours_in_process, "ours": run_ours, "ours_one_arena": run_ours_one_arena,
        "ours_nice15": run_ours_nice15}
LABELS = {"plain": "plain HF Trainer + PEFT script", "ours_main": "ner_ray span_gen's FamilyTrainer, no Ray (main thread)",
          "ours": "ner_ray span_gen (TorchTrainer, 1 worker)",
          "ours_one_arena": "ner_ray span_gen (TorchTrainer, 1 worker), workers with MALLOC_ARENA_MAX=1",
          "ours_nice15": "ner_ray span_gen (TorchTrainer, 1 worker), workers at Ray's niceness 15"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--arms", default="plain,ours", help="comma-separated, of: " + ", ".join(ARMS))
    parser.add_argument("--arm", choices=tuple(ARMS), help=argparse.SUPPRESS)  # one arm, in a child process
    parser.add_argument("--folder", help=argparse.SUPPRESS)  # the corpus folder the driver wrote
    args = parser.parse_args()
    os.environ["NER_RAY_DATA"] = args.data_dir
    precision = resolve_precision("auto")
    if args.arm:
        folder = Path(args.folder)
        result = ARMS[args.arm](folder, args.steps, args.batch_size, precision)
        print("ARM_RESULT " + json.dumps(result), flush=True)
        return
    folder = corpus_folder(Path(tempfile.mkdtemp(prefix="span-throughput-")))
    runs: dict[str, list[dict]] = {name: [] for name in args.arms.split(",")}
    for _ in range(args.rounds):
        for name, done in runs.items():
            child = subprocess.run([sys.executable, __file__, "--arm", name, "--folder", str(folder), "--steps", str(args.steps),
                                    "--batch-size", str(args.batch_size), "--data-dir", args.data_dir],
                                   capture_output=True, text=True, check=False)
            line = next((x for x in child.stdout.splitlines() if x.startswith("ARM_RESULT ")), None)
            if line is None:
                raise SystemExit(f"arm {name} failed (exit {child.returncode}):\n{child.stderr[-3000:]}")
            done.append(json.loads(line.split(" ", 1)[1]))
            print(name, f"{done[-1]['steady_samples_per_second']:.2f}", flush=True)
    rate = {name: statistics.median(r["steady_samples_per_second"] for r in rounds) for name, rounds in runs.items()}
    overhead = {name: 1 - rate[name] / rate["plain"] for name in rate if name != "plain"} if "plain" in rate else {}
    result = {"precision": precision, "rounds": args.rounds, "steps": args.steps, "batch_size": args.batch_size,
              "runs": runs, "median_steady_samples_per_second": rate, "overhead_vs_plain": overhead}

    def each(name: str) -> str:
        return ", ".join(f"{r['steady_samples_per_second']:.2f}" for r in runs[name])

    table = "\n".join([
        "| run | steady samples/s (median) | each round | peak MB (last round) | overhead vs the plain script |",
        "| --- | ---: | --- | ---: | ---: |",
        *(f"| {LABELS[name]} | {rate[name]:.2f} | {each(name)} | {runs[name][-1]['peak_memory_mb']:.0f} | "
          f"{f'{100 * overhead[name]:.1f}%' if name in overhead else ''} |" for name in runs)])
    record(f"span_gen training throughput: ner_ray vs a plain HF Trainer + PEFT script (smollm2-135m LoRA r8, NCBI-disease "
           f"sentences, batch {args.batch_size}, gradient checkpointing, {precision}, {args.rounds} interleaved rounds)",
           result, table)


if __name__ == "__main__":
    main()
