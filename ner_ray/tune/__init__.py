"""Ray Tune studies: `python -m ner_ray.tune STUDY.yaml [--resume] [--address ADDR] [key=value ...]`.

space.py (search block → Tune domains, searcher, scheduler), trial.py (one trial = one Ray Train run),
study.py (Tuner per experiment, resume, results.json), tracking.py + mlflow_callback.py (MLflow parent
and nested runs), report.py (table, Markdown, plot). Importing this package imports no Ray.
"""
