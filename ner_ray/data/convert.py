"""`ner-ray data convert`: a corpus written out in another format, one file per split.

Sentence-level formats (span JSONL, BIO) get one record per sentence, cut with
`chunking.split_sentences` (never inside an entity); BIO tokens are words and punctuation, also
cut at entity boundaries, so every span is written exactly; PubTator and instruct JSONL stay per document
(instruct tasks follow the corpus: NCBI-disease's four types count as Disease there).
Every output is built in memory first and written atomically, so a failure leaves nothing half-written.
"""

from __future__ import annotations

from pathlib import Path

from ner_ray.data.chunking import split_sentences
from ner_ray.data.conll import format_bio, split_words
from ner_ray.data.corpora import Corpus
from ner_ray.data.document import Document
from ner_ray.data.instruct import CHEMICAL, DISEASE, TASKS, build_instruct_examples
from ner_ray.data.jsonl import format_instruct_jsonl, format_span_jsonl
from ner_ray.data.pubtator import format_pubtator
from ner_ray.data.textio import write_text_atomic

SUFFIXES = {"span-jsonl": ".jsonl", "instruct-jsonl": ".jsonl", "bio": ".tsv", "pubtator": ".txt"}


def sentence_documents(doc: Document) -> list[Document]:
    """One Document per sentence of `doc`, id `<doc id>-<n>`, meta `doc_id` and `offset` into `doc`.

    Sentences never split an entity (the gold spans are protected), so every span lands in one sentence.
    """
    sentences = []
    for n, (start, end) in enumerate(split_sentences(doc.text, protect=doc.spans)):
        spans = [span.shifted(-start) for span in doc.spans if start <= span.start and span.end <= end]
        sentences.append(Document(f"{doc.id}-{n}", doc.text[start:end], spans, meta={"doc_id": doc.id, "offset": start}))
    assert sum(len(s.spans) for s in sentences) == len(doc.spans), f"{doc.id}: a span fell between sentences"
    return sentences


def instruct_tasks(docs: list[Document]) -> tuple[str, ...]:
    """The instruct tasks a corpus supports: chemicals / diseases when it has such spans, cid when CID relations."""
    types = {span.type for doc in docs for span in doc.spans}
    relations = {rel.type for doc in docs for rel in doc.relations}
    wanted = {"chemicals": CHEMICAL in types, "diseases": DISEASE in types, "cid": "CID" in relations}
    return tuple(task for task in TASKS if wanted[task])


def render(docs: list[Document], target: str, dataset: str = "") -> tuple[str, int]:
    """The text of one output file in `target` format, and how many records it holds."""
    if target == "pubtator":
        return format_pubtator(docs), len(docs)
    if target == "instruct-jsonl":
        tasks = instruct_tasks(docs)
        if not tasks:
            raise ValueError(f"{dataset or 'corpus'}: no Chemical or Disease spans and no CID relations to build instructions from")
        examples = [example for doc in docs for example in build_instruct_examples(doc, tasks)]
        return format_instruct_jsonl(examples), len(examples)
    sentences = [sentence for doc in docs for sentence in sentence_documents(doc)]
    if target == "span-jsonl":
        return format_span_jsonl(sentences, dataset=dataset), len(sentences)
    if target == "bio":
        text = "".join(format_bio([s], tokenize=lambda text, s=s: split_words(text, s.spans)) for s in sentences)
        return text, len(sentences)
    raise ValueError(f"unknown conversion target {target!r}; valid: {', '.join(SUFFIXES)}")


def convert_corpus(corpus: Corpus, target: str, out_dir: str | Path) -> dict[str, tuple[Path, int]]:
    """Write every split of `corpus` as `out_dir/<split><suffix>`; returns {split: (path, records)}."""
    type_map = corpus.spec.type_map if corpus.spec and target == "instruct-jsonl" else {}
    rendered = {
        split: render([doc.retyped(type_map) for doc in docs], target, dataset=corpus.name)
        for split, docs in corpus.splits.items()
    }
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir}: is a file; give a folder (created when missing), where one file per split is written")
    return {
        split: (write_text_atomic(out_dir / f"{split}{SUFFIXES[target]}", text), count)
        for split, (text, count) in rendered.items()
    }
