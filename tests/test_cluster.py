"""cluster/: every file parses and names search spaces that exist; local_two_nodes.sh starts a real two-node
Ray cluster on this machine and `ray job submit` runs the quickstart study on it."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster"
FILES = sorted(p for p in CLUSTER.rglob("*") if p.is_file())


def test_cluster_folder_has_every_launcher():
    names = {str(p.relative_to(CLUSTER)) for p in FILES}
    assert {"ray-cluster.yaml", "kuberay/raycluster.yaml", "kuberay/rayjob.yaml", "slurm/ner_ray_study.sbatch",
            "runtime_env.yaml", "local_two_nodes.sh", "install.sh", "Dockerfile", "Dockerfile.cuda"} <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(CLUSTER)))
def test_cluster_file_parses_and_points_at_existing_search_spaces(path):
    text = path.read_text()
    if path.suffix == ".yaml":
        documents = list(yaml.safe_load_all(text))
        assert documents and all(isinstance(d, dict) for d in documents)
    elif path.name.startswith("Dockerfile"):
        assert "FROM " in text  # linted by test_the_images_install_as_the_readme_does
    else:
        assert subprocess.run(["bash", "-n", str(path)], capture_output=True, check=False).returncode == 0
        assert os.access(path, os.X_OK), f"{path} should be executable"
    for study in re.findall(r"search_spaces/[\w.-]+\.yaml", text):
        assert (ROOT / study).is_file(), f"{path.name} names {study}, which does not exist"


def test_rayjob_entrypoint_is_a_valid_study_command():
    from ner_ray.config import load_study

    job = yaml.safe_load((CLUSTER / "kuberay" / "rayjob.yaml").read_text())
    words = job["spec"]["entrypoint"].split()
    assert words[:3] == ["python", "-m", "ner_ray.tune"]
    load_study(ROOT / words[3], [w for w in words[4:] if "=" in w])  # overrides validate against the schema


def test_ray_job_submit_on_a_local_two_node_cluster(tmp_path):
    output = tmp_path / "study"
    env = {**os.environ, "NER_RAY_JOB_OUTPUT": str(output), "NER_RAY_HEAD_PORT": "6397", "NER_RAY_DASHBOARD_PORT": "8277"}
    run = subprocess.run(
        [str(CLUSTER / "local_two_nodes.sh"), "search_spaces/quickstart.yaml", "tune.num_samples=2", "train.epochs=2",
         "tune.scheduler.grace_period=1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-4000:]
    assert re.search(r"\b2 node", log) or log.count("node_") >= 2, log[-4000:]  # `ray status` lists both nodes
    assert "succeeded" in log and "two-node cluster stopped" in log
    trials = json.loads((output / "results.json").read_text())["trials"]
    assert len(trials) == 2 and any(t["status"] == "completed" for t in trials)
    assert (output / "mlflow.db").is_file()


def test_the_images_install_as_the_readme_does():
    """cluster/Dockerfile(.cuda) lint clean (hadolint, from the dev extra), copy files that exist, and install with
    cluster/install.sh, the script the README's first command runs (so CI checks the images' install step)."""
    import shutil

    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```bash\n", 1)[1].split("```", 1)[0]
    assert first_block.startswith("bash cluster/install.sh ")
    for name in ("Dockerfile", "Dockerfile.cuda"):
        dockerfile = CLUSTER / name
        lint = subprocess.run([shutil.which("hadolint") or "hadolint", str(dockerfile)], capture_output=True, text=True)
        assert lint.returncode == 0, lint.stdout + lint.stderr
        text = dockerfile.read_text()
        assert "RUN bash cluster/install.sh ray" in text
        for line in text.splitlines():
            if line.startswith("COPY "):
                sources = [w for w in line.split()[1:-1] if not w.startswith("--")]
                assert sources and all((ROOT / s).exists() for s in sources), line
    for manifest in ("ray-cluster.yaml", "kuberay/raycluster.yaml", "kuberay/rayjob.yaml"):
        text = (CLUSTER / manifest).read_text()
        assert "ghcr.io/ner-ray/ner-ray:latest" in text and "cluster/Dockerfile.cuda" in text
