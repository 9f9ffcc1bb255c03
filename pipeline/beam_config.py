"""The beam section of the config: where the Beam components (ImageExampleGen,
StatisticsGen, Transform, Evaluator) run their jobs, as pipeline flags per runner."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import List

from trainer.config_fields import check


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
        check(bool(self.project), "beam.dataflow.project", "a Google Cloud project id")
        check(bool(self.region), "beam.dataflow.region", "a Dataflow region, e.g. europe-west1")
        check(self.temp_location.startswith("gs://"), "beam.dataflow.temp_location",
               "a gs:// path")
        check(self.max_num_workers >= 0, "beam.dataflow.max_num_workers",
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
        check(":" in self.job_endpoint, f"beam.{name}.job_endpoint",
               "host:port of the Beam job server")
        check(self.environment_type in PORTABLE_ENVIRONMENTS, f"beam.{name}.environment_type",
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
        check(self.runner in BEAM_RUNNERS, "beam.runner", ", ".join(BEAM_RUNNERS))
        for name in ("direct_running_mode", "kubeflow_direct_running_mode"):
            check(getattr(self, name) in DIRECT_MODES, f"beam.{name}",
                   "in_memory, multi_threading or multi_processing")
        for name in ("direct_num_workers", "kubeflow_direct_num_workers"):
            check(getattr(self, name) >= 0, f"beam.{name}", "an integer >= 0 (0: one per core)")
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
