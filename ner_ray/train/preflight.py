"""Pre-flight of an experiment: what would otherwise fail inside a Ray worker, checked in seconds before Ray
starts, with one message per problem naming its key, file or folder. `ner-ray train` runs it; a study's
pre-flight (ner_ray.tune.preflight, also `ner-ray config check`) runs it for every experiment. Writes nothing.

  the corpus resolves, its train and dev splits parse and hold documents, train holds entities;
  the entity types of dev and test that train lacks (a warning: the model cannot predict them);
  the model resolves to a folder with a config and a tokenizer (no weights loaded, nothing converted or
  downloaded) and data.max_length fits its position limit;
  model.quantize asks for GPU workers and finds bitsandbytes;
  train.output_dir is (or can be created as) a writable folder.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ner_ray.config import StudyConfig
from ner_ray.errors import ConfigError


@dataclass
class Findings:
    """Problems (errors) and doubts (warnings) found before a run, one line each."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def raise_errors(self) -> None:
        if self.errors:
            raise ConfigError("\n".join(dict.fromkeys(self.errors)))


def check_experiment(config: StudyConfig, findings: Findings, where: str = "") -> None:
    """Add what is wrong with one experiment's corpus, model and output folder to `findings`."""
    check_corpus(config, findings, where)
    check_model(config, findings, where)
    check_output(Path(config.train.output_dir), findings, f"{where}train.output_dir")


def check_corpus(config: StudyConfig, findings: Findings, where: str = "") -> None:
    from ner_ray.train.data import load_documents

    data = config.data
    try:
        splits, _ = load_documents(config)
    except (ValueError, OSError, ImportError) as err:  # DataFormatError, CorpusNotFoundError, a missing split, ...
        findings.errors.append(f"{where}data.corpus {data.corpus!r}: {err}")
        return
    for key, split in (("data.train_split", data.train_split), ("data.dev_split", data.dev_split)):
        if not splits.get(split):
            findings.errors.append(f"{where}{key}: split {split!r} of corpus {data.corpus!r} holds no document")
    train = splits.get(data.train_split) or []
    train_types = {s.type for doc in train for s in doc.spans}
    if train and not train_types:
        findings.errors.append(f"{where}data.train_split: split {data.train_split!r} of corpus {data.corpus!r} holds no "
                               f"entity{' of data.entity_types' if data.entity_types else ''}; there is nothing to learn")
    if data.test_split and data.test_split not in splits:
        findings.warnings.append(f"{where}data.test_split: corpus {data.corpus!r} has no split {data.test_split!r}; runs "
                                 "report no test scores (test: null)")
    for key, split in (("data.dev_split", data.dev_split), ("data.test_split", data.test_split)):
        unseen = sorted({s.type for doc in splits.get(split) or [] for s in doc.spans} - train_types)
        if split and unseen and train_types:
            findings.warnings.append(f"{where}{key}: split {split!r} has entity types the training split lacks "
                                     f"({', '.join(unseen)}): the model cannot predict them, they count as misses")


def check_model(config: StudyConfig, findings: Findings, where: str = "") -> None:
    from ner_ray.families.models import inspect_model

    check_quantize(config, findings, where)
    name = config.model.name
    folder, problem = inspect_model(name)
    if problem:
        findings.errors.append(f"{where}{problem}")
        return
    if folder is None:
        return  # a hub id not in the local cache (the run downloads it), or a model converted on first use
    try:  # config.json read as JSON: importing transformers for one number would cost seconds
        model_config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        findings.errors.append(f"{where}model.name {name!r}: {folder} holds no readable config.json ({err})")
        return
    limit = next((model_config[key] for key in ("max_position_embeddings", "n_positions", "max_seq_len")
                  if isinstance(model_config.get(key), int)), None)
    if limit is not None and config.data.max_length > limit:
        findings.errors.append(f"{where}data.max_length: {config.data.max_length} tokens exceed what model {name!r} takes "
                               f"({limit} positions); set data.max_length <= {limit}")


def check_quantize(config: StudyConfig, findings: Findings, where: str = "") -> None:
    """model.quantize needs GPU workers and bitsandbytes (a CUDA-only library): say so before Ray starts."""
    bits = config.model.quantize
    if bits is None:
        return
    if not config.resources.use_gpu:
        findings.errors.append(f"{where}model.quantize: {bits} (QLoRA) loads the base with bitsandbytes, which runs on CUDA GPUs "
                               "only, and resources.use_gpu is false; on CPU set model.quantize: null (LoRA on the full-"
                               "precision base), on GPU nodes set resources.use_gpu: true")
    elif importlib.util.find_spec("bitsandbytes") is None:
        findings.errors.append(f"{where}model.quantize: {bits} needs the bitsandbytes package: pip install 'ner_ray[gpu]'")


def check_output(folder: Path, findings: Findings, key: str) -> None:
    """`folder` exists as a writable folder, or can be created as one (the nearest existing parent is writable)."""
    if folder.exists() and not folder.is_dir():
        findings.errors.append(f"{key}: {folder} is a file, not a folder")
        return
    parent = folder
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        findings.errors.append(f"{key}: {folder} cannot be created: {parent} is a file")
    elif not os.access(parent, os.W_OK | os.X_OK):
        findings.errors.append(f"{key}: {folder} cannot be {'written' if parent == folder else 'created'}: "
                               f"{parent} is not writable")
