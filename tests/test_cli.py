"""`ner-ray data stats` reproduces ../shared/data/README.md; errors are one clear line, exit 2, nothing written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ner_ray.cli import main


def _stats_json(capsys, *args) -> dict:
    assert main(["data", "stats", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_stats_reproduce_the_shared_readme(shared_data, capsys):
    both = _stats_json(capsys, str(shared_data))
    bc5cdr, ncbi = both["bc5cdr"], both["ncbi_disease"]
    assert [bc5cdr[s]["documents"] for s in ("train", "dev", "test")] == [500, 500, 500]
    assert [bc5cdr[s]["mentions"] for s in ("train", "dev", "test")] == [9385, 9591, 9809]
    assert [bc5cdr[s]["by_type"] for s in ("train", "dev", "test")] == [
        {"Chemical": 5203, "Disease": 4182}, {"Chemical": 5347, "Disease": 4244}, {"Chemical": 5385, "Disease": 4424}]
    assert [bc5cdr[s]["relations"] for s in ("train", "dev", "test")] == [1038, 1012, 1066]
    assert [bc5cdr[s]["offset_mismatches"] for s in ("train", "dev", "test")] == [0, 0, 0]
    assert [ncbi[s]["mentions"] for s in ("train", "dev", "test")] == [5145, 787, 960]
    assert [ncbi[s]["documents"] for s in ("train", "dev", "test")] == [593, 100, 100]
    assert ncbi["train"]["unique_documents"] == 592 and ncbi["train"]["duplicate_document_ids"] == ["8528200"]
    assert ncbi["train"]["by_type"] == {"CompositeMention": 115, "DiseaseClass": 769, "Modifier": 1289, "SpecificDisease": 2972}
    # The one trailing-space mention is reported, kept and not fatal.
    assert [ncbi[s]["offset_mismatches"] for s in ("train", "dev", "test")] == [1, 0, 0]
    assert ncbi["train"]["skipped_mentions"] == 0


def test_stats_by_name_with_data_dir_and_table(shared_data, capsys):
    stats = _stats_json(capsys, "ncbi_disease", "--data-dir", str(shared_data))
    assert set(stats) == {"train", "dev", "test"}
    assert main(["data", "stats", "ncbi_disease", "--data-dir", str(shared_data)]) == 0
    out = capsys.readouterr().out
    assert "5,145" in out and "NCBItrainset_corpus.txt:3249" in out and "duplicate document ids 8528200" in out


def test_bad_file_is_one_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_text("1|t|Title\n1|a|Abstract\n1\t0\t5\tTitlX\tDisease\tD1\n")
    assert main(["data", "stats", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}:3: mention 'TitlX' != text[0:5] = 'Title'")
    assert main(["data", "stats", str(bad), "--lenient", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "bad": {"documents": 1, "unique_documents": 1, "mentions": 0, "by_type": {}, "relations": 0,
                "offset_mismatches": 1, "skipped_mentions": 1, "duplicate_document_ids": [], "out_of_range_spans": 0}}


def test_console_script_entry_point():
    out = subprocess.run([sys.executable, "-m", "ner_ray.cli", "--help"], capture_output=True, text=True, check=True).stdout
    assert "data" in out and "config" in out


def test_config_check_prints_experiments_and_reports_bad_keys(tmp_path, capsys, shared_data, monkeypatch):
    monkeypatch.setenv("NER_RAY_DATA", str(shared_data))  # the suite's corpus is NCBI-disease: the pre-flight reads it
    suite = Path(__file__).resolve().parents[1] / "search_spaces" / "compare_suite.yaml"
    assert main(["config", "check", str(suite), f"train.output_dir={tmp_path / 'runs'}", "train.lr=3e-4"]) == 0
    out = capsys.readouterr().out
    assert "lora-r16-crf" in out and "multitask" in out and "pre-flight:" in out
    bad = tmp_path / "study.yaml"
    bad.write_text("data:\n  corpus: demo\ntrain:\n  epochs: 1\n  lrr: 0.1\n")
    assert main(["config", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:5" in err and "train.lrr" in err and "did you mean 'train.lr'" in err


def test_config_check_names_the_valid_families_for_an_unregistered_one(tmp_path, capsys):
    # a family no module registers: a study naming it fails before anything runs, listing the ones there are
    path = tmp_path / "bilstm.yaml"
    path.write_text("model:\n  name: smollm2-135m\n  family: bilstm\n")
    assert main(["config", "check", str(path)]) == 2
    assert capsys.readouterr().err.strip() == (f"error: {path}:3: model.family: unknown model family 'bilstm'; valid: crf, "
                                               "fusion, instruct, multitask, span_gen, token_cls")
