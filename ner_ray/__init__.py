"""ner_ray: a Ray-native experiment service for biomedical named-entity recognition.

Importing the package is cheap: Ray, MLflow, Optuna and vLLM are imported only at the edges
(training workers, Tune, Serve), never here.
"""

__version__ = "0.1.0"
