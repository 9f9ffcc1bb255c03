"""The Beam components on the portable runner, as Flink and Spark run them: Beam's own job
service and an EXTERNAL worker pool, both on loopback, whose SDK workers import the
project only from the sdist the job stages (pipeline/runners/beam_worker_boot.py). Their outputs
must equal the direct runner's."""
import contextlib
import glob
import os
import re
import signal
import site
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import E2E_OVERRIDES, REPO, _write_e2e_data

pytestmark = pytest.mark.slow  # about 1.5 minutes on 2 cores: one pipeline run, two partial

BOOT = REPO / "pipeline" / "runners" / "beam_worker_boot.py"
PROBE_MODULE = "components.image_example_gen.executor"
BEAM_COMPONENTS = ("ImageExampleGen", "StatisticsGen", "Transform", "Evaluator")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}:\n{log.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("localhost", port), 1):
            return
        time.sleep(0.5)
    raise RuntimeError(f"{proc.args} not listening on {port} after {timeout} s")


class BeamServices:
    """local_job_service_main and worker_pool_main as subprocesses, each in its own
    process group (the pool's workers with it), logs in `root`."""

    def __init__(self, root: Path):
        self.root, self.procs = root, []
        self.job_log, self.pool_log = root / "job_service.log", root / "worker_pool.log"
        self.workers_dir = root / "workers"  # the workers' TMPDIR: their staged code
        self.workers_dir.mkdir()
        self.job_port = self.pool_port = 0

    def start(self) -> None:
        root = self.root
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        bin_dir = os.path.dirname(sys.executable)
        # The job service, like a Flink or Spark job server, holds no project code: -S
        # drops the editable install's .pth hook, PYTHONPATH keeps the third-party packages.
        port_file = root / "job_service.port"
        self._start([sys.executable, "-S", "-m",
                     "apache_beam.runners.portability.local_job_service_main",
                     "--port=0", f"--port_file={port_file}"], self.job_log,
                    {**env, "PYTHONPATH": os.pathsep.join(site.getsitepackages())})
        self.pool_port = _free_port()
        # The boot program runs on the venv's python3 (its shebang), as the SDK image's
        # boot runs on the image's.
        self._start([sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                     f"--service_port={self.pool_port}", f"--container_executable={BOOT}"],
                    self.pool_log, {**env, "PATH": bin_dir + os.pathsep + env["PATH"],
                                    "TMPDIR": str(self.workers_dir)})
        deadline = time.monotonic() + 120
        while not port_file.exists() and self.procs[0].poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.5)
        self.job_port = int(port_file.read_text()) if port_file.exists() else 0
        _wait_listening(self.job_port, self.procs[0], self.job_log)
        _wait_listening(self.pool_port, self.procs[1], self.pool_log)

    def _start(self, args, log: Path, env) -> None:
        with open(log, "wb") as out:
            self.procs.append(subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                               cwd=self.root, env=env, start_new_session=True))

    def overrides(self):
        return ("beam.runner=flink", f"beam.flink.job_endpoint=localhost:{self.job_port}",
                "beam.flink.environment_type=EXTERNAL",
                f"beam.flink.environment_config=localhost:{self.pool_port}")

    def completed_jobs(self) -> list:
        return re.findall(r"Completed job in [\d.]+ seconds with state (\w+)",
                          self.job_log.read_text())

    def logs(self, lines: int = 150) -> str:
        noise = ("Warning", "warnings.warn")
        parts = []
        for log in (self.job_log, self.pool_log):
            text = [x for x in log.read_text(errors="replace").splitlines()
                    if not any(n in x for n in noise)]
            parts.append(f"--- {log.name} (last {lines} lines) ---\n" + "\n".join(text[-lines:]))
        return "\n".join(parts)

    @contextlib.contextmanager
    def logs_on_failure(self):
        try:
            yield
        except BaseException:
            print(self.logs())
            raise

    def stop(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    beam_services = BeamServices(tmp_path_factory.mktemp("beam_services"))
    try:
        beam_services.start()
        yield beam_services
    finally:
        beam_services.stop()


def _probe(services: BeamServices, out: Path, *flags: str) -> Path:
    """A one-element job on the pool: where a worker imports PROBE_MODULE from. Only
    standard-library callables in it: nothing of the test's own travels to the worker."""
    import importlib.util

    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipeline.config import load_config

    args = load_config(overrides=services.overrides()).beam.pipeline_args() + list(flags)
    with beam.Pipeline(options=PipelineOptions(args)) as p:
        _ = (p | beam.Create([PROBE_MODULE]) | beam.Map(importlib.util.find_spec)
             | beam.Map(getattr, "origin") | beam.io.WriteToText(str(out)))
    return Path(glob.glob(f"{out}*")[0])


def test_workers_import_the_project_only_from_the_staged_sdist(services, tmp_path):
    with services.logs_on_failure():
        origin = Path(_probe(services, tmp_path / "staged", f"--setup_file={REPO / 'setup.py'}")
                      .read_text().strip())
        assert origin.is_relative_to(services.workers_dir), origin
        assert not origin.is_relative_to(REPO), origin
        assert "installed workflow.tar.gz" in services.pool_log.read_text()
        # Without the staged sdist the same job fails: the workers cannot see the checkout.
        with pytest.raises(Exception, match=f"No module named '{PROBE_MODULE.split('.')[0]}'"):
            _probe(services, tmp_path / "unstaged")


# -- the pipeline, portable and direct ------------------------------------------------------
def _executions(root: str, component: str, output: str) -> list:
    """The output's folders, oldest execution first."""
    folder = os.path.join(root, component, output)
    return [os.path.join(folder, e) for e in sorted(os.listdir(folder), key=int)]


def _run_direct_partial(config, from_nodes, to_nodes) -> None:
    """Only the nodes between from_nodes and to_nodes, on the direct runner, uncached, in
    config's home; the others' outputs are those of the latest run (a TFX partial run)."""
    from tfx.dsl.compiler import compiler
    from tfx.orchestration import metadata
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner
    from tfx.orchestration.portable import partial_run_utils

    from pipeline import data_source
    from pipeline.pipeline import create_pipeline, without_cache_for

    data_root, manifest = data_source.resolve(config)
    ir = compiler.Compiler().compile(create_pipeline(
        config, data_root, manifest,
        metadata_connection_config=metadata.sqlite_metadata_connection_config(
            config.metadata_path)))
    ir = without_cache_for(ir, [n.pipeline_node.node_info.id for n in ir.nodes])
    partial_run_utils.mark_pipeline(ir, from_nodes=from_nodes, to_nodes=to_nodes)
    LocalDagRunner().run_with_ir(ir)


@pytest.fixture(scope="module")
def runs(services, tmp_path_factory):
    """The whole pipeline with beam.runner=flink; then, in the same home on the direct
    runner, the Evaluator alone (on the portable run's model) and ImageExampleGen through
    Transform. Each Beam component's output folder then holds [portable, direct]."""
    from pipeline.config import load_config
    from pipeline.runners.local import run_local

    home = tmp_path_factory.mktemp("portable_home")
    data = home / "data"
    facts = _write_e2e_data(data)
    base = E2E_OVERRIDES + (f"home={home}", f"data.source={data}")
    with services.logs_on_failure():
        jobs_before = services.completed_jobs()
        started = time.monotonic()
        summary = run_local(load_config(overrides=base + services.overrides()))
        portable_seconds = time.monotonic() - started
        portable_jobs = services.completed_jobs()[len(jobs_before):]
        direct = load_config(overrides=base)
        _run_direct_partial(direct, ["Evaluator"], ["Evaluator"])
        _run_direct_partial(direct, ["ImageExampleGen"], ["Transform"])
    return {"summary": summary, "root": direct.pipeline_root, "seconds": portable_seconds,
            "rejected_expected": facts["rejected_expected"], "portable_jobs": portable_jobs,
            "direct_jobs": services.completed_jobs()[len(jobs_before) + len(portable_jobs):]}


def test_the_portable_run_went_through_the_job_service_and_the_pool(runs, services):
    assert runs["summary"].executions["Pusher"] == "COMPLETE"
    # One job per Beam component (Transform may submit more), all DONE; the direct
    # partial runs submitted none.
    assert len(runs["portable_jobs"]) >= len(BEAM_COMPONENTS)
    assert set(runs["portable_jobs"]) == {"DONE"}
    assert runs["direct_jobs"] == []
    pool = services.pool_log.read_text()
    assert pool.count(str(BOOT)) >= len(BEAM_COMPONENTS)
    assert pool.count("installed workflow.tar.gz") >= len(BEAM_COMPONENTS)
    for component in BEAM_COMPONENTS:
        outputs = {"ImageExampleGen": "examples", "StatisticsGen": "statistics",
                   "Transform": "transform_graph", "Evaluator": "evaluation"}[component]
        assert len(_executions(runs["root"], component, outputs)) == 2, component


def _records(split_dir: str) -> list:
    """A split's tf.Examples, serialized deterministically, in sorted order."""
    import tensorflow as tf

    files = sorted(glob.glob(os.path.join(split_dir, "*.gz")))
    assert files, split_dir
    return sorted(tf.train.Example.FromString(r.numpy()).SerializeToString(deterministic=True)
                  for r in tf.data.TFRecordDataset(files, compression_type="GZIP"))


def _splits(uri: str) -> dict:
    return {os.path.basename(d): _records(d) for d in sorted(glob.glob(f"{uri}/Split-*"))}


def test_image_example_gen_examples_and_rejections_equal_the_direct_runners(runs):
    from components.image_example_gen import report

    portable, direct = _executions(runs["root"], "ImageExampleGen", "examples")
    examples = _splits(portable)
    assert set(examples) == {"Split-train", "Split-eval"} and all(examples.values())
    assert examples == _splits(direct)
    assert report.read_report(portable) == report.read_report(direct)
    assert len(report.read_report(portable)["rejected"]) == runs["rejected_expected"]
    assert Path(portable, report.REJECTED_CSV).read_text() == \
        Path(direct, report.REJECTED_CSV).read_text()


def test_statistics_gen_statistics_equal_the_direct_runners(runs):
    import tensorflow_data_validation as tfdv

    def summary(uri: str) -> dict:
        out = {}
        for path in sorted(glob.glob(f"{uri}/Split-*/FeatureStats.pb")):
            stats = tfdv.load_stats_binary(path).datasets[0]
            out[os.path.basename(os.path.dirname(path))] = (
                stats.num_examples,
                sorted((f.path.step[0], f.type, _common(f).num_non_missing)
                       for f in stats.features))
        return out

    portable, direct = _executions(runs["root"], "StatisticsGen", "statistics")
    assert summary(portable) and summary(portable) == summary(direct)


def _common(feature):
    kind = feature.WhichOneof("stats")
    return getattr(feature, kind).common_stats


def test_transform_outputs_equal_the_direct_runners(runs):
    portable, direct = _executions(runs["root"], "Transform", "transformed_examples")
    transformed = _splits(portable)
    assert transformed and all(transformed.values())
    assert transformed == _splits(direct)
    graphs = _executions(runs["root"], "Transform", "transform_graph")

    def files(uri: str) -> dict:  # the vocabularies and the transformed schema
        paths = glob.glob(f"{uri}/transform_fn/assets/*") + \
            [f"{uri}/transformed_metadata/schema.pbtxt"]
        return {os.path.relpath(p, uri): Path(p).read_bytes() for p in paths}

    assert len(files(graphs[0])) >= 2 and files(graphs[0]) == files(graphs[1])


def test_evaluator_metrics_equal_the_direct_runners(runs):
    import numpy as np

    from components.artifacts import evaluation as results

    portable, direct = (results.read_evaluation(uri) for uri in
                        _executions(runs["root"], "Evaluator", "evaluation"))
    assert portable.metrics and set(portable.metrics) == set(direct.metrics)
    for name, value in portable.metrics.items():
        assert value == pytest.approx(direct.metrics[name], abs=1e-6), name
    assert portable.per_class.keys() == direct.per_class.keys()
    for class_id, values in portable.per_class.items():
        assert values == pytest.approx(direct.per_class[class_id], abs=1e-6), class_id
    np.testing.assert_allclose(portable.confusion, direct.confusion, atol=1e-6)
    assert portable.validation_ok == direct.validation_ok
