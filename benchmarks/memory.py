"""Memory: peak memory of LoRA r16 vs full fine-tuning (minilm-l6, NCBI-disease windows, same batch),
each a short `ner-ray train` run of N optimizer steps through TorchTrainer (1 worker).

Two figures per run, both from the worker process: peak memory (peak RSS on CPU,
torch.cuda.max_memory_allocated on GPU) and training memory (that peak while training minus what the
loaded process held when training started: gradients, optimizer state, activations). The ratio LoRA / full
is taken for both, like with like: LoRA against full fine-tuning, and LoRA with gradient checkpointing
against full fine-tuning with gradient checkpointing. On CPU the peak RSS includes the
Python/torch/Ray/tokenizer/data baseline that all runs share, which a 22M-parameter model's weights and
optimizer state barely exceed. Every run uses the precision `train.precision: auto` picks here.

With --bert-base-shaped the encoder is BERT-base sized (12 layers, hidden 768, 110M parameters, the
size of BioBERT/PubMedBERT), randomly initialised from a config with minilm-l6's vocabulary: memory
does not depend on the weights' values, and the hub (where BioBERT lives) is not reachable here.
Two more runs add gradient checkpointing (`train.gradient_checkpointing: true`) to each; one more turns LoRA's
dropout off (`benchmarks/memory_attribution.py` counts what that dropout keeps for backward).

    python benchmarks/memory.py --steps 20
    python benchmarks/memory.py --steps 10 --bert-base-shaped
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import record  # noqa: E402

from ner_ray.config import StudyConfig  # noqa: E402
from ner_ray.train.run import train_experiment  # noqa: E402

RUNS = {
    "full": {"lora": None, "gradient_checkpointing": False},
    "lora-r16": {"lora": {"r": 16, "alpha": 32}, "gradient_checkpointing": False},
    "lora-r16, dropout 0": {"lora": {"r": 16, "alpha": 32, "dropout": 0.0}, "gradient_checkpointing": False},
    "full + gradient checkpointing": {"lora": None, "gradient_checkpointing": True},
    "lora-r16 + gradient checkpointing": {"lora": {"r": 16, "alpha": 32}, "gradient_checkpointing": True},
}
# each LoRA run against the full fine-tune that differs from it only in LoRA
BASELINE = {"lora-r16": "full", "lora-r16, dropout 0": "full", "lora-r16 + gradient checkpointing": "full + gradient checkpointing"}


def bert_base_shaped(folder: Path) -> str:
    """A randomly initialised BERT-base-sized encoder with minilm-l6's tokenizer, saved as safetensors."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from ner_ray.families.models import resolve_model

    source = resolve_model("minilm-l6")
    tokenizer = AutoTokenizer.from_pretrained(source)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                        intermediate_size=3072, max_position_embeddings=512)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--bert-base-shaped", action="store_true", help="a 110M-parameter encoder instead of minilm-l6")
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    args = parser.parse_args()
    os.environ["NER_RAY_DATA"] = args.data_dir
    model, label = "minilm-l6", "minilm-l6"
    if args.bert_base_shaped:
        model, label = bert_base_shaped(Path("runs/bench_memory/bert-base-shaped").resolve()), "BERT-base-shaped encoder"
    result = {}
    for name, run in RUNS.items():
        config = StudyConfig.model_validate({
            "data": {"corpus": "ncbi_disease", "max_length": 128, "test_split": None},
            "model": {"name": model, "lora": run["lora"]},
            "train": {"max_steps": args.steps, "eval_steps": args.steps, "batch_size": 16, "output_dir": "runs/bench_memory",
                      "gradient_checkpointing": run["gradient_checkpointing"]},
            "resources": {"num_workers": 1, "cpus_per_worker": 2},
        })
        metrics = train_experiment(config, "memory-" + "".join(c if c.isalnum() else "-" for c in name),
                                   Path("runs/bench_memory"))
        result[name] = {k: metrics[k] for k in ("peak_memory_mb", "training_memory_mb", "trainable_percent",
                                                "steady_samples_per_second", "train_precision")}
    ratios = {}
    for name, baseline in BASELINE.items():
        ratios[name] = {"against": baseline,
                        "peak": result[name]["peak_memory_mb"] / result[baseline]["peak_memory_mb"],
                        "training": result[name]["training_memory_mb"] / result[baseline]["training_memory_mb"]}
    result["ratios"] = ratios
    precision = result["full"]["train_precision"]

    def ratio_cells(name: str) -> str:
        if name not in ratios:
            return "– | – | –"
        r = ratios[name]
        return f"{r['against']} | {r['peak']:.2f} | {r['training']:.2f}"

    table = "\n".join(["| run | peak MB | training MB (peak - loaded) | trainable % | against | ratio: peak | ratio: training |",
                       "| --- | ---: | ---: | ---: | --- | ---: | ---: |"] + [
        f"| {name} | {result[name]['peak_memory_mb']:.0f} | {result[name]['training_memory_mb']:.0f} | "
        f"{result[name]['trainable_percent']:.2f} | {ratio_cells(name)} |" for name in RUNS
    ])
    record(f"Memory: LoRA r16 vs full fine-tuning ({label}, NCBI-disease, batch 16, 128-token windows, {precision})",
           result, table)


if __name__ == "__main__":
    main()
