"""`python -m ner_ray.tune STUDY.yaml [--resume] [--address ADDR] [key=value ...]` = `ner-ray tune ...`."""

import sys

from ner_ray.cli import main

if __name__ == "__main__":
    sys.exit(main(["tune", *sys.argv[1:]]))
