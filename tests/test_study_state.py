"""An output folder holds one study (tune/study_state.py): no silent overwrite, --overwrite moves the old
folder aside, --resume checks the study and its overrides, a failed start leaves no study.json, and every
printed command is shell-quoted. No Ray: the checks run before it starts."""

from __future__ import annotations

import json
import shlex

import pytest

from ner_ray.cli import main
from ner_ray.config import load_study
from ner_ray.errors import ConfigError
from ner_ray.tune.study_state import claim, record_start, study_command


def study_file(folder, name="s"):
    path = folder / f"{name} file.yaml"  # a space in the path: printed commands must quote it
    path.write_text(f"name: {name}\ntrain: {{output_dir: '{folder / 'out dir'}'}}\n")
    return path


def started(folder, name="s", overrides=()):
    study = load_study(study_file(folder, name), overrides)
    out = folder / "out dir"
    state = claim(study, out, resume=False)
    record_start(study, out, state)
    return study, out, state


def test_a_folder_holding_a_study_refuses_another_start(tmp_path):
    _, out, state = started(tmp_path, "first")
    other = load_study(study_file(tmp_path, "second"))
    with pytest.raises(ConfigError, match=r"holds study 'first' \(first-.*\); continue it with --resume, give this study "
                                          r"its own folder \(train.output_dir=...\), or start over with --overwrite"):
        claim(other, out, resume=False)
    assert json.loads((out / "study.json").read_text())["study_id"] == state.study_id  # untouched


def test_overwrite_moves_the_old_study_aside(tmp_path, capsys):
    _, out, first = started(tmp_path)
    (out / "results.json").write_text("{}")
    study = load_study(study_file(tmp_path))
    second = claim(study, out, resume=False, overwrite=True)
    assert second.study_id != first.study_id and not out.exists()
    (aside,) = [p for p in tmp_path.iterdir() if p.name.startswith("out dir.replaced-")]
    assert json.loads((aside / "study.json").read_text())["study_id"] == first.study_id and (aside / "results.json").is_file()
    assert f"--overwrite: moved {out} to {aside}" in capsys.readouterr().out


def test_resume_needs_the_same_overrides(tmp_path):
    study, out, state = started(tmp_path, overrides=["train.lr=1e-3", "train.epochs=2"])
    assert claim(load_study(study.path, ["train.lr=1e-3", "train.epochs=2"]), out, resume=True).study_id == state.study_id
    with pytest.raises(ConfigError) as err:
        claim(load_study(study.path, ["train.lr=1e-4", "train.epochs=2"]), out, resume=True)
    message = str(err.value)
    assert "left out now: train.lr=1e-3; new: train.lr=1e-4" in message
    assert message.endswith(shlex.join(["python", "-m", "ner_ray.tune", str(study.path), "train.lr=1e-3", "train.epochs=2",
                                        "--resume"]))


def test_a_start_that_fails_leaves_no_study_to_resume(tmp_path, capsys):
    path = study_file(tmp_path)
    assert main(["tune", str(path), "tracking.tracking_uri=http://127.0.0.1:9"]) == 2
    assert "MLflow tracking server http://127.0.0.1:9 is unreachable" in capsys.readouterr().err
    assert not (tmp_path / "out dir" / "study.json").exists()
    assert main(["tune", str(path), "--resume"]) == 2  # (with the default store, which the pre-flight accepts)
    assert "there is no study to resume" in capsys.readouterr().err


def test_printed_commands_are_shell_quoted(tmp_path):
    study = load_study(study_file(tmp_path), ["data.corpus=my corpus"])
    command = study_command(study, "--resume")
    assert shlex.split(command) == ["python", "-m", "ner_ray.tune", str(study.path), "data.corpus=my corpus", "--resume"]


def test_the_mlflow_ui_hint_is_shell_quoted(tmp_path):
    from ner_ray.config import StudyConfig
    from ner_ray.tune.tracking import StudyTracker

    out = tmp_path / "my runs"
    tracker = StudyTracker(StudyConfig().with_updates({"train.output_dir": str(out)}), out, "s-1", "s")
    assert shlex.split(tracker.ui_hint) == ["mlflow", "ui", "--backend-store-uri", f"sqlite:///{out / 'mlflow.db'}",
                                            "--host", "127.0.0.1"]


@pytest.mark.parametrize(("text", "shown"), [
    ("http://alice:pw@host:5000/x", "http://alice:***@host:5000/x"),
    ("tracking.tracking_uri=https://bob:s3cr3t@mlflow.example.org", "tracking.tracking_uri=https://bob:***@mlflow.example.org"),
    ("https://h/api?api_key=abc&x=1", "https://h/api?api_key=***&x=1"),
    ("HF_TOKEN=hf_abcdefghijklmnopqrstuvwx", "HF_TOKEN=***"),
    ("use hf_abcdefghijklmnopqrstuvwx here", "use *** here"),
    ("MLFLOW_TRACKING_PASSWORD: hunter2", "MLFLOW_TRACKING_PASSWORD: ***"),
    ("max_tokens=64 tokenizer: x sqlite:////tmp/a b/mlflow.db train.lr=3e-4", "max_tokens=64 tokenizer: x sqlite:////tmp/a b/mlflow.db train.lr=3e-4"),
])
def test_credentials_are_redacted_and_nothing_else(text, shown):
    from ner_ray.credentials import redact

    assert redact(text) == shown and redact(shown) == shown


def test_a_uri_s_user_and_password_go_to_the_mlflow_environment(tmp_path, monkeypatch):
    from ner_ray.config import StudyConfig
    from ner_ray.tune.tracking import tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    config = StudyConfig().with_updates({"tracking.tracking_uri": "http://alice:pw@127.0.0.1:5000"})
    assert tracking_uri(config, tmp_path) == "http://127.0.0.1:5000"
    import os

    assert (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]) == ("alice", "pw")


def test_resume_loads_only_state_this_user_wrote(tmp_path):
    import os

    from ner_ray.tune.study_state import check_trusted

    state = tmp_path / "tune" / "s-1" / "exp"
    (state / "run_trial_1").mkdir(parents=True)
    for name in ("tuner.pkl", "run_trial_1/checkpoint.pt"):
        (state / name).write_bytes(b"\x80\x04N.")
        (state / name).chmod(0o644)
    check_trusted(state)
    (state / "run_trial_1" / "checkpoint.pt").chmod(0o666)
    with pytest.raises(ConfigError, match=r"checkpoint.pt is writable by all users \(mode 0o666\); resuming"):
        check_trusted(state)
    (state / "run_trial_1" / "checkpoint.pt").chmod(0o644)
    if os.getuid() == 0:  # root can hand a file to another user
        os.chown(state / "tuner.pkl", 4242, -1)
        with pytest.raises(ConfigError, match=r"tuner.pkl is writable by another user"):
            check_trusted(state)
