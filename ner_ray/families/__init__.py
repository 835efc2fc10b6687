"""Model families: what each supplies to the training and inference paths (base.Family), registered by name in
ner_ray.registry; tagger.py is the encoder base (BIO labels), peft.py the one place PEFT is called."""
