"""Family token_cls: BERT-style token classification, full fine-tune or LoRA (all or the last k
layers), optionally LoRA first and the whole encoder unfrozen for the final epoch (train.py does the
unfreezing through `model.lora.unfreeze_last_epoch`)."""

from __future__ import annotations

from ner_ray.families.tagger import EncoderFamily


class TokenClassification(EncoderFamily):
    """Softmax over BIO labels per tagged subword; cross-entropy loss; argmax decoding."""

    name = "token_cls"
