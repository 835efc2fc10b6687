"""Model families: what each supplies to the one training path (see base.Family), registered by name."""
