"""The one schema of a study: every knob with its type, default, one-line description and validation.

`StudyConfig` = data, model, train, search, tune (scheduler + searcher), resources, tracking.
Study YAML files are instances of it; `ner_ray.config.study_file` loads them with line-accurate errors.
Values are strict (`train.lr: true` is an error, not 1.0); names (model.family, data.format) are checked
against their registries in ner_ray.registry, which costs no import of torch.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ner_ray.config import diagnostics, keys, recipes
from ner_ray.errors import nearest
from ner_ray.registry import ENGINES, FAMILIES, FORMATS, Registry

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class Block(BaseModel):
    """A config block: unknown keys are errors, values are not coerced (strict: `true` is no number, `"3"`
    no integer); instances are immutable (copy with `StudyConfig.with_updates`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, strict=True)


def _registered(registry: Registry, extra: tuple[str, ...] = ()):
    """A validator accepting the names `registry` holds (and `extra`), its error listing the valid ones."""

    def check(name: str) -> str:
        if name in extra or name in registry:
            return name
        raise ValueError(f"unknown {registry.kind} {name!r}; {nearest(name, [*extra, *registry.names()])}")

    return AfterValidator(check)


FamilyName = Annotated[str, _registered(FAMILIES)]
CAUSAL_LM_FAMILIES = ("span_gen", "instruct")  # families that read model.backend and model.quantize
FormatName = Annotated[str, _registered(FORMATS, ("auto",))]
EngineName = Annotated[str, _registered(ENGINES, ("auto",))]


# ---------------------------------------------------------------------------------------------- data
class AugmentConfig(Block):
    """Training-time augmentation of documents (off when both probabilities are 0)."""

    swap_p: float = Field(0.0, ge=0, le=1, description="probability of replacing a training mention by another training mention of its type")
    mask_p: float = Field(0.0, ge=0, le=1, description="probability of replacing a training mention by mask tokens (one per word)")


class DataConfig(Block):
    """Which corpus, which splits and types, and how documents become training windows."""

    corpus: str = Field("demo", min_length=1, description="named corpus (bc5cdr, ncbi_disease, demo) or a path to a corpus folder or file")
    format: FormatName = Field(
        "auto", description="corpus format (ner_ray.registry.FORMATS: pubtator, bioc, bio, span_jsonl, bigbio); auto: the "
        "named corpus's default, or detected from the file suffix")
    train_split: str = Field("train", min_length=1, description="split used for training")
    dev_split: str = Field("dev", min_length=1, description="split used for evaluation during training (dev_f1)")
    test_split: str | None = Field("test", description="split scored once at the end (test_f1); null, or a corpus without "
                                   "it: no test scores (never dev scores in their place)")
    entity_types: list[str] | None = Field(None, description="keep only these entity types; null: all types of the corpus")
    merge_types: bool = Field(True, description="map a corpus's subtypes to its NER types (NCBI-disease's four → Disease), as the standard task does")
    max_length: int = Field(256, ge=16, le=32768, description="tokens per training window (documents are cut at sentence ends)")
    label_scheme: Literal["first", "all"] = Field("first", description="BIO label on the first subword of a word only, or on all subwords")
    lenient: bool = Field(False, description="skip malformed corpus lines (counted in the parse report) instead of failing")
    subsample: int | float | None = Field(
        None, description="train on fewer training documents: an integer N, the first N; a fraction in (0, 1), that "
        "share drawn at random with train.seed (kept in corpus order; each repeat's seed draws its own); null: all")
    augment: AugmentConfig = Field(default_factory=AugmentConfig, description="training-time augmentation; all zeros: off")

    @field_validator("subsample")
    @classmethod
    def _subsample_is_a_count_or_a_share(cls, value: int | float | None) -> int | float | None:
        if isinstance(value, int) and value < 1:
            raise ValueError(f"{value} documents: give N >= 1, a fraction in (0, 1), or null for all")
        if isinstance(value, float) and not 0 < value < 1:
            raise ValueError(f"{value}: a share of the training documents lies strictly between 0 and 1 (an integer N "
                             "keeps the first N; null keeps all)")
        return value

    @model_validator(mode="after")
    def _splits_differ(self) -> DataConfig:
        named = {"train_split": self.train_split, "dev_split": self.dev_split, "test_split": self.test_split}
        for a, b in (("train_split", "dev_split"), ("train_split", "test_split"), ("dev_split", "test_split")):
            if named[a] is not None and named[a] == named[b]:
                raise ValueError(f"{a} and {b} are both {named[a]!r}: a model is trained on one split, selected on "
                                 "another and scored on a third; name three different splits (test_split: null for none)")
        return self


