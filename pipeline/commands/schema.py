"""`imgpipe schema accept [RUN]`: makes a run's data the data guard's reference for the
champion, explicitly and on record (components/serving/data_reference.py): the schema
relaxed to admit it and its statistics for the drift checks."""
import getpass
from typing import Optional, Tuple

from tfx.types import standard_artifacts

from components.serving import data_reference as reference
from components.artifacts.statistics import load_split_statistics
from pipeline.config import PipelineConfig
from pipeline.commands.history import history
from pipeline.run_summary import find_run, open_store, run_artifacts

STATISTICS = ("StatisticsGen", "statistics")


def accept_run(config: PipelineConfig, run_id: Optional[str] = None
               ) -> Tuple[str, reference.Reference, list]:
    """(folder written, the new reference, the findings it accepts) for run `run_id`
    (default: the newest run)."""
    with open_store(config) as m:
        run = find_run(m.store, config.name, run_id)
        statistics = run_artifacts(m.store, run).get(STATISTICS)
        if statistics is None:
            raise LookupError(f"run {run.name} has no statistics: it stopped before "
                              "StatisticsGen, there is no data to accept")
        run_name = run.name
    artifact = standard_artifacts.ExampleStatistics()
    artifact.set_mlmd_artifact(statistics)
    findings = next((r.findings for r in history(config) if r.run_id == run_name), [])
    path, accepted = reference.accept(
        config.serving_dir, load_split_statistics(artifact), run_name, findings,
        config.guard.size_range_factor, getpass.getuser())
    return path, accepted, findings
