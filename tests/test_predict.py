"""`ner-ray predict MODEL_DIR "TEXT" ... | - | --corpus C [--split S]`: a saved model's spans, one JSON line per
input, through the same prediction path as `ner-ray evaluate` (its predictions.pubtator holds the same spans),
reading the text alone; bad arguments are a one-line error."""

from __future__ import annotations

import io
import json

import pytest
import torch
from test_export import trained_like
from test_families import build_tiny_bert

from ner_ray.cli import main
from ner_ray.data.corpora import load_corpus
from ner_ray.data.pubtator import read_pubtator
from ner_ray.inference.model_files import save_model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A saved tiny LoRA tagger whose random head tags plenty of tokens (so the comparisons below compare spans)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("predict")
    family, net, _ = trained_like(build_tiny_bert(folder / "tiny-bert"), "token_cls", {"r": 4, "alpha": 8})
    yield save_model(net, family, folder / "model", "fp32")
    torch.set_num_threads(threads)


def printed_lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_texts_give_one_line_each_with_spans_inside_them(saved, capsys):
    texts = ["Cisplatin induced nephrotoxicity in rats.", "", "Aspirin and asthma."]
    assert main(["predict", str(saved), *texts]) == 0
    lines = printed_lines(capsys)
    assert [line["id"] for line in lines] == ["text-1", "text-2", "text-3"]
    assert sum(len(line["spans"]) for line in lines) > 0 and lines[1]["spans"] == []
    for text, line in zip(texts, lines):
        assert all(text[s["start"]:s["end"]] == s["text"] and s["start"] < s["end"] for s in line["spans"])
        assert line["relations"] == []


def test_standard_input_gives_the_same_lines_as_arguments(saved, capsys, monkeypatch):
    texts = ["Cisplatin induced nephrotoxicity in rats.", "Aspirin and asthma."]
    assert main(["predict", str(saved), *texts]) == 0
    from_arguments = printed_lines(capsys)
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(texts) + "\n"))
    assert main(["predict", str(saved), "-"]) == 0
    assert printed_lines(capsys) == from_arguments


def test_a_corpus_split_gets_exactly_the_spans_evaluate_writes(saved, tmp_path, capsys):
    assert main(["predict", str(saved), "--corpus", "demo", "--split", "test"]) == 0
    lines = printed_lines(capsys)
    test_ids = [doc.id for doc in load_corpus("demo", splits=("test",)).splits["test"]]
    assert [line["id"] for line in lines] == test_ids
    assert main(["evaluate", str(saved), "demo", "--split", "test", "--out", str(tmp_path / "evaluation")]) == 0
    evaluated = {doc.id: doc for doc in read_pubtator(tmp_path / "evaluation" / "predictions.pubtator")}
    spans = [[(s["start"], s["end"], s["type"]) for s in line["spans"]] for line in lines]
    assert spans == [[(s.start, s.end, s.type) for s in evaluated[line["id"]].spans] for line in lines]
    assert sum(map(len, spans)) > 0


@pytest.mark.parametrize("arguments", [[], ["some text", "--corpus", "demo"]])
def test_texts_or_a_corpus_and_never_both(saved, capsys, arguments):
    assert main(["predict", str(saved), *arguments]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ner-ray predict: give texts") and err.count("\n") == 1


def test_a_folder_that_is_no_model_is_a_one_line_error(tmp_path, capsys):
    assert main(["predict", str(tmp_path), "some text"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(tmp_path) in err and err.count("\n") == 1


def test_the_model_gets_no_annotation_of_the_input(monkeypatch):
    """A corpus document's spans and relations are dropped before the model sees it; its id, text and meta stay."""
    from types import SimpleNamespace

    import ner_ray.inference.predict as predict_module
    from ner_ray.data.document import Document, Relation, Span

    seen = []

    def recording_predictor(family, model, batch_size, precision):
        assert (family, model, batch_size, precision) == ("family", "model", 4, "fp32")
        return lambda documents: seen.extend(documents) or list(documents)

    monkeypatch.setattr(predict_module, "document_predictor", recording_predictor)
    loaded = SimpleNamespace(family="family", model="model", precision="fp32")
    gold = Document("d1", "Aspirin caused asthma.", [Span(0, 7, "Chemical")], [Relation("D1", "D2", "CID")],
                    {"title_end": 8})
    predict_module.predict_documents(loaded, [gold], batch_size=4)
    assert [(d.id, d.text, d.spans, d.relations, d.meta) for d in seen] == [
        ("d1", "Aspirin caused asthma.", [], [], {"title_end": 8})]
