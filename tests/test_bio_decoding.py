"""Constrained BIO decoding (`model.head.constrained`): the Viterbi path of `bio_crf` is the best-scoring valid
BIO sequence, checked against every sequence of a small label set, for a softmax head (log-probabilities, no
learned transitions) and for a learned CRF; and the encoder families' `decode` follows the key."""

from __future__ import annotations

import itertools

import pytest
import torch

from ner_ray.config import StudyConfig
from ner_ray.families.tagger import IGNORE, LabelSet, bio_crf, viterbi_ids
from ner_ray.registry import FAMILIES

LABELS = LabelSet(("Disease", "Chemical"))  # O, B-Disease, I-Disease, B-Chemical, I-Chemical


def valid(tags: list[str]) -> bool:
    """Whether a tag sequence is valid BIO: every I-X follows B-X or I-X."""
    previous = "O"
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            return False
        previous = tag
    return True


def best_valid(emissions: torch.Tensor, crf: torch.nn.Module | None) -> list[int]:
    """The valid sequence of highest score (emissions, plus the CRF's start/transition/end scores), by enumeration."""
    names = LABELS.labels
    if crf is not None:
        start, transitions, end = (p.detach() for p in (crf.start_transitions, crf.transitions, crf.end_transitions))
    best, best_score = None, -float("inf")
    for path in itertools.product(range(len(names)), repeat=emissions.size(0)):
        if not valid([names[i] for i in path]):
            continue
        score = sum(float(emissions[t, j]) for t, j in enumerate(path))
        if crf is not None:
            score += float(start[path[0]]) + float(end[path[-1]])
            score += sum(float(transitions[a, b]) for a, b in itertools.pairwise(path))
        if score > best_score:
            best, best_score = list(path), score
    return best


@pytest.mark.parametrize("learned", [False, True], ids=["softmax-head", "learned-crf"])
def test_viterbi_path_is_the_best_valid_sequence(learned):
    from torchcrf import CRF

    generator = torch.Generator().manual_seed(0)
    crf = None
    if learned:
        crf = CRF(len(LABELS.labels), batch_first=True)
        for parameter in (crf.start_transitions, crf.transitions, crf.end_transitions):
            parameter.data = torch.randn(parameter.shape, generator=generator)
    decoder = bio_crf(LABELS, crf)
    invalid_argmax = 0
    for _ in range(30):
        emissions = torch.randn(1, 5, len(LABELS.labels), generator=generator).log_softmax(-1)
        mask = torch.ones(1, 5, dtype=torch.bool)
        path = viterbi_ids(decoder, emissions, mask)[0].tolist()
        assert path == best_valid(emissions[0], crf)
        invalid_argmax += not valid([LABELS.labels[i] for i in emissions[0].argmax(-1).tolist()])
    assert invalid_argmax >= 5  # random scores: many argmax paths break BIO, so the check above is not vacuous


def test_viterbi_keeps_ignored_positions_and_rows_without_tags():
    scores = torch.randn(2, 6, len(LABELS.labels)).log_softmax(-1)
    mask = torch.tensor([[0, 1, 1, 0, 1, 0], [0, 0, 0, 0, 0, 0]], dtype=torch.bool)
    ids = viterbi_ids(bio_crf(LABELS), scores, mask)
    assert ids.shape == mask.shape
    assert (ids[~mask] == IGNORE).all() and (ids[mask] >= 0).all()


def encoder_family(name: str, constrained: bool):
    config = StudyConfig.model_validate({"model": {"family": name, "head": {"constrained": constrained}}})
    return FAMILIES.get(name)(config, LABELS.types, tokenizer=None)


def test_token_head_decodes_argmax_or_the_best_valid_sequence():
    # argmax: I-Disease I-Disease O I-Chemical; the valid path starts each entity with B-
    logits = torch.log(torch.tensor([[[0.1, 0.3, 0.5, 0.05, 0.05], [0.1, 0.1, 0.7, 0.05, 0.05],
                                      [0.8, 0.05, 0.05, 0.05, 0.05], [0.2, 0.05, 0.05, 0.3, 0.4]]]))
    batch = {"label_mask": torch.ones(1, 4, dtype=torch.long)}
    argmax = encoder_family("token_cls", False).decode(None, {"logits": logits}, batch)
    constrained = encoder_family("token_cls", True).decode(None, {"logits": logits}, batch)
    assert argmax.tolist() == [[2, 2, 0, 4]]
    assert constrained.tolist() == [[1, 2, 0, 3]]


def test_constrained_decoding_leaves_the_training_rng_alone():
    # decoding runs between training epochs: a CRF built there must not draw from the RNG that training's dropout uses
    logits = torch.randn(2, 6, len(LABELS.labels))
    batch = {"label_mask": torch.ones(2, 6, dtype=torch.long)}
    family = encoder_family("token_cls", True)
    torch.manual_seed(0)
    expected = torch.rand(4)
    torch.manual_seed(0)
    family.decode(None, {"logits": logits}, batch)
    bio_crf(LABELS, bio_crf(LABELS))
    assert torch.equal(torch.rand(4), expected)
