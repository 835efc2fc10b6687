"""The one training path: data preparation, the HF Trainer subclass, the Ray Train worker and driver."""
