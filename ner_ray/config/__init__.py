"""Study configuration: the schema (`schema.py`), dotted keys (`keys.py`), readable errors
(`diagnostics.py`) and study files with experiments and overrides (`study_file.py`).

    study = load_study("search_spaces/quickstart.yaml", ["train.lr=3e-4"])
    config = study.resolve("quickstart").with_updates({"model.lora.r": 16})
"""

from ner_ray.config.schema import (
    AugmentConfig,
    DataConfig,
    DeepSpeedConfig,
    FusionConfig,
    HeadConfig,
    LoraConfig,
    ModelConfig,
    MultitaskConfig,
    ResourcesConfig,
    SchedulerConfig,
    SearchDomain,
    SearcherConfig,
    ServeConfig,
    StudyConfig,
    TrackingConfig,
    TrainConfig,
    TuneConfig,
)
from ner_ray.config.study_file import Study, check_study, load_study

__all__ = [
    "AugmentConfig", "DataConfig", "DeepSpeedConfig", "FusionConfig", "HeadConfig", "LoraConfig",
    "ModelConfig", "MultitaskConfig", "ResourcesConfig", "SchedulerConfig", "SearchDomain",
    "SearcherConfig", "ServeConfig", "Study", "StudyConfig", "TrackingConfig", "TrainConfig",
    "TuneConfig", "check_study", "load_study",
]
