"""Ctrl-C during a study (tune/ctrl_c.py): noticed even between two trials, where Tune's ResultGrid holds only
finished trials and would make the study look done. No Ray: Tune's fit is replaced by one that receives Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from test_families import build_tiny_bert

from ner_ray.cli import main
from ner_ray.tune.ctrl_c import TUNE_SIGINT_SWITCH, CtrlC


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


def test_ctrl_c_is_remembered_passed_to_tune_and_a_second_one_stops_at_once():
    before_int, before_usr1 = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGUSR1)
    tune_saw = []
    with CtrlC() as ctrl_c:
        assert os.environ[TUNE_SIGINT_SWITCH] == "1"  # Tune leaves SIGINT alone and listens on SIGUSR1
        signal.raise_signal(signal.SIGUSR1)  # outside a fit: nothing happens (the default would end the process)
        signal.signal(signal.SIGUSR1, lambda sig, frame: tune_saw.append(sig))  # what Tune's fit installs
        signal.raise_signal(signal.SIGINT)
        assert ctrl_c.received and tune_saw == [signal.SIGUSR1]
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before_int and signal.getsignal(signal.SIGUSR1) is before_usr1
    assert TUNE_SIGINT_SWITCH not in os.environ


def test_ctrl_c_between_two_trials_stops_the_study_resumable(tmp_path, tiny, monkeypatch, capsys):
    """Tune returns only the trial that finished before Ctrl-C, every one 'completed': the study still exits 130
    with the --resume command, and the next experiment does not start."""
    import ner_ray.train.run
    import ner_ray.tune.study_runner as runner

    fitted = []

    def fit_until_ctrl_c(config, name, experiment_root, callbacks, resume):
        fitted.append(name)
        if len(fitted) == 1:  # the user's Ctrl-C, once, after the first trial and before the second
            signal.raise_signal(signal.SIGINT)
        return []

    monkeypatch.setattr(ner_ray.train.run, "ensure_ray", lambda address=None, family=None: None)
    monkeypatch.setattr(runner, "tune_experiment", fit_until_ctrl_c)
    monkeypatch.setattr(runner, "saved_statuses", lambda path: {})
    path = tmp_path / "study.yaml"
    path.write_text(f"name: s\nmodel: {{name: {tiny}}}\ndata: {{corpus: demo, max_length: 64}}\n"
                    f"train: {{output_dir: {tmp_path / 'out'}}}\ntracking: {{enabled: false}}\n"
                    "experiments:\n  - {name: first}\n  - {name: second}\n")
    assert main(["tune", str(path)]) == 130
    assert fitted == ["first"]
    err = capsys.readouterr().err
    assert "interrupted in experiment 'first'" in err and f"{path} --resume" in err
    assert json.loads((tmp_path / "out" / "study.json").read_text())["study"] == "s"  # what --resume continues
