"""Named points of a push where a test can stop the process, to check that whatever a
crash leaves, the next push repairs (reconcile.py).

IMGPIPE_PUSH_FAULT=<point>:<signal>, e.g. `published:KILL` (the process is killed there,
as by `kill -9`) or `published:STOP` (it stops until SIGCONT, e.g. while a test fills the
disk). Unset, reached() does nothing. The points, in push order, are POINTS.
"""
import os
import signal

ENV = "IMGPIPE_PUSH_FAULT"
POINTS = (
    "journal",         # the push is recorded as pending, nothing copied yet
    "copying",         # the model is half copied into its staging folder
    "published",       # the version folder is in place, models.config not yet written
    "serving_config",  # models.config labels it stable, the registry not yet told
    "mlflow_run",      # the MLflow run is logged, no model version yet
    "mlflow_version",  # the model version exists, `champion` not yet moved
    "registered",      # everything done but the pending record's removal
)


def reached(point: str) -> None:
    """Stops this process with the signal IMGPIPE_PUSH_FAULT names for `point`, if any."""
    wanted, _, name = os.environ.get(ENV, "").partition(":")
    if wanted == point:
        os.kill(os.getpid(), getattr(signal, f"SIG{name or 'KILL'}"))
