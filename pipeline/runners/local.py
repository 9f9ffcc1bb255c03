"""Run the pipeline locally: LocalDagRunner, sqlite MLMD, progress lines and a summary."""
import contextlib
import datetime
import os
import sys
import time
from typing import Dict, Iterator, Optional, TextIO

from tfx.dsl.compiler import compiler, constants
from tfx.orchestration import metadata
from tfx.orchestration.local.local_dag_runner import LocalDagRunner
from tfx.orchestration.portable import launcher, runtime_parameter_utils

from components.artifacts import data_guard as guard_report
from components.artifacts.span_names import split_span_source
from components.image_example_gen import file_names
from components.span_listing.executor import outputs as listing_outputs
from pipeline import data_source
from pipeline.component_ids import NEVER_CACHED_LOCALLY
from pipeline.config import PipelineConfig
from pipeline.runners import home_lock
from pipeline.runners.notifications import Notifier
from pipeline.pipeline import create_pipeline, without_cache_for
from pipeline.run_summary import RunSummary, record_stop, summarize_latest_run


@contextlib.contextmanager
def progress_lines(out: TextIO, seconds: Dict[str, float]) -> Iterator[None]:
    """Prints one line when each component starts and one with its time when it ends,
    and records that time in `seconds` (component id -> seconds).

    Hooks TFX's node launcher rather than its log lines: some executors (Transform)
    lower the logging level mid-run, which silenced log-based progress.
    """
    original_launch = launcher.Launcher.launch
    original_run_executor = launcher.Launcher._run_executor  # pylint: disable=protected-access
    executed = set()

    def run_executor(self, execution_info):
        executed.add(id(self))
        return original_run_executor(self, execution_info)

    def launch(self):
        name = self._pipeline_node.node_info.id  # pylint: disable=protected-access
        print(f"  > {name} ...", file=out, flush=True)
        started = time.monotonic()
        result = original_launch(self)
        seconds[name] = time.monotonic() - started
        system = self._system_node_handler is not None  # pylint: disable=protected-access
        note = "" if system or id(self) in executed else " (cached)"
        print(f"  < {name} {seconds[name]:6.1f} s{note}", file=out, flush=True)
        return result

    launcher.Launcher.launch = launch
    launcher.Launcher._run_executor = run_executor  # pylint: disable=protected-access
    try:
        yield
    finally:
        launcher.Launcher.launch = original_launch
        launcher.Launcher._run_executor = original_run_executor  # pylint: disable=protected-access


def run_local(config: PipelineConfig, out: Optional[TextIO] = None) -> RunSummary:
    """Runs the whole pipeline for `config` in this process and returns its summary (of
    this run, whatever ran since). One run at a time per home (home_lock.py). Tells the
    webhook (notify.*) when it fails, blesses nothing or pushes a version. A run the data
    guard stopped returns its summary (data_stopped, data_findings)."""
    out = out or sys.stdout
    start = time.monotonic()
    with home_lock.hold(config.home, out):
        return _run_locked(config, out, start, Notifier(config))


def _run_locked(config: PipelineConfig, out: TextIO, start: float,
                notifier: Notifier) -> RunSummary:
    data_root, manifest = data_source.resolve(config)
    # Listed here, before the run: TFX's cache keys SpanListing on this value (see
    # component_ids.NEVER_CACHED_LOCALLY).
    listing = listing_outputs(data_root, split_span_source(config.data.source)[1],
                              config.data.window_spans, os.path.abspath(config.serving_dir),
                              config.train.warm_start)
    if not manifest:  # before TFX's driver fingerprints them (it cannot name the file)
        file_names.check_fingerprinted_names(data_root)
    os.makedirs(os.path.dirname(config.metadata_path), exist_ok=True)
    pipeline = create_pipeline(
        config, data_root, manifest,
        metadata_connection_config=metadata.sqlite_metadata_connection_config(
            config.metadata_path), precomputed=listing)
    print(f"imgpipe: running '{config.name}' on {data_root}"
          f"{'/' + manifest if manifest else ''}", file=out, flush=True)
    ir = without_cache_for(compiler.Compiler().compile(pipeline), NEVER_CACHED_LOCALLY)
    # The run id LocalDagRunner would pick, chosen here so that the summary is this run's.
    run_id = datetime.datetime.now().isoformat()
    runtime_parameter_utils.substitute_runtime_parameter(
        ir, {constants.PIPELINE_RUN_ID_PARAMETER_NAME: run_id})
    seconds: Dict[str, float] = {}
    try:
        with progress_lines(out, seconds):
            LocalDagRunner().run_with_ir(ir)
    except Exception as e:
        notifier.run_failed(e)
        findings = guard_report.findings_in(str(e).splitlines())
        if not findings:
            raise
        # The data guard stopped the run: an outcome to report, not a crash.
        record_stop(config, findings, run_id)
        summary = summarize_latest_run(config, run_id)
        summary.data_findings, summary.data_stopped = findings, True
        summary.wall_seconds = time.monotonic() - start
        summary.component_seconds = seconds
        return summary
    summary = summarize_latest_run(config, run_id)
    summary.wall_seconds = time.monotonic() - start
    summary.component_seconds = seconds
    notifier.run_done(summary)
    return summary
