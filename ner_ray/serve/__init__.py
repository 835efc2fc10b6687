"""Serving saved models over HTTP with Ray Serve: `ner-ray serve MODEL_DIR|STUDY_DIR` (or `python -m ner_ray.serve`).

protocol.py: request bodies and limits; engines.py: what runs the model (hf); app.py: the deployment and its routes;
__main__.py: the command. Serve imports inference, families, config and metrics, never train or tune.
"""
