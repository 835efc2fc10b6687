"""Batched prediction in process: examples → the family's rows, at the precision the model trained in.

The HF Trainer predicts inside training (under its autocast); everything else (`ner-ray evaluate`,
Serve) predicts here, with the same batches (`eval_batch_size`, examples `in_length_order`: the Trainer is given
them in that order), the same family calls
(`loss` for the outputs, `decode` for the rows) and the same autocast, so the two give the same numbers. A
generative family that decodes greedily skips the teacher-forced forward here (`prediction_outputs`: nothing
outside the Trainer's dev evaluation reads it) and merges its adapter once for all batches (`predicting`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ner_ray.config import TrainConfig
from ner_ray.data.document import Document
from ner_ray.inference.decode import predicted_documents
from ner_ray.inference.encode import encode_documents, in_length_order

if TYPE_CHECKING:
    from ner_ray.families.base import Example, Family
    from ner_ray.inference.model_files import LoadedModel

PRECISIONS = ("bf16", "fp16", "fp32")


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AMX or AVX512-BF16); elsewhere bf16 is emulated and slow."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags for flag in (" amx_bf16", " avx512_bf16"))


def resolve_precision(precision: str) -> str:
    """train.precision made concrete: auto = bf16 on bf16-capable GPUs and on CPUs with AMX/AVX512-BF16,
    fp16 on older GPUs, fp32 elsewhere."""
    if precision != "auto":
        return precision
    import torch

    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_fast_bf16() else "fp32"


def autocast(precision: str, device_type: str = "cpu"):
    """The mixed-precision context the HF Trainer trains and evaluates under (weights stay fp32)."""
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    return torch.autocast(device_type=device_type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def eval_batch_size(train: TrainConfig) -> int:
    """Windows per batch when evaluating or predicting: train.eval_batch_size, else twice the training batch."""
    return train.eval_batch_size or train.batch_size * 2


def predict_rows(family: Family, model: Any, examples: Sequence[Example], batch_size: int, precision: str = "fp32") -> list[Any]:
    """One row per example (a tensor, or a tuple of tensors), in example order; batched in `in_length_order`."""
    import torch

    model.eval()
    device = next(model.parameters()).device
    order = in_length_order(examples, family)
    rows: list[Any] = [None] * len(examples)
    with torch.no_grad(), autocast(precision, device.type), family.predicting(model):
        for start in range(0, len(order), batch_size):
            positions = order[start : start + batch_size]
            batch = family.collate([examples[i].features for i in positions])
            batch = {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}
            outputs = family.prediction_outputs(model, batch)
            decoded = family.decode(model, outputs, batch)
            parts = decoded if isinstance(decoded, tuple) else (decoded,)
            for i, position in enumerate(positions):
                row = tuple(p[i].cpu() for p in parts)
                rows[position] = row if isinstance(decoded, tuple) else row[0]
    return rows


def document_predictor(family: Family, model: Any, batch_size: int | None = None,
                       precision: str = "fp32") -> Callable[[list[Document]], list[Document]]:
    """predict(documents) → predicted documents: evaluation windows, batched rows, the family's spans."""
    size = batch_size or eval_batch_size(family.config.train)

    def predict(documents: list[Document]) -> list[Document]:
        examples = encode_documents(documents, family, training=False)
        return predicted_documents(family, documents, examples, predict_rows(family, model, examples, size, precision))

    return predict


def predict_documents(loaded: LoadedModel, documents: Sequence[Document], batch_size: int | None = None,
                      precision: str | None = None) -> list[Document]:
    """A saved model's predictions for `documents`, read from their text alone: their own
    spans and relations are dropped before anything is encoded. At the precision the model trained in, or
    `precision`."""
    bare = [Document(doc.id, doc.text, meta=dict(doc.meta)) for doc in documents]
    predict = document_predictor(loaded.family, loaded.model, batch_size, precision or loaded.precision)
    return predict(bare)
