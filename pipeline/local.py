"""Run the pipeline locally: LocalDagRunner, sqlite MLMD, progress lines and a summary."""
import contextlib
import os
import sys
import time
from typing import Iterator, Optional, TextIO

from tfx.dsl.compiler import compiler
from tfx.orchestration import metadata
from tfx.orchestration.local.local_dag_runner import LocalDagRunner
from tfx.orchestration.portable import launcher

from components.data_guard import report as guard_report
from pipeline import data_source, history
from pipeline.config import PipelineConfig
from pipeline.notifications import Notifier
from pipeline.pipeline import create_pipeline, without_cache_for
from pipeline.run_summary import RunSummary, summarize_latest_run


@contextlib.contextmanager
def progress_lines(out: TextIO) -> Iterator[None]:
    """Prints one line when each component starts and one with its time when it ends.

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
        system = self._system_node_handler is not None  # pylint: disable=protected-access
        note = "" if system or id(self) in executed else " (cached)"
        print(f"  < {name} {time.monotonic() - started:6.1f} s{note}", file=out, flush=True)
        return result

    launcher.Launcher.launch = launch
    launcher.Launcher._run_executor = run_executor  # pylint: disable=protected-access
    try:
        yield
    finally:
        launcher.Launcher.launch = original_launch
        launcher.Launcher._run_executor = original_run_executor  # pylint: disable=protected-access


def run_local(config: PipelineConfig, out: Optional[TextIO] = None) -> RunSummary:
    """Runs the whole pipeline for `config` in this process and returns its summary;
    tells the webhook (notify.*) when it fails, blesses nothing or pushes a version. A run
    the data guard stopped returns its summary (data_stopped, data_findings)."""
    out = out or sys.stdout
    notifier = Notifier(config)
    start = time.monotonic()
    data_root, manifest = data_source.resolve(config)
    os.makedirs(os.path.dirname(config.metadata_path), exist_ok=True)
    pipeline = create_pipeline(
        config, data_root, manifest,
        metadata_connection_config=metadata.sqlite_metadata_connection_config(
            config.metadata_path))
    print(f"imgpipe: running '{config.name}' on {data_root}"
          f"{'/' + manifest if manifest else ''}", file=out, flush=True)
    ir = without_cache_for(compiler.Compiler().compile(pipeline))
    try:
        with progress_lines(out):
            LocalDagRunner().run_with_ir(ir)
    except Exception as e:
        notifier.run_failed(e)
        findings = guard_report.findings_in(str(e).splitlines())
        if not findings:
            raise
        # The data guard stopped the run: an outcome to report, not a crash.
        history.record_stop(config, findings)
        summary = summarize_latest_run(config)
        summary.data_findings, summary.data_stopped = findings, True
        summary.wall_seconds = time.monotonic() - start
        return summary
    summary = summarize_latest_run(config)
    summary.wall_seconds = time.monotonic() - start
    notifier.run_done(summary)
    return summary