# --------------------------------------------------------------------------------------------- model
class LoraConfig(Block):
    """PEFT LoRA settings; their presence in model.lora means adapter training instead of full fine-tuning."""

    r: int = Field(8, ge=1, description="LoRA rank")
    alpha: int = Field(16, ge=1, description="LoRA scaling numerator (lora_alpha); the update is scaled by alpha / r")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout on the LoRA input (lora_dropout); unset on an encoder "
                           "family: 0 (ner_ray.config.recipes)")
    target_modules: list[str] | Literal["all-linear"] | None = Field(
        None, description="modules that get adapters: names (e.g. [query, value]), 'all-linear', or null: every linear layer")
    layers_to_transform: int | None = Field(None, ge=1, description="adapt only the last k transformer layers; null: all layers")
    unfreeze_last_epoch: bool = Field(False, description="train all base-model weights too during the final epoch")
    use_rslora: bool = Field(False, description="rank-stabilised scaling alpha / sqrt(r) (PEFT use_rslora)")
    use_dora: bool = Field(False, description="weight-decomposed LoRA (PEFT use_dora)")


class HeadConfig(Block):
    """The tagging head on top of the encoder (and its CRF for family crf)."""

    dropout: float = Field(0.1, ge=0, lt=1, description="dropout before the tagging head")
    lr_multiplier: float = Field(1.0, gt=0, description="learning-rate multiplier for head (and CRF) parameters; unset "
                                 "with model.lora: 10 (ner_ray.config.recipes)")
    # true since benchmarks/constrained_decoding.py (2026-12-03): on the 24 softmax-head models of the seed-000 suite
    # (NCBI-disease, 8 experiments x 3 seeds) it raised dev F1 in every one (+0.006 to +0.026); the CRF's barely moved
    constrained: bool = Field(
        True, description="decode only valid BIO tag sequences (I-X only after B-X or I-X): Viterbi over the head's "
        "log-probabilities (family crf: its learned scores) with the other transitions forbidden; false: each position's "
        "argmax (family crf: Viterbi under its learned scores alone)")


class FusionConfig(Block):
    """How family fusion combines trained LoRA adapters."""

    adapters: list[str] = Field(min_length=1, description="LoRA adapters to combine: experiment names of this study or adapter paths")
    combination: Literal["linear", "cat", "learned"] = Field(
        "linear", description="how adapters combine: PEFT weighted linear or cat, or weights learned on the training set")
    weights: list[float] | None = Field(None, description="one weight per adapter (initial weights when learned); null: 1/n each")

    @model_validator(mode="after")
    def _weights_match(self) -> FusionConfig:
        if self.weights is not None and len(self.weights) != len(self.adapters):
            raise ValueError(f"weights has {len(self.weights)} entries but adapters has {len(self.adapters)}; give one per adapter")
        if self.combination == "learned" and self.weights is not None and min(self.weights) <= 0:
            raise ValueError(f"weights {self.weights}: combination learned starts its softmax from them, so each must be > 0")
        return self


class MultitaskConfig(Block):
    """The sentence-classification task trained beside tagging by family multitask (seed 004)."""

    sentence_task: Literal["cid", "has_entity"] = Field(
        "cid", description="sentence label: cid (mentions a chemical-induced-disease pair, BC5CDR) or has_entity (any corpus)")
    loss_weight: float = Field(0.5, ge=0, description="weight of the sentence loss added to the token loss")


