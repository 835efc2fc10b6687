"""Which study an output folder belongs to: study.json (the study id, file and overrides it was started with).

A folder holds one study. Starting into a folder that holds one refuses (offering `--resume`, another
`train.output_dir`, or `--overwrite`, which moves the old folder aside and never deletes it); `--resume`
continues only the same study with the same overrides, from state this user wrote (it is unpickled);
study.json is written once the study really starts (its MLflow run and Ray are up), so a start that
failed leaves nothing to "resume".
"""

from __future__ import annotations

import datetime
import json
import os
import shlex
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path

import yaml

from ner_ray.artifacts import RESULTS, STUDY_CONFIGS, STUDY_STATE, write_json
from ner_ray.config import Study
from ner_ray.credentials import redact, redact_tree
from ner_ray.data.textio import write_text_atomic
from ner_ray.errors import ConfigError


@dataclass(frozen=True)
class StudyState:
    """A study's identity in its output folder."""

    study_id: str
    resumed: bool


def study_command(study: Study, *flags: str) -> str:
    """The shell-quoted command that runs `study` as it was given (file and overrides), with `flags`."""
    return shlex.join(["python", "-m", "ner_ray.tune", str(study.path), *recorded_overrides(study), *flags])


def recorded_overrides(study: Study) -> list[str]:
    """The study's overrides as ner_ray writes and prints them: credentials redacted."""
    return [redact(override) for override in study.overrides]


def claim(study: Study, output_dir: Path, resume: bool, overwrite: bool = False) -> StudyState:
    """The study id to run under: with `resume`, the one study.json holds (same study, same overrides);
    otherwise a new one, after checking that `output_dir` holds no other study (`overwrite`: move it aside)."""
    state_path = output_dir / STUDY_STATE
    if resume:
        if not state_path.is_file():
            raise ConfigError(f"--resume: {state_path} does not exist, so there is no study to resume in "
                              f"{output_dir} (train.output_dir); start it without --resume")
        state = json.loads(state_path.read_text(encoding="utf-8"))
        if state.get("study") != study.name:
            raise ConfigError(f"--resume: {state_path} belongs to study '{state.get('study')}', not '{study.name}'")
        before, now = list(state.get("overrides", [])), recorded_overrides(study)
        if before != now:
            removed = [o for o in before if o not in now]
            added = [o for o in now if o not in before]
            raise ConfigError(f"--resume: study '{study.name}' in {output_dir} was started with other overrides "
                              f"(left out now: {' '.join(map(shlex.quote, removed)) or 'none'}; new: "
                              f"{' '.join(map(shlex.quote, added)) or 'none'}); resume it as it was started: "
                              f"{shlex.join(['python', '-m', 'ner_ray.tune', str(study.path), *before, '--resume'])}")
        return StudyState(state["study_id"], resumed=True)
    holder = _holder(output_dir)
    if holder is not None:
        if not overwrite:
            raise ConfigError(f"{output_dir} (train.output_dir) holds {holder}; continue it with --resume, give this study "
                              f"its own folder (train.output_dir=...), or start over with --overwrite (the old folder "
                              "is moved aside, not deleted)")
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
        aside = output_dir.with_name(f"{output_dir.name}.replaced-{stamp}")
        output_dir.rename(aside)
        print(f"--overwrite: moved {output_dir} to {aside}")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return StudyState(f"{study.name}-{stamp}-{uuid.uuid4().hex[:6]}", resumed=False)


def _holder(output_dir: Path) -> str | None:
    """What study (or study record) a folder holds, in words; None when it holds none."""
    state_path = output_dir / STUDY_STATE
    if state_path.is_file():
        try:
            state = json.loads(state_path.read_text(encoding="utf-8"))
            return f"study '{state.get('study')}' ({state.get('study_id')})"
        except (json.JSONDecodeError, UnicodeDecodeError):
            return f"an unreadable {STUDY_STATE}"
    if (output_dir / RESULTS).is_file():
        return f"a study's {RESULTS}"
    return None


def check_trusted(folder: Path) -> None:
    """--resume unpickles Tune's saved state (and HF's optimizer checkpoints) from `folder`, which runs code:
    refuse when any file there belongs to another user or every user may write it."""
    uid = os.getuid()
    for path in [folder, *folder.rglob("*")]:
        if path.is_symlink():
            continue
        info = path.stat()
        if info.st_uid != uid or info.st_mode & stat.S_IWOTH:  # (group-writable is common with user private groups)
            who = "another user" if info.st_uid != uid else f"all users (mode {oct(info.st_mode & 0o777)})"
            raise ConfigError(f"--resume: {path} is writable by {who}; resuming would load it as code. Resume only "
                              f"state this user wrote (check the folder, then chown/chmod it), or start the study again")


def record_start(study: Study, output_dir: Path, state: StudyState) -> None:
    """Write study.json and the resolved configs (study.yaml) once the study really starts."""
    if state.resumed:
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    write_json(output_dir / STUDY_STATE, {"study": study.name, "study_id": state.study_id, "file": str(study.path),
                                          "overrides": recorded_overrides(study)})
    resolved = {name: redact_tree(config.model_dump(mode="json")) for name, config in study.experiments.items()}
    write_text_atomic(output_dir / STUDY_CONFIGS, yaml.safe_dump(resolved, sort_keys=False))
