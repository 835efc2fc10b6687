"""The MLflow UI shows a study's trials: a small study's store is served by `mlflow ui` on loopback and
headless Chromium (Debian's chromium + chromium-driver, driven by Selenium) opens the run comparison.

The study itself is run by test_tune_study; here a store with the same layout is written through
StudyTracker and the trial callback's code path (parent run, nested runs with dev F1), which keeps this
test to seconds. Writes docs/images/mlflow_compare.png when NER_RAY_SCREENSHOT is set.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import wait_for_http

from ner_ray.config import StudyConfig

ROOT = Path(__file__).resolve().parents[1]
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def make_store(folder: Path) -> tuple[str, dict[str, float]]:
    """A study store: one parent run and three nested trial runs with dev F1 histories."""
    from mlflow.entities import Metric

    from ner_ray.tune.tracking import StudyTracker

    config = StudyConfig().with_updates({"name": "ui_study", "train.output_dir": str(folder)})
    tracker = StudyTracker(config, folder, "ui-study-1", "ui_study")
    f1 = {}
    for i, value in enumerate((0.61, 0.74, 0.58)):
        trial_id = f"trial{i}"
        run_id, _ = tracker.trial_run(trial_id, f"ui_study-{trial_id}", {"family": "token_cls", "corpus": "demo", "seed": "42"})
        tracker.log_params(run_id, config.with_updates({"train.lr": 1e-4 * (i + 1)}))
        metrics = [Metric("dev_f1", value * step / 3, 0, step) for step in (1, 2, 3)]
        tracker.client.log_batch(run_id, metrics=metrics)
        tracker.client.set_terminated(run_id)
        f1[run_id] = value
    tracker.client.set_terminated(tracker.parent_id)
    return tracker.uri, f1


@pytest.fixture
def mlflow_ui(tmp_path):
    uri, f1 = make_store(tmp_path)
    with __import__("socket").socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = (tmp_path / "mlflow_ui.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1",
                               "--port", str(port), "--workers", "1"],
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_for_http(url + "/health", server, tmp_path / "mlflow_ui.log")
    yield url, uri, f1
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=30)


def test_mlflow_ui_compares_the_trial_runs_in_chromium(mlflow_ui, tmp_path):
    from mlflow import MlflowClient
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    assert Path(CHROMEDRIVER).is_file() and Path(CHROMIUM).is_file(), \
        "Debian packages chromium and chromium-driver are needed (.ci/run installs them)"
    url, uri, f1 = mlflow_ui
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("ui_study")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1600,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        run_ids = list(f1)
        compare = (f"{url}/#/compare-runs?runs={str(run_ids).replace(chr(39), chr(34)).replace(' ', '')}"
                   f"&experiments=[\"{experiment.experiment_id}\"]")
        driver.get(compare)
        expected = [f"{value:.2f}" for value in f1.values()] + [f"ui_study-trial{i}" for i in range(3)]
        WebDriverWait(driver, 90).until(lambda d: all(text in d.find_element("tag name", "body").text for text in ("dev_f1", *expected[3:])))
        body = driver.find_element("tag name", "body").text
        assert "dev_f1" in body
        for i in range(3):
            assert f"ui_study-trial{i}" in body  # every trial run is in the comparison
        for value in f1.values():  # and its last dev F1
            assert any(token.startswith(f"{value:.2f}") for token in body.split()), (value, body[:2000])
        shot = Path(os.environ.get("NER_RAY_SCREENSHOT", tmp_path / "mlflow_compare.png"))
        shot.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(shot))
        assert shot.read_bytes().startswith(b"\x89PNG")
    finally:
        driver.quit()
