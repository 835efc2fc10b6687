"""The study schema: shipped YAMLs validate, experiments merge deeply, overrides apply, errors point at lines."""

from __future__ import annotations

import textwrap
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from ner_ray.config import StudyConfig, check_study, keys, load_study
from ner_ray.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SEARCH_SPACES = sorted((ROOT / "search_spaces").glob("*.yaml"))


def write(tmp_path: Path, text: str, name: str = "study.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def load_error(path: Path, overrides=()) -> str:
    with pytest.raises(ConfigError) as err:
        load_study(path, overrides)
    return str(err.value)


# ----------------------------------------------------------------------------------- shipped files
def test_the_shipped_study_files_are_there():
    assert {p.name for p in SEARCH_SPACES} >= {"quickstart.yaml", "compare_suite.yaml", "bert_lora_crf.yaml"}


@pytest.mark.parametrize("path", SEARCH_SPACES, ids=lambda p: p.name)
def test_every_search_space_loads_and_validates(path):
    study = load_study(path)
    assert study.experiments
    for config in study.experiments.values():
        assert isinstance(config, StudyConfig)
        assert config == StudyConfig.model_validate(config.model_dump())
    assert check_study(path).startswith(f"study '{study.name}' ({path}):")


def test_quickstart_is_a_small_lora_search_on_the_demo_corpus():
    config = load_study(ROOT / "search_spaces" / "quickstart.yaml").resolve("quickstart")
    assert (config.data.corpus, config.model.name, config.model.family) == ("demo", "minilm-l6", "token_cls")
    assert config.model.lora is not None and config.model.lora.r == 8
    assert set(config.search) == {"train.lr", "model.lora.r"}
    assert (config.tune.num_samples, config.tune.max_concurrent_trials) == (4, 1)
    assert (config.tune.scheduler.name, config.tune.searcher.name) == ("asha", "optuna")


def test_compare_suite_experiments_resolve_by_deep_merge():
    study = load_study(ROOT / "search_spaces" / "compare_suite.yaml")
    assert list(study.experiments) == [
        "full", "lora-r8", "lora-r16", "lora-r32", "lora-r64", "lora-r16-crf", "lora-aug", "fusion", "multitask"]
    full, r8, r16 = study.resolve("full"), study.resolve("lora-r8"), study.resolve("lora-r16")
    assert full.model.lora is None and full.train.lr == 2.7e-4 and full.model.head.lr_multiplier == 1.0
    assert full.train.batch_size == 16
    assert (r16.train.lr, r16.model.head.lr_multiplier, r16.data.max_length, r16.train.batch_size) == (2e-3, 10.0, 128, 8)
    assert (r8.model.lora.r, r8.model.lora.alpha, r8.model.lora.dropout) == (8, 16, 0.0)  # dropout inherited
    assert r16.model_dump(exclude={"name"}) == study.defaults.model_dump(exclude={"name"})
    assert study.resolve("lora-r16-crf").model.family == "crf"
    assert study.resolve("lora-r16-crf").model.lora.r == 16
    assert study.resolve("lora-aug").data.augment.swap_p == 0.3
    assert study.resolve("fusion").model.fusion.adapters == ["lora-r16", "lora-aug"]
    assert all(c.train.repeats == 3 and c.data.corpus == "ncbi_disease" for c in study.experiments.values())
    assert [c.name for c in study.experiments.values()] == list(study.experiments)


# ----------------------------------------------------------------------------------- the encoder LoRA recipe
def recipe_keys(config: StudyConfig) -> tuple:
    return config.train.lr, config.model.head.lr_multiplier, config.model.lora and config.model.lora.dropout


def test_an_encoder_lora_study_that_leaves_the_recipe_keys_unset_gets_the_recipe(tmp_path):
    study = load_study(write(tmp_path, """
        model: {lora: {r: 16}}
        experiments:
          - name: lora
          - name: crf
            model: {family: crf}
          - name: own
            model: {lora: {dropout: 0.05}, head: {lr_multiplier: 2.0}}
            train: {lr: 3.0e-4}
          - name: full
            model: {lora: null}
          - name: span-gen
            model: {family: span_gen, name: smollm2-135m}
    """))
    assert recipe_keys(study.resolve("lora")) == recipe_keys(study.resolve("crf")) == (2e-3, 10.0, 0.0)
    assert recipe_keys(study.resolve("own")) == (3e-4, 2.0, 0.05)  # what the study sets stays
    assert recipe_keys(study.resolve("full")) == (5e-5, 1.0, None)  # full fine-tuning: the generic defaults
    assert recipe_keys(study.resolve("span-gen")) == (5e-5, 1.0, 0.1)  # causal LMs: not an encoder recipe


def test_the_recipe_follows_overrides_and_is_kept_by_dumped_configs(tmp_path):
    path = write(tmp_path, "model: {name: minilm-l6}\n")
    full = load_study(path).resolve("study")
    assert recipe_keys(full) == (5e-5, 1.0, None)
    assert recipe_keys(load_study(path, ["model.lora.r=16"]).resolve("study")) == (2e-3, 10.0, 0.0)
    lora = StudyConfig.model_validate({"model": {"lora": {}}})
    assert StudyConfig.model_validate(lora.model_dump()) == lora
    # a config made from a resolved one (Tune's trials, with_updates) keeps the values it holds
    assert recipe_keys(full.with_updates({"model.lora.r": 16}))[:2] == (5e-5, 1.0)


def test_check_study_prints_each_experiments_differences(tmp_path):
    summary = check_study(ROOT / "search_spaces" / "compare_suite.yaml").splitlines()
    assert ("  full: model.lora=null, model.head.lr_multiplier=1.0, train.lr=0.00027, train.batch_size=16, "
            "train.warmup_ratio=0.0") in summary
    assert "  lora-r8: model.lora.r=8, model.lora.alpha=16" in summary
    assert "  lora-r16: as the defaults" in summary
    path = write(tmp_path, """
        search:
          train.lr: {loguniform: [1.0e-5, 1.0e-3]}
        experiments:
          - name: base
          - name: lora
            model: {lora: {r: 4}}
            search: {train.lr: null}
        """)
    assert check_study(path).splitlines()[2:] == [
        "  base: as the defaults",
        '    search (optuna, 8 samples, asha): train.lr loguniform [1e-05, 0.001]',
        # the encoder LoRA recipe's values show where the experiment leaves them unset
        ("  lora: model.lora=on, model.lora.r=4, model.lora.dropout=0.0, model.head.lr_multiplier=10.0, train.lr=0.002, "
         "search.train.lr=null"),
    ]


# --------------------------------------------------------------------------------- experiments
def test_experiment_overrides_merge_nested_keys_and_replace_lists(tmp_path):
    path = write(tmp_path, """
        name: merge
        data: {corpus: bc5cdr, entity_types: [Chemical, Disease]}
        model:
          name: minilm-l6
          lora: {r: 8, alpha: 32, target_modules: [query, value]}
        train: {epochs: 2, lr: 1.0e-4}
        search:
          train.lr: {loguniform: [1.0e-5, 1.0e-3]}
          model.lora.r: {choice: [4, 8]}
        experiments:
          - name: small
            model: {lora: {r: 4, target_modules: [key]}}
            data: {entity_types: [Disease]}
          - name: full
            model: {lora: null}
            search: {model.lora.r: null}
        """)
    study = load_study(path)
    assert study.name == "merge" and study.defaults.name == "merge"
    small, full = study.resolve("small"), study.resolve("full")
    assert small.name == "small"
    assert small.model.lora.model_dump() == {**study.defaults.model.lora.model_dump(), "r": 4, "target_modules": ["key"]}
    assert small.data.entity_types == ["Disease"] and small.data.corpus == "bc5cdr"
    assert small.train == study.defaults.train
    assert set(small.search) == {"train.lr", "model.lora.r"}
    assert full.model.lora is None and set(full.search) == {"train.lr"}
    assert study.defaults.model.lora.r == 8  # the merge never writes into the defaults


def test_without_experiments_the_study_is_one_experiment_named_after_the_file(tmp_path):
    study = load_study(write(tmp_path, "train: {epochs: 1}\n", name="tiny-study.yaml"))
    assert study.name == "tiny-study" and list(study.experiments) == ["tiny-study"]
    assert study.resolve("tiny-study").train.epochs == 1
    assert load_study(write(tmp_path, "name: other\n")).name == "other"
    assert load_study(write(tmp_path, "")).defaults == StudyConfig(name="study")


def test_resolve_an_unknown_experiment_names_the_nearest():
    study = load_study(ROOT / "search_spaces" / "compare_suite.yaml")
    with pytest.raises(ConfigError, match=r"has no experiment 'lora-agu'; did you mean 'lora-aug'\? \(valid: full, fusion, "):
        study.resolve("lora-agu")


def test_experiment_stanzas_need_unique_names(tmp_path):
    path = write(tmp_path, """
        experiments:
          - name: a
          - model: {family: crf}
          - name: a
        """)
    assert load_error(path).splitlines() == [
        f"{path}:3: experiments[1]: each experiment is a mapping with a name, e.g. {{name: lora-r8, model: {{lora: {{r: 8}}}}}}",
        f"{path}:4: experiments[2]: experiment name 'a' is used twice",
    ]


def test_fusion_adapters_must_name_lora_experiments(tmp_path):
    path = write(tmp_path, """
        model: {lora: {r: 8}}
        experiments:
          - name: lora-a
          - name: full
            model: {lora: null}
          - name: fused
            model:
              family: fusion
              fusion: {adapters: [lora-b, full, runs/x/adapter]}
        """)
    assert load_error(path).splitlines() == [
        f"{path}:9: experiment 'fused': model.fusion.adapters[0]: 'lora-b' is not another experiment of this study; "
        "did you mean 'lora-a'? (valid: full, lora-a) (or give an adapter path containing '/')",
        f"{path}:9: experiment 'fused': model.fusion.adapters[1]: experiment 'full' trains no LoRA adapter (its model.lora is null)",
    ]


# ----------------------------------------------------------------------------------- overrides
def test_dotted_overrides_parse_yaml_values(tmp_path):
    path = write(tmp_path, "model: {lora: {r: 8}}\n")
    study = load_study(path, ["train.lr=3e-4", "data.corpus=ncbi_disease", "data.entity_types=[Disease]",
                              "train.deepspeed=null", "search.train.lr={choice: [1e-4, 3e-4]}"])
    config = study.defaults
    assert config.train.lr == 3e-4 and isinstance(config.train.lr, float)
    assert config.data.corpus == "ncbi_disease" and config.data.entity_types == ["Disease"]
    assert config.search["train.lr"].choice == [1e-4, 3e-4]
    assert load_study(path, ["model.lora=null"]).defaults.model.lora is None


def test_an_override_inside_a_null_block_creates_it_with_defaults(tmp_path):
    config = load_study(write(tmp_path, "model: {lora: null}\n"), ["model.lora.r=16"]).defaults
    assert config.model.lora.r == 16 and config.model.lora.alpha == 16


def test_overrides_apply_to_the_defaults_before_the_experiments(tmp_path):
    path = write(tmp_path, """
        experiments:
          - name: inherits
          - name: own
            train: {lr: 1.0e-3}
        """)
    study = load_study(path, ["train.lr=2e-4"])
    assert study.resolve("inherits").train.lr == 2e-4
    assert study.resolve("own").train.lr == 1e-3


def test_override_errors_name_the_override_and_the_nearest_key(tmp_path):
    path = write(tmp_path, "train: {epochs: 1}\n")
    assert load_error(path, ["train.lrr=1"]).startswith("override 'train.lrr=1': train.lrr: unknown key; did you mean 'train.lr'?")
    assert load_error(path, ["trian.lr=1"]).startswith("override 'trian.lr=1': trian.lr: unknown key; did you mean 'train'?")
    assert load_error(path, ["train.lr"]) == "override 'train.lr': expected key=value, e.g. train.lr=3e-4 or model.lora=null"
    assert load_error(path, ["train.lr=abc"]) == f"{path}: override 'train.lr=abc': train.lr: expected a number, got 'abc'"


# -------------------------------------------------------------------------------------- errors
def test_unknown_key_names_file_line_key_and_nearest(tmp_path):
    path = write(tmp_path, """
        # a study
        data:
          corpus: demo

        model: {name: minilm-l6}
        train:
          lrr: 3.0e-4
        """, name="quickstart.yaml")
    message = load_error(path)
    assert message.startswith(f"{path}:7: train.lrr: unknown key; did you mean 'train.lr'? (valid: train.batch_size, ")
    assert "quickstart.yaml:7:" in message and len(message.splitlines()) == 1


def test_unknown_top_level_key_suggests_experiments(tmp_path):
    path = write(tmp_path, "data: {corpus: demo}\nexperiment:\n  - name: a\n")
    assert load_error(path).startswith(f"{path}:2: experiment: unknown key; did you mean 'experiments'?")


def test_type_errors_say_what_was_expected_and_what_came(tmp_path):
    path = write(tmp_path, """
        train:
          epochs: three
          precision: fp8
        model:
          lora: {r: 0, target_modules: 5}
        """)
    assert load_error(path).splitlines() == [
        f"{path}:2: train.epochs: expected an integer, got 'three'",
        f"{path}:3: train.precision: expected one of 'auto', 'bf16', 'fp16' or 'fp32', got 'fp8'",
        f"{path}:5: model.lora.r: must be >= 1, got 0",
        f"{path}:5: model.lora.target_modules: expected a list or one of 'all-linear', got 5",
    ]


def test_an_experiments_errors_name_the_experiment_and_its_line(tmp_path):
    path = write(tmp_path, """
        train: {epochs: 2}
        experiments:
          - name: ok
          - name: broken
            model:
              lora: {rr: 4}
          - name: inherited
            train: {lr: -1}
        """)
    lines = load_error(path).splitlines()
    assert lines[0].startswith(f"{path}:6: experiment 'broken': model.lora.rr: unknown key; did you mean 'model.lora.r'?")
    assert lines[1] == f"{path}:8: experiment 'inherited': train.lr: must be > 0, got -1"
    assert len(lines) == 2


def test_cross_block_errors_point_at_the_block(tmp_path):
    path = write(tmp_path, "model:\n  family: fusion\n")
    assert load_error(path) == (
        f"{path}:1: model: family fusion needs a fusion block: {{adapters: [...], combination: linear|cat|learned}}")


def test_deepspeed_on_cpu_workers_is_valid(tmp_path):
    # ZeRO 2 and 3, with or without offload, run on CPU workers over gloo (tests/test_ray_train.py)
    path = write(tmp_path, "resources: {use_gpu: false}\ntrain:\n  deepspeed: {stage: 3, offload: cpu}\n")
    assert load_study(path).defaults.train.deepspeed.stage == 3


def test_bad_yaml_syntax_reports_the_line(tmp_path):
    path = write(tmp_path, "data:\n  corpus: demo\ntrain:\n  lr: [1e-4\nmodel: {}\n")
    message = load_error(path)
    assert message.startswith(f"{path}:5: invalid YAML: ")
    assert message.endswith("(while parsing a flow sequence at line 4)")


def test_duplicate_keys_are_errors(tmp_path):
    path = write(tmp_path, "train:\n  lr: 1.0e-4\n  epochs: 2\n  lr: 2.0e-4\n")
    assert load_error(path) == f"{path}:4: train.lr: duplicate key (first at line 2); YAML would keep only the last one"


def test_a_study_file_must_be_a_mapping(tmp_path):
    assert load_error(write(tmp_path, "- a\n- b\n")).endswith("a study file is a mapping of blocks (data, model, train, ...), got list")
    assert load_error(tmp_path / "missing.yaml") == f"{tmp_path / 'missing.yaml'}: no such study file"


def test_exponent_floats_without_a_dot_are_numbers(tmp_path):
    config = load_study(write(tmp_path, "train: {lr: 1e-5}\nsearch:\n  model.lora.dropout: {choice: [5e-2, 1e-1]}\n")).defaults
    assert config.train.lr == 1e-5
    assert config.search["model.lora.dropout"].choice == [0.05, 0.1]


# -------------------------------------------------------------------------------------- search
def test_a_search_key_the_schema_lacks_fails_at_load(tmp_path):
    path = write(tmp_path, "search:\n  train.lr: {uniform: [0.1, 0.2]}\n  model.lora.rank: {choice: [4, 8]}\n")
    assert load_error(path).startswith(
        f"{path}:3: search.model.lora.rank: 'model.lora.rank' is not a tunable key (search keys are dotted keys "
        "under data, model, train); did you mean 'model.lora.r'?")
    with pytest.raises(Exception, match=r"'tune.metric' is not a tunable key \(search keys are dotted keys under data, model, train\); valid: data, model, train"):
        StudyConfig(search={"tune.metric": {"choice": ["a"]}})


@pytest.mark.parametrize(("line", "expected"), [
    ("train.lr: {loguniform: [0, 1.0e-3]}", "search.train.lr: loguniform needs lo > 0, got 0.0"),
    ("train.lr: {uniform: [0.2, 0.1]}", "search.train.lr: uniform needs lo < hi, got [0.2, 0.1]"),
    ("train.lr: {uniform: [0.1, 0.2, 0.3]}", "search.train.lr: uniform takes [lo, hi], got [0.1, 0.2, 0.3]"),
    ("train.lr: {choice: [1.0e-4], uniform: [0.1, 0.2]}",
     "search.train.lr: give exactly one of loguniform, uniform, randint, choice, grid; got uniform, choice"),
    ("train.lr: {logunifrom: [0.1, 0.2]}", "search.train.lr.logunifrom: unknown key; did you mean 'loguniform'?"),
    ("model.lora.r: {choice: [4, 8.5]}", "search.model.lora.r: value 8.5 is not valid for model.lora.r: expected an integer, got 8.5"),
    ("train.epochs: {randint: [0, 3]}", "search.train.epochs: value 0 is not valid for train.epochs: must be >= 1, got 0"),
    ("model.family: {choice: [crf, bilstm]}", "search.model.family: value 'bilstm' is not valid for model.family: unknown model family 'bilstm'; valid: crf, fusion, instruct, multitask, span_gen, token_cls"),
    ("train.epochs: {grid: [1, 2]}", "search.train.epochs: tune.searcher optuna cannot search grid domains (train.epochs)"),
])
def test_bad_search_domains_fail_at_load(tmp_path, line, expected):
    path = write(tmp_path, f"search:\n  {line}\n")
    assert load_error(path).startswith(f"{path}:2: {expected}")


def test_randint_upper_bound_is_exclusive_and_grid_needs_a_grid_searcher(tmp_path):
    assert load_study(write(tmp_path, "search:\n  train.epochs: {randint: [1, 2]}\n")).defaults.search["train.epochs"].candidates() == [1, 1]
    grid = load_study(write(tmp_path, "search:\n  train.epochs: {grid: [1, 2]}\ntune: {searcher: {name: grid}}\n")).defaults
    assert grid.search["train.epochs"].kind == "grid"
    path = write(tmp_path, "search:\n  train.epochs: {grid: [1, 2]}\n  train.lr: {uniform: [0.1, 0.2]}\ntune: {searcher: {name: grid}}\n")
    assert load_error(path).startswith(f"{path}:3: search.train.lr: tune.searcher grid needs grid domains only")


def test_points_to_evaluate_use_search_keys_and_valid_values(tmp_path):
    path = write(tmp_path, """
        search: {train.lr: {uniform: [0.1, 0.2]}}
        tune:
          searcher:
            points_to_evaluate:
              - {train.lr: 0.15, train.epochs: 2}
        """)
    assert load_error(path) == (
        f"{path}:5: tune.searcher.points_to_evaluate[0]: train.epochs not in search (its keys: train.lr)")
    path = write(tmp_path, """
        search: {train.lr: {uniform: [0.1, 0.2]}}
        tune: {searcher: {points_to_evaluate: [{train.lr: -1}]}}
        """)
    assert load_error(path) == (
        f"{path}:2: tune.searcher.points_to_evaluate[0]: value -1 is not valid for train.lr: must be > 0, got -1")


# --------------------------------------------------------------------- flat dicts and updates
def test_to_flat_dict_names_every_leaf_by_its_dotted_key():
    config = load_study(ROOT / "search_spaces" / "quickstart.yaml").defaults
    flat = config.to_flat_dict()
    assert flat["model.lora.r"] == 8 and flat["train.lr"] == 5e-4 and flat["train.deepspeed"] is None
    assert flat["search.train.lr"] == {"loguniform": [1e-4, 1e-3]}
    assert "model.lora" not in flat and "search" not in flat
    assert set(flat) - {k for k in flat if k.startswith("search.")} <= set(keys.schema_keys(StudyConfig))


@pytest.mark.parametrize("path", SEARCH_SPACES, ids=lambda p: p.name)
def test_flat_dict_and_with_updates_round_trip(path):
    for config in load_study(path).experiments.values():
        assert StudyConfig().with_updates(config.to_flat_dict()) == config


def test_with_updates_validates_what_it_sets():
    config = StudyConfig()
    updated = config.with_updates({"train.lr": 1e-3, "model.lora.r": 32})
    assert (updated.train.lr, updated.model.lora.r, config.model.lora) == (1e-3, 32, None)
    with pytest.raises(ConfigError, match=r"^train\.lr: must be > 0, got -1\.0$"):
        config.with_updates({"train.lr": -1.0})
    with pytest.raises(ConfigError, match=r"^model\.lora\.rank: unknown key; did you mean 'model\.lora\.r'\?"):
        config.with_updates({"model.lora.rank": 4})


# ------------------------------------------------------------------------------------ schema
def _blocks(model: type[BaseModel]) -> list[type[BaseModel]]:
    found = [model]
    for info in model.model_fields.values():
        block = keys.block_type(info.annotation)
        for arg in [block] + list(typing.get_args(info.annotation)):
            if isinstance(arg, type) and issubclass(arg, BaseModel) and arg not in found:
                found += _blocks(arg)
    return list(dict.fromkeys(found))


def test_every_block_forbids_extra_keys_and_describes_every_field():
    blocks = _blocks(StudyConfig)
    assert len(blocks) >= 15
    for block in blocks:
        assert block.model_config.get("extra") == "forbid", block.__name__
        for name, info in block.model_fields.items():
            assert info.description, f"{block.__name__}.{name} has no description"
            assert info.annotation is not None


def test_the_schema_accepts_exactly_the_registered_names():
    from ner_ray.registry import FAMILIES, FORMATS

    fusion = {"model.fusion": {"adapters": ["a/b"]}}
    for name in FAMILIES.names():
        assert StudyConfig().with_updates({"model.family": name, **fusion}).model.family == name
    for name in ("auto", *FORMATS.names()):
        assert StudyConfig().with_updates({"data.format": name}).data.format == name
    for key, name in (("model.family", "bilstm"), ("data.format", "instruct_jsonl")):
        with pytest.raises(ConfigError, match=f"{key}: unknown .* '{name}'; "):
            StudyConfig().with_updates({key: name})
    with pytest.raises(ConfigError, match="unknown model family 'gazetteer_text'"):
        StudyConfig().with_updates({"model.family": "gazetteer_text"})


def test_a_plugin_named_in_the_environment_registers_its_family():
    import os
    import subprocess
    import sys

    tests = Path(__file__).resolve().parent
    code = ("from ner_ray.config import StudyConfig\n"
            "print(StudyConfig().with_updates({'model.family': 'gazetteer_text'}).model.family)\n")
    env = {**os.environ, "NER_RAY_PLUGINS": "text_family_plugin", "PYTHONPATH": str(tests)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "gazetteer_text"
    env["NER_RAY_PLUGINS"] = "no_such_plugin_module"
    failed = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert "NER_RAY_PLUGINS names the module 'no_such_plugin_module', which cannot be imported" in failed.stderr


@pytest.mark.parametrize(("override", "message"), [
    ("train.lr=true", "train.lr: expected a number, got True"),
    ("train.epochs=2.0", "train.epochs: expected an integer, got 2.0"),
    ("train.epochs='3'", "train.epochs: expected an integer, got '3'"),
    ("train.group_by_length=1", "train.group_by_length: expected true or false, got 1"),
])
def test_overrides_are_not_coerced(tmp_path, override, message):
    assert load_error(write(tmp_path, "name: s\n"), [override]).endswith(message)


@pytest.mark.parametrize(("data", "message"), [
    ("{dev_split: train}", "train_split and dev_split are both 'train'"),
    ("{test_split: dev}", "dev_split and test_split are both 'dev'"),
])
def test_train_dev_and_test_splits_must_differ(tmp_path, data, message):
    assert message in load_error(write(tmp_path, f"data: {data}\n"))


def test_split_keys_cannot_be_searched(tmp_path):
    error = load_error(write(tmp_path, "search:\n  data.dev_split: {choice: [dev, test]}\n"))
    assert "search.data.dev_split: 'data.dev_split' is not searchable" in error
