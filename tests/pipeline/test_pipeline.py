"""create_pipeline(config), compiled by TFX's own compiler as the local runner does."""
import os

from tfx.dsl.compiler import compiler
from tfx.proto.orchestration import executable_spec_pb2, pipeline_pb2
from tfx.utils import import_utils

from pipeline import data_source
from pipeline.config import load_config
from pipeline.pipeline import NEVER_CACHED, create_pipeline, without_cache_for

COMPONENTS = ["SpanListing", "ImageExampleGen", "StatisticsGen", "DataGuard", "SchemaGen",
              "ExampleValidator", "Transform", "Trainer", "LatestBlessedModel", "Evaluator",
              "Pusher", "DataReference"]


def _compiled(config, data_root, manifest=None) -> pipeline_pb2.Pipeline:
    return without_cache_for(compiler.Compiler().compile(
        create_pipeline(config, data_root, manifest)))


def _executor_class_path(ir: pipeline_pb2.Pipeline, node: str) -> str:
    deployment = pipeline_pb2.IntermediateDeploymentConfig()
    ir.deployment_config.Unpack(deployment)
    spec = deployment.executor_specs[node]
    for kind in (executable_spec_pb2.PythonClassExecutableSpec,
                 executable_spec_pb2.BeamExecutableSpec):
        message = kind()
        if spec.Unpack(message):
            return message.class_path if hasattr(message, "class_path") else \
                message.python_executor_spec.class_path
    raise AssertionError(f"{node}: no Python executor")


def test_the_default_config_builds_the_demo_pipeline(tmp_path):
    """The defaults select the embedded digits: resolving them writes the images, and the
    DAG built on them compiles with every component in data order."""
    config = load_config(overrides=(f"home={tmp_path}",))
    data_root, manifest = data_source.resolve(config)
    assert manifest is None and data_root == os.path.abspath(config.demo_data_dir)
    classes = sorted(os.listdir(data_root))
    assert classes == [str(d) for d in range(10)]
    assert sum(len(os.listdir(os.path.join(data_root, c))) for c in classes) == 1797

    ir = _compiled(config, data_root)
    assert [n.pipeline_node.node_info.id for n in ir.nodes] == COMPONENTS
    input_base = next(n.pipeline_node for n in ir.nodes
                      if n.pipeline_node.node_info.id == "ImageExampleGen"
                      ).parameters.parameters["input_base"].field_value.string_value
    assert input_base == data_root
    uncached = {n.pipeline_node.node_info.id for n in ir.nodes
                if not n.pipeline_node.execution_options.caching_options.enable_cache}
    assert uncached == set(NEVER_CACHED)
    # Nothing trains on data the guard stopped: Transform waits for it.
    transform = next(n.pipeline_node for n in ir.nodes
                     if n.pipeline_node.node_info.id == "Transform")
    assert "DataGuard" in transform.upstream_nodes


def test_executors_are_compiled_by_import_path(tmp_path):
    """Each project component's executor is named by the import path of its class."""
    from components.evaluator.executor import EvaluatorExecutor
    from components.image_example_gen import executor as example_gen
    from components.latest_blessed_model import executor as baseline
    from components.registry_pusher import executor as pusher

    ir = _compiled(load_config(overrides=(f"home={tmp_path}",)), str(tmp_path / "data"))
    expected = {"ImageExampleGen": example_gen.Executor, "LatestBlessedModel": baseline.Executor,
                "Evaluator": EvaluatorExecutor, "Pusher": pusher.Executor}
    for node, cls in expected.items():
        path = _executor_class_path(ir, node)
        assert path == f"{cls.__module__}.{cls.__name__}", node
        assert import_utils.import_class_by_path(path) is cls, node


def test_every_component_has_its_kubeflow_resources_section():
    """component_ids.RESOURCE_FIELDS maps each DAG node onto a kubeflow.resources field,
    one field per node and no field without a node."""
    import dataclasses

    from pipeline.component_ids import RESOURCE_FIELDS
    from pipeline.kubeflow_config import ComponentResources

    # The exit handler is a node of the Kubeflow spec only (notify.on_kubeflow).
    assert list(RESOURCE_FIELDS) == COMPONENTS + ["NotifyExitHandler"]
    assert sorted(RESOURCE_FIELDS.values()) == \
        sorted(f.name for f in dataclasses.fields(ComponentResources))