class SpanGenConfig(Block):
    """What family span_gen writes after `<TAG>` for a sentence, and how it decodes (seed 002's span strings)."""

    target: Literal["offsets", "mentions"] = Field(
        "offsets", description="offsets: ' 0-7 ; 20-34' (end-exclusive character offsets, the seed's format); mentions: "
        "' aspirin ; asthma attacks', aligned back to offsets (leftmost unused occurrence, then fuzzy)")
    typed: bool = Field(False, description="write each item's entity type (' 0-7 Chemical', ' aspirin [Chemical]') and score "
                        "with types; false: untyped scoring")
    token_head: bool = Field(False, description="a B/I/O head on the last hidden state of the sentence's prompt tokens, "
                             "its cross-entropy added to the LM loss: the fast dev metric (dev_fast_f1) reads it")
    constrained: bool = Field(True, description="greedy decoding constrained by a per-sentence grammar (xgrammar): items on "
                              "word boundaries inside the sentence (in the order item_order says)")
    item_order: Literal["sorted", "any"] = Field("sorted", description="constrained items: sorted (each at or after the previous "
                                                 "one's end) or any order (repeats: the parser counts and drops them)")
    max_new_tokens: int = Field(64, ge=1, le=4096, description="tokens generated per sentence; the window budget is "
                                "data.max_length minus this and the prompt's own tokens")


class InstructConfig(Block):
    """The tasks family instruct (seed 003) trains and answers: each a conversation over a window of the text."""

    tasks: list[Literal["chemicals", "diseases", "cid"]] = Field(
        ["chemicals", "diseases", "cid"], min_length=1, description="chemicals and diseases: the mentions of the type, "
        "listed; cid: the chemical-induced-disease pairs (chemical | disease). Several: one multi-task adapter")
    max_new_tokens: int = Field(128, ge=1, le=4096, description="tokens generated per answer; the window budget is "
                                "data.max_length minus this and the conversation's own tokens")

    @field_validator("tasks")
    @classmethod
    def _distinct(cls, tasks: list[str]) -> list[str]:
        if len(set(tasks)) != len(tasks):
            raise ValueError(f"{tasks}: name each task once")
        return tasks


class ModelConfig(Block):
    """Base model, model family and parameter-efficient settings."""

    name: str = Field("minilm-l6", min_length=1, description="model alias (minilm-l6, smollm2-135m, ...) or a Hugging Face id or path")
    family: FamilyName = Field(recipes.DEFAULT_FAMILY, description="model family (ner_ray.registry.FAMILIES): token_cls, crf, multitask, fusion, span_gen, instruct")
    lora: LoraConfig | None = Field(None, description="LoRA adapter settings; null: full fine-tuning")
    head: HeadConfig = Field(default_factory=HeadConfig, description="tagging head (token_cls, crf, multitask, fusion)")
    fusion: FusionConfig | None = Field(None, description="adapter combination, required by family fusion")
    multitask: MultitaskConfig = Field(default_factory=MultitaskConfig, description="sentence task of family multitask")
    span_gen: SpanGenConfig = Field(default_factory=SpanGenConfig, description="completion format and decoding of family span_gen")
    instruct: InstructConfig = Field(default_factory=InstructConfig, description="tasks and decoding of family instruct")
    quantize: Literal["4bit", "8bit"] | None = Field(
        None, description="causal-LM families with model.lora: QLoRA, the frozen base loaded in 4 or 8 bits (bitsandbytes, "
        "CUDA only, the gpu extra; paged 8-bit AdamW); null: the base at full precision")
    backend: Literal["auto", "peft", "unsloth"] = Field(
        "auto", description="causal-LM families: how the model and its LoRA are loaded; unsloth (CUDA only, the gpu extra), "
        "peft, or auto: unsloth on CUDA where it is installed, else peft")

    @model_validator(mode="after")
    def _family_needs(self) -> ModelConfig:
        if self.family == "fusion" and self.fusion is None:
            raise ValueError("family fusion needs a fusion block: {adapters: [...], combination: linear|cat|learned}")
        if self.backend == "unsloth" and self.family not in CAUSAL_LM_FAMILIES:
            raise ValueError(f"model.backend unsloth loads causal LMs ({', '.join(CAUSAL_LM_FAMILIES)}), not family {self.family}")
        if self.quantize is not None and self.family not in CAUSAL_LM_FAMILIES:
            raise ValueError(f"model.quantize {self.quantize} loads causal LMs ({', '.join(CAUSAL_LM_FAMILIES)}), not family {self.family}")
        if self.quantize is not None and self.lora is None:
            raise ValueError(f"model.quantize {self.quantize} trains LoRA adapters on a frozen quantized base (QLoRA): add a "
                             "model.lora block, or set model.quantize: null for full fine-tuning")
        return self


