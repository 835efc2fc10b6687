"""Inference: the one path from documents to scored predictions, for every family.

encode.py (documents → windows → a family's examples; evaluation windows from the text alone),
predict.py (batched prediction in process, at the precision the model trained in), decode.py (rows →
predicted documents), evaluate.py (scores: `evaluate(predict_fn, gold_documents)`, and a saved model on
a corpus split, as `ner-ray evaluate` runs it), model_files.py (saving and loading a trained model).
Training, Tune, the CLI and Serve all score through here; nothing here imports ner_ray.train or ner_ray.tune.
"""
