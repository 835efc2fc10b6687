"""The one training path: data.py (splits → family → training and dev examples), trainer.py (the HF Trainer
subclass and its arguments), callbacks.py and schedule.py (when to evaluate, what to report to Ray),
worker.py (setup / fit / finish on each Ray Train worker), run.py (the driver), accounting.py, deepspeed.py."""
