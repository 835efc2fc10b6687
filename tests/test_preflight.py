"""Pre-flight (ner_ray/train/preflight.py, ner_ray/tune/preflight.py): every error that used to surface inside a
Ray worker, 30-45 s after start, is one line from `ner-ray config check` within seconds, names its key, file or
folder, exits 2 and writes nothing; `ner-ray tune` and `ner-ray train` fail the same way before Ray starts."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from test_families import build_tiny_bert

from ner_ray.cli import main
from ner_ray.data.corpora import load_corpus
from ner_ray.data.pubtator import write_pubtator


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))  # max_position_embeddings 128


def corpus_folder(folder: Path, splits=("train", "dev", "test"), keep=None) -> Path:
    """The demo corpus as a folder of PubTator files; `keep`: {split: entity types kept}."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, docs in load_corpus("demo").splits.items():
        if split in splits:
            types = (keep or {}).get(split)
            write_pubtator(folder / f"{split}.txt", [d.with_spans([s for s in d.spans if types is None or s.type in types])
                                                     for d in docs])
    return folder


def check(tmp_path, capsys, body: str, *overrides: str) -> tuple[int, str, str]:
    path = tmp_path / "study.yaml"
    path.write_text(f"name: s\ntrain: {{output_dir: {tmp_path / 'out'}}}\n{body}")
    started = time.perf_counter()
    status = main(["config", "check", str(path), *overrides])
    assert time.perf_counter() - started < 5.0  # seconds, not a Ray start
    printed = capsys.readouterr()
    assert not (tmp_path / "out").exists()  # nothing written
    return status, printed.out, printed.err


def test_a_sound_study_passes(tmp_path, capsys, tiny):
    status, out, err = check(tmp_path, capsys, f"model: {{name: {tiny}}}\ndata: {{max_length: 64}}\n")
    assert status == 0 and "pre-flight: corpus, model, output folder, MLflow store, metric and schedule checked" in out
    assert err == ""


@pytest.mark.parametrize(("case", "expected"), [
    ("no_train", "data.corpus '{folder}': corpus '{folder}' has no split 'train' (data.train_split); it has dev, test"),
    ("empty_train", "data.train_split: split 'train' of corpus '{folder}' holds no document"),
    ("no_entities", "data.train_split: split 'train' of corpus '{folder}' holds no entity; there is nothing to learn"),
    ("unknown_name", "data.corpus 'ncbi_diseases': ncbi_diseases: neither a file nor a folder, nor a named corpus; did you mean 'ncbi_disease'?"),
])
def test_corpus_errors(tmp_path, capsys, tiny, case, expected):
    folder = tmp_path / "corpus"
    if case == "no_train":
        corpus_folder(folder, ("dev", "test"))
    elif case == "empty_train":
        corpus_folder(folder)
        (folder / "train.txt").write_text("")
    elif case == "no_entities":
        corpus_folder(folder, keep={"train": ()})
    corpus = "ncbi_diseases" if case == "unknown_name" else str(folder)
    status, _, err = check(tmp_path, capsys, f"model: {{name: {tiny}}}\ndata: {{corpus: {corpus}, max_length: 64}}\n")
    assert status == 2 and err.startswith("error: ") and expected.format(folder=folder) in err, err


def test_types_that_training_lacks_are_a_warning(tmp_path, capsys, tiny):
    folder = corpus_folder(tmp_path / "corpus", keep={"train": ("Chemical",)})
    status, _, err = check(tmp_path, capsys, f"model: {{name: {tiny}}}\ndata: {{corpus: {folder}, max_length: 64}}\n")
    assert status == 0
    assert ("warning: data.dev_split: split 'dev' has entity types the training split lacks (Disease): the model cannot "
            "predict them, they count as misses") in err


@pytest.mark.parametrize(("body", "expected"), [
    ("model: {name: MODEL}\ndata: {max_length: 512}\n",
     "data.max_length: 512 tokens exceed what model 'MODEL' takes (128 positions); set data.max_length <= 128"),
    ("model: {name: NOT_A_MODEL}\n", "model.name 'NOT_A_MODEL': NOT_A_MODEL is no model folder (no config.json)"),
    ("model: {name: minilm-l66}\n", "unknown model 'minilm-l66': not an alias"),
    ("model: {name: MODEL}\ntune: {metric: dev_f2}\n", "tune.metric 'dev_f2' is not a metric trials report; valid: dev_f1, "),
    ("model: {name: MODEL}\ntune: {metric: test_f1}\n", "tune.metric test_f1: trials are ranked and stopped on dev"),
    ("model: {name: MODEL}\ntrain: {epochs: 2, output_dir: OUT}\ntune: {scheduler: {grace_period: 2}}\n",
     "tune.scheduler.grace_period 2: a trial makes 2 evaluations, so ASHA could stop none"),
    ("model: {name: MODEL}\ntracking: {tracking_uri: 'sqlite:///BLOCKED/mlflow.db'}\n",
     "the MLflow store sqlite:///BLOCKED/mlflow.db: BLOCKED is a file, not a folder"),
    ("model: {name: MODEL}\ntrain: {output_dir: BLOCKED/out}\n", "train.output_dir: BLOCKED/out cannot be created: BLOCKED is a file"),
])
def test_model_output_and_tune_errors(tmp_path, capsys, tiny, body, expected):
    (tmp_path / "blocked").write_text("a file where a folder is needed")
    (tmp_path / "not-a-model").mkdir()
    names = {"NOT_A_MODEL": str(tmp_path / "not-a-model"), "MODEL": str(tiny), "BLOCKED": str(tmp_path / "blocked"),
             "OUT": str(tmp_path / "out")}
    for key, value in names.items():
        body, expected = body.replace(key, value), expected.replace(key, value)
    path = tmp_path / "study.yaml"
    path.write_text(f"name: s\n{body}" if "output_dir" in body else f"name: s\ntrain: {{output_dir: {tmp_path / 'out'}}}\n{body}")
    status = main(["config", "check", str(path)])
    err = capsys.readouterr().err
    assert status == 2 and expected in err, err
    assert not (tmp_path / "out").exists()


def test_an_override_of_a_searched_key_is_an_error(tmp_path, capsys, tiny):
    status, _, err = check(tmp_path, capsys, f"model: {{name: {tiny}}}\nsearch:\n  train.lr: {{loguniform: [1.0e-4, 1.0e-3]}}\n",
                           "train.lr=3e-4")
    assert status == 2
    assert ("override 'train.lr=3e-4' sets train.lr, which the study searches (search.train.lr): change the search "
            "block instead") in err


def test_every_problem_is_listed_at_once_and_tune_stops_before_ray(tmp_path, capsys, tiny, monkeypatch):
    import ner_ray.train.run

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray started despite the pre-flight errors")

    monkeypatch.setattr(ner_ray.train.run, "ensure_ray", no_ray)
    path = tmp_path / "study.yaml"
    path.write_text(f"name: s\nmodel: {{name: {tiny}}}\ndata: {{corpus: {tmp_path / 'nowhere'}, max_length: 256}}\n"
                    f"train: {{output_dir: {tmp_path / 'out'}}}\ntune: {{metric: dev_f2}}\n")
    for command in (["tune", str(path)], ["train", str(path)]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert "data.corpus" in err and ("tune.metric 'dev_f2'" in err) == (command[0] == "tune")
        assert "data.max_length: 256 tokens exceed" in err
    assert not (tmp_path / "out").exists()
