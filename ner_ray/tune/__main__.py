"""`python -m ner_ray.tune STUDY.yaml [--resume] [--address ADDR] [key=value ...]` = `ner-ray tune ...`."""

import sys

from ner_ray.tune.command import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
