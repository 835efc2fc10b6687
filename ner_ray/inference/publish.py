"""Publishing an exported model: a version in the MLflow Model Registry (`ner-ray export ... --register NAME`, the
local, testable stand-in for a hub push), and a push to the Hugging Face Hub only when asked (`--push-to-hub [REPO]`)
and a token is present. Neither ever prints or logs the token.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ner_ray.artifacts import MLFLOW_ARTIFACTS, MLFLOW_DB
from ner_ray.credentials import credentials_to_env, redact

EXPERIMENT = "ner_ray-exports"  # the MLflow experiment whose runs hold registered exports
ARTIFACT_PATH = "model"


def tracking_uri(given: str | None, out: Path) -> str:
    """--tracking-uri, else $MLFLOW_TRACKING_URI, else a SQLite store beside the exported folder; a user and password
    in the URI move to MLflow's environment variables, so the URI printed holds none."""
    return credentials_to_env(given or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(out.parent / MLFLOW_DB).resolve()}")


def local_artifacts(uri: str) -> str | None:
    """A SQLite store's artifacts beside its database file (MLflow's default is ./mlruns under the working folder);
    None for a server, which keeps its own."""
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri[len("sqlite:///"):]).parent / MLFLOW_ARTIFACTS).resolve().as_uri()


def register_model(folder: str | Path, name: str, uri: str, tags: dict[str, str] | None = None) -> dict[str, Any]:
    """Log `folder` as the artifacts of a run in EXPERIMENT and register them as a new version of model `name`;
    returns {name, version, run_id, source, tracking_uri}."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(EXPERIMENT, artifact_location=
                                                                                          local_artifacts(uri))
    run = client.create_run(experiment_id, tags={"mlflow.runName": f"export-{name}", **(tags or {})})
    try:
        client.log_artifacts(run.info.run_id, str(folder), ARTIFACT_PATH)
    except Exception:
        client.set_terminated(run.info.run_id, "FAILED")
        raise
    client.set_terminated(run.info.run_id)
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(name)
    source = f"{run.info.artifact_uri.rstrip('/')}/{ARTIFACT_PATH}"
    version = client.create_model_version(name, source, run_id=run.info.run_id, tags=tags or {})
    return {"name": name, "version": int(version.version), "run_id": run.info.run_id, "source": source,
            "tracking_uri": redact(uri)}


def hub_token() -> str | None:
    """$HF_TOKEN, else the token `huggingface-cli login` stored; None when there is none."""
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if token:
        return token
    try:
        from huggingface_hub import get_token
    except ImportError:
        return None
    return get_token()


def default_repo(folder: Path) -> str:
    """A timestamped repository name for a push without one: ner-ray-<folder>-<UTC time>."""
    return f"ner-ray-{folder.name}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"


def push_to_hub(folder: str | Path, repo: str | None, token: str | None = None, api: Any = None,
                private: bool = True) -> str:
    """Upload `folder` to the Hugging Face Hub repository `repo` (created private if missing; a timestamped name
    when None); returns the repository id. Without a token it fails before contacting anything."""
    folder = Path(folder)
    token = token or hub_token()
    if not token:
        raise PermissionError("--push-to-hub needs a Hugging Face token: set HF_TOKEN or run `huggingface-cli login` "
                              "(nothing was pushed; the exported folder is kept)")
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    repo_id = repo or default_repo(folder)
    created = api.create_repo(repo_id, private=private, exist_ok=True)
    repo_id = getattr(created, "repo_id", None) or repo_id
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message=f"ner_ray export of {folder.name}")
    return repo_id
