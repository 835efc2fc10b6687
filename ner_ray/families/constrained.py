"""Grammar-constrained greedy decoding of span completions with xgrammar, for HF `model.generate`.

`SpanConstraint` compiles `data.span_grammar` grammars against one tokenizer (compiled grammars kept in an LRU,
so dev sentences evaluated every epoch compile once) and hands out one logits processor per generate call.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any


def _xgrammar() -> Any:
    try:
        import xgrammar
    except ImportError as error:
        raise ImportError("constrained decoding needs xgrammar: pip install xgrammar") from error
    return xgrammar


class SpanConstraint:
    """Compiled span grammars for one tokenizer and model.

    Args:
        tokenizer: the HF tokenizer the model was trained with (added special tokens included).
        vocab_size: rows of the model's output embedding; may exceed `len(tokenizer)` (the extra rows are
            never allowed).
        stop_token_ids: the ids that end a completion; default the tokenizer's eos. They must be the ids
            `generate` stops on (its `eos_token_id`), else a row whose grammar is complete cannot stop.
        cache_size: compiled grammars kept, least recently used dropped first.
    """

    def __init__(self, tokenizer: Any, vocab_size: int, stop_token_ids: Sequence[int] | None = None,
                 cache_size: int = 4096, max_threads: int = 8) -> None:
        xgr = _xgrammar()
        stop = list(stop_token_ids) if stop_token_ids is not None else [tokenizer.eos_token_id]
        info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size, stop_token_ids=stop)
        # xgrammar reads added special tokens (<TAG>, <NER>, ...) as their text, so a sentence holding "<TAG>" would
        # let the model write that token, which decoding with skip_special_tokens drops; an empty entry is never allowed
        special = set(tokenizer.all_special_ids) - set(stop)
        vocab = [""] * vocab_size
        for token, index in tokenizer.get_vocab().items():
            if index < vocab_size and index not in special:
                vocab[index] = token
        self.tokenizer_info = xgr.TokenizerInfo.from_vocab_and_metadata(vocab, info.dump_metadata())
        # xgrammar's own cache is unbounded by count and keyed the same way; ours bounds it
        self.compiler = xgr.GrammarCompiler(self.tokenizer_info, max_threads=max_threads, cache_enabled=False)
        self.cache_size = cache_size
        self._compiled: OrderedDict[str, Any] = OrderedDict()

    def compile(self, grammar: str) -> Any:
        """The `xgr.CompiledGrammar` of an EBNF grammar string, from the cache when it was compiled before."""
        compiled = self._compiled.get(grammar)
        if compiled is not None:
            self._compiled.move_to_end(grammar)
            return compiled
        compiled = self.compiler.compile_grammar(grammar)
        self._compiled[grammar] = compiled
        if len(self._compiled) > self.cache_size:
            self._compiled.popitem(last=False)
        return compiled

    def logits_processor(self, grammars: Sequence[str]) -> Any:
        """A `transformers.LogitsProcessor` that masks row i of a batch to `grammars[i]`.

        It is stateful (one grammar matcher per row, advanced by each step's tokens): build a new one for
        every `generate` call, and pass a batch of exactly `len(grammars)` rows. Padding must be on the left.
        """
        if not grammars:
            raise ValueError("logits_processor needs one grammar per batch row; got none")
        xgr = _xgrammar()
        return xgr.contrib.hf.LogitsProcessor([self.compile(grammar) for grammar in grammars])
