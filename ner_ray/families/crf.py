"""Family crf: the encoder tagger with a linear-chain CRF (pytorch-crf) over the tagged positions.

The CRF runs over the positions that carry a tag (first subwords, or all subwords), packed to the
left so that its mask is contiguous; Viterbi decoding gives the best label sequence.
"""

from __future__ import annotations

import torch

from ner_ray.families.base import IGNORE
from ner_ray.families.tagger import EncoderFamily, TaggerModel


def pack(values: torch.Tensor, mask: torch.Tensor, fill: float | int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Move the masked positions of each row to its front: (packed values, packed mask)."""
    lengths = mask.sum(1)
    width = max(int(lengths.max()), 1)
    # A stable sort on "not masked" puts masked positions first, in their original order.
    order = torch.sort((~mask).to(torch.int8), dim=1, stable=True).indices[:, :width]
    index = order if values.dim() == 2 else order.unsqueeze(-1).expand(-1, -1, values.size(-1))
    packed = values.gather(1, index)
    packed_mask = torch.arange(width, device=mask.device).unsqueeze(0) < lengths.unsqueeze(1)
    packed_mask[:, 0] = True  # torchcrf needs the first step on; a row without tags then scores one "O"
    if values.dim() == 2:
        packed = packed.masked_fill(~packed_mask, fill)
    return packed, packed_mask


class CrfTagging(EncoderFamily):
    """Emissions from the token classifier, negative CRF log-likelihood loss, Viterbi decoding."""

    name = "crf"
    crf = True

    def loss(self, model: TaggerModel, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        outputs = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        mask = batch["label_mask"].bool()
        emissions, packed_mask = pack(outputs["logits"].float(), mask)
        tags, _ = pack(batch["labels"], mask, fill=0)
        loss = -model.crf(emissions, tags, mask=packed_mask, reduction="mean")
        return loss, outputs

    def decode(self, model: TaggerModel, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        mask = batch["label_mask"].bool()
        emissions, packed_mask = pack(outputs["logits"].float(), mask)
        best = model.crf.decode(emissions, mask=packed_mask)
        ids = torch.full_like(batch["label_mask"], IGNORE)
        for row, path in enumerate(best):
            positions = mask[row].nonzero().flatten()
            ids[row, positions] = torch.tensor(path[: len(positions)], dtype=ids.dtype, device=ids.device)
        return ids