# --------------------------------------------------------------------------------------------- train
class DeepSpeedConfig(Block):
    """DeepSpeed ZeRO, passed to the Hugging Face Trainer; runs on GPU workers (NCCL) and CPU workers (gloo)."""

    stage: Literal[2, 3] = Field(2, description="ZeRO stage: 2 shards optimiser state and gradients, 3 also parameters")
    offload: Literal["none", "cpu"] = Field(
        "none", description="offload optimiser state (and stage-3 parameters) to CPU memory; the optimiser becomes "
        "DeepSpeedCPUAdam, compiled on first use (needs a C++ compiler)")


class TrainConfig(Block):
    """Optimisation: the Hugging Face TrainingArguments a study varies, under their short names."""

    seed: int = Field(42, ge=0, description="random seed of the first repeat; repeat i uses seed + i")
    epochs: int = Field(3, ge=1, description="training epochs (num_train_epochs)")
    lr: float = Field(5e-5, gt=0, description="peak learning rate; unset on an encoder family with model.lora: 2e-3 "
                      "(ner_ray.config.recipes)")
    batch_size: int = Field(16, ge=1, description="windows per device per step (per_device_train_batch_size)")
    eval_batch_size: int | None = Field(None, ge=1, description="windows per device when evaluating and predicting; null: 2 x batch_size")
    grad_accum: int = Field(1, ge=1, description="gradient accumulation steps")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="fraction of steps with linear warm-up")
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = Field(
        "linear", description="learning-rate schedule after warm-up (lr_scheduler_type)")
    max_grad_norm: float = Field(1.0, gt=0, description="gradient clipping norm")
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimiser steps; overrides epochs")
    evals_per_epoch: int = Field(1, ge=1, description="dev evaluations (and Tune reports) per epoch: a run makes epochs x "
                                 "evals_per_epoch of them, spread evenly over its optimiser steps, the last at its last step")
    eval_steps: int | None = Field(None, ge=1, description="evaluate every N optimiser steps (and at the last) instead; overrides evals_per_epoch")
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        "auto", description="auto: bf16 where the GPU supports it, else fp16 on GPU, fp32 on CPU")
    group_by_length: bool = Field(True, description="batch windows of similar length together to save padding")
    gradient_checkpointing: bool = Field(False, description="recompute activations in the backward pass to save memory")
    early_stopping_patience: int | None = Field(
        None, ge=1, description="stop after this many dev evaluations without a gain of early_stopping_threshold in "
        "dev_f1 (the best checkpoint is still the one kept); null: train every epoch")
    early_stopping_threshold: float = Field(0.001, ge=0, description="the smallest dev_f1 gain that resets the patience")
    deepspeed: DeepSpeedConfig | None = Field(None, description="DeepSpeed ZeRO settings; null: plain DDP")
    output_dir: str = Field("runs", min_length=1, description="folder for checkpoints, Ray results and the default MLflow store")
    repeats: int = Field(1, ge=1, description="runs per experiment, with seeds seed, seed+1, ...")


