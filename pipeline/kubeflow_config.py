"""The kubeflow section of the config: the image, the roots, the KFP endpoint and every
task's container resources."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from trainer.config_fields import check
from trainer.files import is_remote


@dataclass
class ResourceConfig:
    """One Kubeflow task's container: requests = limits (no CPU throttling surprises, no
    eviction before the limit)."""
    cpu: float = 1.0
    memory_gb: float = 2.0
    gpu: int = 0
    gpu_type: str = "nvidia.com/gpu"  # the extended resource name the cluster schedules

    def validate(self, name: str) -> None:
        check(self.cpu > 0, f"{name}.cpu", "a positive number of CPUs, e.g. 0.5 or 4")
        check(self.memory_gb > 0, f"{name}.memory_gb", "a positive number of GB")
        check(self.gpu >= 0, f"{name}.gpu", "an integer >= 0")
        check(self.gpu == 0 or "/" in self.gpu_type, f"{name}.gpu_type",
               "a resource name such as nvidia.com/gpu")


def _resources(cpu: float, memory_gb: float) -> Any:
    return field(default_factory=lambda: ResourceConfig(cpu=cpu, memory_gb=memory_gb))


@dataclass
class ComponentResources:
    """Per component (component_ids.RESOURCE_FIELDS names each one's field)."""
    image_example_gen: ResourceConfig = _resources(2, 4)
    statistics_gen: ResourceConfig = _resources(2, 4)
    schema_gen: ResourceConfig = _resources(0.5, 2)
    example_validator: ResourceConfig = _resources(0.5, 2)
    transform: ResourceConfig = _resources(2, 8)
    trainer: ResourceConfig = _resources(4, 16)
    latest_blessed_model: ResourceConfig = _resources(0.5, 2)
    span_listing: ResourceConfig = _resources(0.5, 1)
    evaluator: ResourceConfig = _resources(2, 8)
    pusher: ResourceConfig = _resources(0.5, 2)
    notify_exit_handler: ResourceConfig = _resources(0.25, 1)
    data_guard: ResourceConfig = _resources(0.5, 2)
    data_reference: ResourceConfig = _resources(0.5, 2)

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
    # KFP API endpoint, e.g. https://kubeflow.example.com/pipeline. Empty: the
    # KF_PIPELINES_ENDPOINT environment variable, else the in-cluster service.
    host: str = ""
    namespace: str = ""  # multi-user Kubeflow: the profile namespace
    experiment: str = "imgpipe"
    service_account: str = ""  # the task pods' service account; empty: KFP's default
    resources: ComponentResources = field(default_factory=ComponentResources)

    def validate(self) -> None:
        check(bool(self.image) and " " not in self.image, "kubeflow.image",
               "an image reference, e.g. registry.example.com/imgpipe:0.1.0")
        check(not self.pipeline_root or is_remote(self.pipeline_root)
              or self.pipeline_root.startswith("/"), "kubeflow.pipeline_root",
              "a URI such as gs://bucket/path, or an absolute path")
        check(bool(self.experiment), "kubeflow.experiment", "a KFP experiment name")
        self.resources.validate()
