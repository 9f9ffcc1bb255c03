"""The kubeflow and beam config sections: defaults, partial overrides, profiles."""
from pathlib import Path

import pytest

from pipeline.config import load_config
from trainer.config_fields import ConfigError


def test_local_beam_args_stay_in_memory_and_kubeflow_defaults_to_worker_processes():
    beam = load_config().beam
    assert beam.pipeline_args() == ["--runner=DirectRunner", "--direct_running_mode=in_memory",
                                    "--direct_num_workers=1"]
    assert beam.for_kubeflow("reg/imgpipe:1").pipeline_args() == [
        "--runner=DirectRunner", "--direct_running_mode=multi_processing",
        "--direct_num_workers=2", "--sdk_container_image=reg/imgpipe:1"]


def test_the_pipelines_beam_args_spare_tfx_packaging_itself_at_every_component():
    """TFX builds an sdist of its own sources for each Beam component unless the args name
    the code's provenance; locally they name this project's setup.py (a staging runner's
    workers need it), and with an SDK image they name the image."""
    from tfx.utils import dependency_utils

    from pipeline.pipeline import PROJECT_SETUP, beam_pipeline_args

    local = beam_pipeline_args(load_config())
    assert local[-1] == f"--setup_file={PROJECT_SETUP}"
    with_image = beam_pipeline_args(load_config(overrides=("beam.sdk_container_image=r/i:1",)))
    assert not any(a.startswith("--setup_file") for a in with_image)
    for args in (local, with_image):
        assert dependency_utils.make_beam_dependency_flags(args) == args  # no --extra_package


def test_overriding_one_resource_keeps_the_components_other_defaults():
    resources = load_config(overrides=("kubeflow.resources.trainer.gpu=2",)).kubeflow.resources
    default = load_config().kubeflow.resources
    assert resources.trainer.gpu == 2
    assert (resources.trainer.cpu, resources.trainer.memory_gb) == \
        (default.trainer.cpu, default.trainer.memory_gb)
    assert resources.transform == default.transform


def test_yaml_sections_merge_the_same_way(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("kubeflow:\n  resources:\n    evaluator: {memory_gb: 12}\n"
                    "beam:\n  runner: flink\n  flink: {job_endpoint: 'jobserver:8099'}\n")
    config = load_config(str(path))
    assert config.kubeflow.resources.evaluator.memory_gb == 12
    assert config.kubeflow.resources.evaluator.cpu == load_config().kubeflow.resources.evaluator.cpu
    assert config.beam.pipeline_args()[:2] == ["--runner=PortableRunner",
                                               "--job_endpoint=jobserver:8099"]


@pytest.mark.parametrize("override, field", [
    ("beam.runner=samza", "beam.runner"),
    ("beam.kubeflow_direct_running_mode=fast", "beam.kubeflow_direct_running_mode"),
    ("beam.kubeflow_direct_num_workers=-1", "beam.kubeflow_direct_num_workers"),
    ("kubeflow.resources.trainer.cpu=0", "kubeflow.resources.trainer.cpu"),
    ("kubeflow.resources.trainer.gpu_type=gpu", "kubeflow.resources.trainer.gpu_type"),
    ("kubeflow.resources.tuner.cpu=1", "kubeflow.resources.tuner"),
    ("kubeflow.pipeline_root=relative/root", "kubeflow.pipeline_root"),
    ("kubeflow.image=", "kubeflow.image"),
])
def test_errors_name_the_field(override, field):
    overrides = (override, "kubeflow.resources.trainer.gpu=1") if "gpu_type" in override \
        else (override,)
    with pytest.raises(ConfigError, match=f"'{field}"):
        load_config(overrides=overrides)


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_overlays_state_only_what_differs_from_the_defaults(overlay):
    """Production trains what a first local run trains, and a changed default reaches
    every cluster: an overlay's config states no value equal to its default."""
    import yaml

    from tests.conftest import config_leaves as _leaves
    from trainer.train_config import TrainConfig

    path = Path(__file__).resolve().parents[4] / "kubernetes" / "overlays" / overlay / \
        "pipeline.yaml"
    stated = _leaves(yaml.safe_load(path.read_text()))
    defaults = _leaves(load_config().to_dict())
    assert stated and set(stated) <= set(defaults)
    assert [key for key, value in stated.items() if value == defaults[key]] == []
    assert load_config(str(path)).train == TrainConfig()