# -------------------------------------------------------------------------------------------- search
class SearchDomain(Block):
    """One search dimension; exactly one of the fields is set (the YAML reads `{loguniform: [lo, hi]}`)."""

    loguniform: list[float] | None = Field(None, description="[lo, hi], sampled uniformly in log space; lo > 0")
    uniform: list[float] | None = Field(None, description="[lo, hi], sampled uniformly")
    randint: list[int] | None = Field(None, description="[lo, hi], an integer with lo <= x < hi (as ray.tune.randint)")
    choice: list[Any] | None = Field(None, min_length=1, description="values sampled uniformly")
    grid: list[Any] | None = Field(None, min_length=1, description="values all tried (ray.tune.grid_search)")

    @model_validator(mode="after")
    def _one_kind(self) -> SearchDomain:
        set_kinds = [k for k in type(self).model_fields if getattr(self, k) is not None]
        if len(set_kinds) != 1:
            raise ValueError(f"give exactly one of {', '.join(type(self).model_fields)}; got {', '.join(set_kinds) or 'none'}")
        if self.kind in ("loguniform", "uniform", "randint"):
            if len(self.args) != 2:
                raise ValueError(f"{self.kind} takes [lo, hi], got {self.args}")
            lo, hi = self.args
            if not lo < hi:
                raise ValueError(f"{self.kind} needs lo < hi, got [{lo}, {hi}]")
            if self.kind == "loguniform" and lo <= 0:
                raise ValueError(f"loguniform needs lo > 0, got {lo}")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in type(self).model_fields if getattr(self, k) is not None)

    @property
    def args(self) -> list[Any]:
        return getattr(self, self.kind)

    def candidates(self) -> list[Any]:
        """Values that stand for the domain when checking it against the schema (ends of a range, every listed value)."""
        if self.kind == "randint":
            return [self.args[0], self.args[1] - 1]
        return list(self.args)


def _check_search_key(key: str) -> str:
    problem = keys.tunable_key_problem(key, StudyConfig)
    if problem:
        raise ValueError(problem)
    return key


SearchKey = Annotated[str, AfterValidator(_check_search_key)]


# ---------------------------------------------------------------------------------------------- tune
class SchedulerConfig(Block):
    """Ray Tune trial scheduler."""

    name: Literal["asha", "fifo"] = Field("asha", description="asha stops weak trials early; fifo runs every trial to the end")
    grace_period: int = Field(1, ge=1, description="evaluations every trial gets before ASHA may stop it")
    reduction_factor: float = Field(4, gt=1, description="ASHA keeps 1 / reduction_factor of the trials at each rung")


class SearcherConfig(Block):
    """Ray Tune search algorithm."""

    name: Literal["optuna", "random", "grid"] = Field(
        "optuna", description="optuna (TPE; no grid domains), random (Ray's variant generator), grid (grid domains only)")
    seed: int | None = Field(None, description="searcher seed; null: train.seed")
    startup_trials: int = Field(10, ge=0, description="optuna: trials sampled at random before TPE guides the search "
                                "(Optuna's n_startup_trials; baselines count)")
    points_to_evaluate: list[dict[str, Any]] = Field(default_factory=list, description="first trials to run, as {search key: value}")


class TuneConfig(Block):
    """Ray Tune settings (TuneConfig + FailureConfig): ranking metric, trial count, scheduler, searcher."""

    metric: str = Field("dev_f1", min_length=1, description="reported metric that ranks trials")
    mode: Literal["max", "min"] = Field("max", description="whether a higher or lower metric is better")
    num_samples: int = Field(8, ge=1, description="trials to sample (with grid domains: samples per grid point)")
    max_concurrent_trials: int | None = Field(None, ge=1, description="trials running at once; null: as many as the cluster's CPUs (and GPUs) hold when the "
                                                 "study starts, at resources.* per trial")
    max_failures: int = Field(0, ge=-1, description="retries of a failed trial (Ray FailureConfig; -1: unlimited)")
    time_budget_s: float | None = Field(None, gt=0, description="stop starting trials after this many seconds")
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig, description="trial scheduler (early stopping)")
    searcher: SearcherConfig = Field(default_factory=SearcherConfig, description="search algorithm proposing trials")


