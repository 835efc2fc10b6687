"""`python -m ner_ray.serve MODEL_DIR|STUDY_DIR [--engine hf] [--host 127.0.0.1] [--port 8000]` = `ner-ray serve ...`."""

import sys

from ner_ray.serve.command import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
