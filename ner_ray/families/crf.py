"""Family crf: the encoder tagger with a linear-chain CRF (pytorch-crf) over the tagged positions.

The CRF runs over the positions that carry a tag (first subwords, or all subwords), packed to the
left so that its mask is contiguous (`tagger.pack`); TaggerModel.forward computes its negative
log-likelihood, and Viterbi decoding gives the best label sequence (only valid BIO ones with model.head.constrained).
"""

from __future__ import annotations

import torch

from ner_ray.families.tagger import EncoderFamily, TaggerModel, bio_crf, viterbi_ids


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
        """Viterbi under the learned transitions (decode gets the unwrapped model: FamilyTrainer.prediction_step);
        with model.head.constrained, the transitions BIO forbids are forbidden on top of them."""
        mask = batch["label_mask"].bool()
        if not self.config.model.head.constrained:
            return viterbi_ids(model.crf, outputs["logits"].float(), mask)
        scores = outputs["logits"].float().cpu()
        return viterbi_ids(bio_crf(self.labels, model.crf), scores, mask.cpu()).to(mask.device)