# ------------------------------------------------------------------------------ resources, tracking
class ResourcesConfig(Block):
    """Ray Train ScalingConfig of each trial, and the Ray cluster to join."""

    num_workers: int = Field(1, ge=1, description="Ray Train workers per trial (data-parallel processes)")
    use_gpu: bool = Field(False, description="give each worker a GPU")
    cpus_per_worker: float = Field(1, gt=0, description="CPUs reserved per worker")
    threads_per_worker: int | None = Field(
        None, ge=1, description="torch threads of each worker; null: the node's CPUs shared among the workers that "
        "run on it at once (this trial's and those of concurrent trials)")
    gpus_per_worker: float | None = Field(None, ge=0, description="GPUs per worker (fractions share a GPU); null: 1 with use_gpu, else 0")
    address: str | None = Field(None, description="Ray cluster address (e.g. ray://head:10001 or auto); null: start a local Ray")

    @model_validator(mode="after")
    def _gpus_need_use_gpu(self) -> ResourcesConfig:
        if self.gpus_per_worker and not self.use_gpu:
            raise ValueError(f"gpus_per_worker {self.gpus_per_worker} needs use_gpu: true")
        return self


class TrackingConfig(Block):
    """MLflow: one parent run per study, one nested run per trial."""

    enabled: bool = Field(True, description="log studies and trials to MLflow")
    tracking_uri: str | None = Field(None, description="MLflow tracking URI; null: a sqlite store under train.output_dir")
    experiment_name: str | None = Field(None, description="MLflow experiment; null: the study name")


# ---------------------------------------------------------------------------------------------- serve
class ServeConfig(Block):
    """`ner-ray serve`: where the service listens, its engine, how it batches, and the limits of one request
    (a request past one gets a 4xx naming it). Flags of `ner-ray serve` override these; the API key is never
    a config value (--api-key or $NER_RAY_API_KEY)."""

    host: str = Field("127.0.0.1", min_length=1, description="address the HTTP proxy binds (0.0.0.0: every interface)")
    port: int = Field(8000, ge=1, le=65535, description="HTTP port")
    engine: EngineName = Field("auto", description="inference engine (ner_ray.registry.ENGINES): hf (transformers in process), "
                               "vllm (causal LMs), or auto: vllm for a causal LM where vLLM is installed, else hf")
    max_batch_size: int = Field(16, ge=1, description="prompts one engine call generates together (@serve.batch)")
    batch_wait_timeout_s: float = Field(0.01, ge=0, description="how long a batch waits to fill before it runs")
    threads: int | None = Field(None, ge=1, description="torch threads of the replica; null: every CPU of its node")
    gpus: float | None = Field(None, ge=0, description="GPUs the replica asks Ray for (a fraction shares one); null: 1 where "
                               "the machine running ner-ray serve has CUDA, else 0 (Ray hides GPUs from an actor asking none)")
    max_ongoing_requests: int = Field(128, ge=1, description="requests a replica holds at once (queued ones included); "
                                      "keep it above max_batch_size so batches can fill")
    max_prompt_chars: int = Field(32768, ge=1, description="longest prompt, chat conversation or text accepted")
    max_tokens: int = Field(1024, ge=1, description="largest max_tokens a completion may ask for")
    max_items: int = Field(256, ge=1, description="most prompts or texts in one request")
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="largest request body")


