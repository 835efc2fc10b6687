"""Open a study's MLflow store in the real MLflow UI, in headless Chromium, at the comparison of its trial runs;
return the page's text and save a screenshot. Used by test_mlflow_ui.py, and to take the README's picture:

    python tests/mlflow_browser.py runs/quickstart/mlflow.db quickstart docs/images/mlflow_compare.png

Needs Debian's chromium and chromium-driver (`.ci/run` installs them) and selenium (the dev extra).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from conftest import wait_for_http

CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def screenshot(uri: str, experiment: str, path: Path, chromium: str = CHROMIUM, chromedriver: str = CHROMEDRIVER) -> str:
    """Serve `uri` with `mlflow ui` on loopback, open the comparison of the experiment's trial runs, wait
    until every run name shows, save a PNG to `path` and return the page text."""
    from mlflow import MlflowClient
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    runs = [r for r in client.search_runs([found.experiment_id]) if r.data.tags.get("ner_ray.role") == "trial"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log_path = Path(tempfile.mkdtemp(prefix="mlflow_ui_")) / "mlflow_ui.log"
    with log_path.open("w") as log:
        server = subprocess.Popen([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1",
                                   "--port", str(port), "--workers", "1"],
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(url + "/health", server, log_path)
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1500,2000",
                     "--disable-background-networking", "--disable-component-update", "--no-first-run"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(chromedriver), options=options)
        try:
            ids = json.dumps([r.info.run_id for r in runs]).replace(" ", "")
            driver.get(f"{url}/#/compare-runs?runs={ids}&experiments=[\"{found.experiment_id}\"]")
            names = [r.info.run_name for r in runs]
            WebDriverWait(driver, 90).until(lambda d: all(n in d.find_element("tag name", "body").text for n in ["dev_f1", *names]))
            body = driver.find_element("tag name", "body").text
            path.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(path))
            return body
        finally:
            driver.quit()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


if __name__ == "__main__":
    store, experiment_name, picture = sys.argv[1:4]
    screenshot(f"sqlite:///{Path(store).resolve()}", experiment_name, Path(picture))
    print(picture)
