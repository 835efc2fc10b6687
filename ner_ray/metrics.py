"""Entity and relation scores: (gold documents, predicted documents) -> counts -> precision/recall/F1.

Pure, no I/O; the only scoring code in the project. Counting is per document and counts add up
(`EntityCounts.__add__`), so a per-sample score and the corpus score come from the same function.
Strict micro and per-type scores equal seqeval's default mode on the same chunks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from ner_ray.data.document import Document, Span
from ner_ray.errors import nearest

MODES = ("strict", "untyped", "overlap")
UNTYPED = "Entity"  # the one type every span has under mode "untyped" (as the span-string format's)


@dataclass(frozen=True)
class PRF:
    """Precision, recall and F1 with the counts behind them; a zero denominator gives 0.0 (as seqeval).

    `tp` counts matched predictions (the precision numerator). Under strict matching it also counts
    matched gold spans; under overlap matching recall uses matched gold spans, so tp + fn may differ
    from the number of gold spans.
    """

    precision: float
    recall: float
    f1: float
    tp: int
    fp: int
    fn: int

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class EntityCounts:
    """Per type: gold and predicted span counts and how many of each found a match."""

    gold: Counter = field(default_factory=Counter)
    pred: Counter = field(default_factory=Counter)
    gold_matched: Counter = field(default_factory=Counter)
    pred_matched: Counter = field(default_factory=Counter)

    def __add__(self, other: EntityCounts) -> EntityCounts:
        return EntityCounts(
            self.gold + other.gold,
            self.pred + other.pred,
            self.gold_matched + other.gold_matched,
            self.pred_matched + other.pred_matched,
        )

    @property
    def types(self) -> list[str]:
        """Every type seen in gold or predictions, sorted."""
        return sorted(set(self.gold) | set(self.pred))

    def prf(self, type: str | None = None) -> PRF:
        """Scores for one type, or micro-averaged over all types when `type` is None."""
        pick = (lambda c: sum(c.values())) if type is None else (lambda c: c[type])
        gold, pred, gold_hit, pred_hit = (pick(c) for c in (self.gold, self.pred, self.gold_matched, self.pred_matched))
        precision = pred_hit / pred if pred else 0.0
        recall = gold_hit / gold if gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return PRF(precision, recall, f1, pred_hit, pred - pred_hit, gold - gold_hit)


def count_spans(gold: Iterable[Span], pred: Iterable[Span], mode: str = "strict") -> EntityCounts:
    """Counts for one document (the per-sample function).

    strict: a prediction matches a gold span with the same (start, end, type); untyped: the same
    (start, end), every span counted under the type "Entity"; overlap: a prediction matches when
    it shares at least one character with a gold span of its type, and a gold span is found when
    some prediction of its type overlaps it (one-to-one pairing is not required). Repeated spans
    count once, as in seqeval's sets of chunks.
    """
    if mode not in MODES:
        raise ValueError(f"unknown entity matching mode {mode!r}; {nearest(mode, MODES)}")
    if mode == "untyped":
        gold_keys = {(s.start, s.end, UNTYPED) for s in gold}
        pred_keys = {(s.start, s.end, UNTYPED) for s in pred}
    else:
        gold_keys = {s.key for s in gold}
        pred_keys = {s.key for s in pred}
    counts = EntityCounts(Counter(k[2] for k in gold_keys), Counter(k[2] for k in pred_keys))
    if mode == "overlap":
        counts.gold_matched.update(g[2] for g in gold_keys if any(_overlap(g, p) for p in pred_keys))
        counts.pred_matched.update(p[2] for p in pred_keys if any(_overlap(p, g) for g in gold_keys))
    else:
        both = Counter(k[2] for k in gold_keys & pred_keys)
        counts.gold_matched.update(both)
        counts.pred_matched.update(both)
    return counts


def count_entities(gold_docs: Iterable[Document], pred_docs: Iterable[Document], mode: str = "strict") -> EntityCounts:
    """Counts over a corpus, predicted documents paired with gold ones by id.

    A gold document without a prediction counts all its spans as false negatives; a predicted
    document whose id is not in gold is a ValueError. A repeated id (NCBI-disease train holds one
    PMID twice) pairs the k-th gold document of that id with the k-th predicted one.
    """
    total = EntityCounts()
    for gold, pred in _pair(gold_docs, pred_docs):
        total = total + count_spans(gold.spans, pred.spans if pred is not None else [], mode)
    return total


def entity_scores(counts: EntityCounts) -> dict:
    """{"micro": PRF, "per_type": {type: PRF}} for summed counts."""
    return {"micro": counts.prf(), "per_type": {t: counts.prf(t) for t in counts.types}}


def evaluate_entities(gold_docs: Iterable[Document], pred_docs: Iterable[Document]) -> dict:
    """The entity metrics of one evaluation as plain numbers (what metrics.json holds).

    Top level: strict micro f1/precision/recall/tp/fp/fn and `per_type`; `untyped` and `overlap`:
    the same under those matching modes (overlap with its own `per_type`).
    """
    gold_docs, pred_docs = list(gold_docs), list(pred_docs)
    strict = entity_scores(count_entities(gold_docs, pred_docs, "strict"))
    untyped = entity_scores(count_entities(gold_docs, pred_docs, "untyped"))
    overlap = entity_scores(count_entities(gold_docs, pred_docs, "overlap"))
    return {
        **strict["micro"].as_dict(),
        "per_type": {t: prf.as_dict() for t, prf in strict["per_type"].items()},
        "untyped": untyped["micro"].as_dict(),
        "overlap": {
            **overlap["micro"].as_dict(),
            "per_type": {t: prf.as_dict() for t, prf in overlap["per_type"].items()},
        },
    }


def count_sets(gold: Iterable, predicted: Iterable, type: str, unmatched: int = 0) -> EntityCounts:
    """Counts for one document's set of items of one type (mention strings, concept-id pairs): a predicted item is
    right when the gold set holds it; `unmatched` predictions that could not be compared count as false positives."""
    gold_set, pred_set = set(gold), set(predicted)
    hit = len(gold_set & pred_set)
    return EntityCounts(Counter({type: len(gold_set)}), Counter({type: len(pred_set) + unmatched}),
                        Counter({type: hit}), Counter({type: hit}))


def count_relations(
    gold_docs: Iterable[Document], pred_docs: Iterable[Document], type: str | None = "CID"
) -> EntityCounts:
    """Relation counts per relation type on (document, head, tail, type) sets; `type=None` keeps all types.

    Documents are paired as in `count_entities`.
    """
    total = EntityCounts()
    for gold, pred in _pair(gold_docs, pred_docs):
        gold_keys = {(r.head, r.tail, r.type) for r in gold.relations if type is None or r.type == type}
        pred_rel = pred.relations if pred is not None else []
        pred_keys = {(r.head, r.tail, r.type) for r in pred_rel if type is None or r.type == type}
        both = Counter(k[2] for k in gold_keys & pred_keys)
        total = total + EntityCounts(Counter(k[2] for k in gold_keys), Counter(k[2] for k in pred_keys), both, both)
    return total


def evaluate_relations(
    gold_docs: Iterable[Document], pred_docs: Iterable[Document], type: str | None = "CID"
) -> dict:
    """Micro relation f1/precision/recall/tp/fp/fn as plain numbers."""
    return count_relations(gold_docs, pred_docs, type).prf().as_dict()


def _overlap(a: tuple[int, int, str], b: tuple[int, int, str]) -> bool:
    return a[2] == b[2] and a[0] < b[1] and b[0] < a[1]


def _pair(gold_docs: Iterable[Document], pred_docs: Iterable[Document]) -> list[tuple[Document, Document | None]]:
    """(gold, prediction or None) in gold order, keyed by (id, occurrence of that id)."""
    seen: Counter = Counter()
    gold_keys = []
    for doc in gold_docs:
        gold_keys.append(((doc.id, seen[doc.id]), doc))
        seen[doc.id] += 1
    predicted: dict[tuple[str, int], Document] = {}
    occurrence: Counter = Counter()
    for doc in pred_docs:
        key = (doc.id, occurrence[doc.id])
        occurrence[doc.id] += 1
        if occurrence[doc.id] > seen[doc.id]:
            what = "is not a gold document id" if not seen[doc.id] else f"occurs more often than in gold ({seen[doc.id]})"
            raise ValueError(f"predicted document {doc.id!r} {what}")
        predicted[key] = doc
    return [(doc, predicted.get(key)) for key, doc in gold_keys]