# ---------------------------------------------------------------------------------------------- study
class StudyConfig(Block):
    """One fully resolved experiment (or a study's global defaults)."""

    name: str = Field("study", description="experiment name (the study name for the global defaults)")
    data: DataConfig = Field(default_factory=DataConfig, description="corpus, splits and windowing")
    model: ModelConfig = Field(default_factory=ModelConfig, description="base model, family and adapters")
    train: TrainConfig = Field(default_factory=TrainConfig, description="optimisation (Hugging Face Trainer arguments)")
    search: dict[SearchKey, SearchDomain | None] = Field(
        default_factory=dict, description="dotted data/model/train key -> domain; a null domain drops an inherited key")
    tune: TuneConfig = Field(default_factory=TuneConfig, description="Ray Tune: metric, trials, scheduler, searcher")
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig, description="Ray Train workers and their resources")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig, description="MLflow tracking")
    serve: ServeConfig = Field(default_factory=ServeConfig, description="ner-ray serve: address, engine, batching, limits")

    @field_validator("name")
    @classmethod
    def _name_is_a_word(cls, name: str) -> str:
        if not NAME_PATTERN.match(name):
            raise ValueError(f"{name!r} must start with a letter or digit and hold only letters, digits, '.', '_' and '-'")
        return name

    @field_validator("search", mode="after")
    @classmethod
    def _drop_null_domains(cls, search: dict[str, SearchDomain | None]) -> dict[str, SearchDomain]:
        return {key: domain for key, domain in search.items() if domain is not None}

    @model_validator(mode="before")
    @classmethod
    def _recipe_defaults(cls, raw: Any) -> Any:
        return recipes.with_recipe_defaults(raw)

    @model_validator(mode="after")
    def _cross_block(self) -> StudyConfig:
        self._check_searcher()
        self._check_search_values()
        return self

    def _check_searcher(self) -> None:
        grid = [k for k, d in self.search.items() if d.kind == "grid"]
        other = [k for k, d in self.search.items() if d.kind != "grid"]
        name = self.tune.searcher.name
        if name == "optuna" and grid:
            diagnostics.fail_at(("search", grid[0]), f"tune.searcher optuna cannot search grid domains ({', '.join(grid)}); "
                  "use choice, or tune.searcher.name random or grid")
        if name == "grid" and other:
            diagnostics.fail_at(("search", other[0]), f"tune.searcher grid needs grid domains only, and {', '.join(other)} are not; "
                  "use tune.searcher.name random or optuna")
        for i, point in enumerate(self.tune.searcher.points_to_evaluate):
            unknown = sorted(set(point) - set(self.search))
            if unknown:
                diagnostics.fail_at(("tune", "searcher", "points_to_evaluate", i),
                      f"{', '.join(unknown)} not in search (its keys: {', '.join(self.search) or 'none'})")

    def _check_search_values(self) -> None:
        """Every value a trial could get must validate in this config, so a bad space fails before any trial."""
        if not self.search:
            return
        base = self.model_dump()
        base["search"], base["tune"]["searcher"]["points_to_evaluate"] = {}, []
        trials = [(("search", key), {key: value}) for key, domain in self.search.items() for value in domain.candidates()]
        points = self.tune.searcher.points_to_evaluate
        trials += [(("tune", "searcher", "points_to_evaluate", i), point) for i, point in enumerate(points)]
        for where, update in trials:
            raw = keys.copy_tree(base)
            for key, value in update.items():
                keys.set_path(raw, keys.split_key(key, StudyConfig), value)
            try:
                StudyConfig.model_validate(raw)
            except ValidationError as err:
                error = err.errors()[0]
                path = diagnostics.error_path(error, raw)
                shown = repr(next(iter(update.values()))) if len(update) == 1 else repr(update)
                diagnostics.fail_at(where, f"value {shown} is not valid for {keys.join_path(path) or 'the config'}: "
                      f"{diagnostics.describe(error, path, study_keys())}")

    def to_flat_dict(self) -> dict[str, Any]:
        """Dotted key -> value for every leaf (`search.<key>` -> domain dict); the MLflow params of a run."""
        return keys.flatten(self)

    def with_updates(self, dotted: dict[str, Any]) -> StudyConfig:
        """A validated copy with dotted keys set (e.g. Tune's sampled params); ConfigError on bad keys or values."""
        raw = self.model_dump()
        for key, value in dotted.items():
            keys.set_path(raw, keys.split_key(key, StudyConfig), value)
        try:
            return StudyConfig.model_validate(raw)
        except ValidationError as err:
            diagnostics.raise_config_error(err, raw, valid_keys=study_keys())


def study_keys() -> tuple[str, ...]:
    """Every dotted key of StudyConfig."""
    return keys.schema_keys(StudyConfig)
