"""Corpora in one character-offset form, and the views that models are trained on.

Readers and writers: pubtator, bioc, conll (BIO TSV), jsonl (span / instruct JSONL), bigbio (HF datasets).
Named corpora and where their files come from: corpora. Views: chunking (sentences and windows),
tagging (BIO / subword labels), span_string, instruct, sentence_labels. Augmentation: augment.
"""

from ner_ray.data.document import Document, ParseReport, Relation, Span

__all__ = ["Document", "ParseReport", "Relation", "Span"]
