"""Ray Tune studies: `python -m ner_ray.tune STUDY.yaml [--resume] [--address ADDR] [key=value ...]`.

command.py (the command line), study_runner.py (a Tuner per experiment, resume, results.json), space.py
(search block → Tune domains, searcher, scheduler), trial.py (one trial = one Ray Train run), tracking.py
+ mlflow_callback.py (MLflow parent and nested runs), study_report.py (table, Markdown, plot). Importing
this package imports no Ray.
"""
