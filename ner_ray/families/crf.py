"""Family crf: the encoder tagger with a linear-chain CRF (pytorch-crf) over the tagged positions.

The CRF runs over the positions that carry a tag (first subwords, or all subwords), packed to the
left so that its mask is contiguous (`tagger.pack`); TaggerModel.forward computes its negative
log-likelihood, and Viterbi decoding gives the best label sequence.
"""

from __future__ import annotations

import torch

from ner_ray.families.tagger import IGNORE, EncoderFamily, TaggerModel, pack


class CrfTagging(EncoderFamily):
    """Emissions from the token classifier, negative CRF log-likelihood loss, Viterbi decoding."""

    name = "crf"
    crf = True

    def loss(self, model: TaggerModel, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        # the model's forward scores the tags with its CRF (under DDP every parameter must be used in forward)
        outputs = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                        crf_labels=batch["labels"], label_mask=batch["label_mask"])
        return outputs["crf_nll"], outputs

    def decode(self, model: TaggerModel, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        mask = batch["label_mask"].bool()
        emissions, packed_mask = pack(outputs["logits"].float(), mask)
        best = model.crf.decode(emissions, mask=packed_mask)  # decode gets the unwrapped model (FamilyTrainer.prediction_step)
        ids = torch.full_like(batch["label_mask"], IGNORE)
        for row, path in enumerate(best):
            positions = mask[row].nonzero().flatten()
            ids[row, positions] = torch.tensor(path[: len(positions)], dtype=ids.dtype, device=ids.device)
        return ids
