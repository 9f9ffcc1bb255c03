"""The `imgpipe` command: its arguments, parsed here and handed to the handler of each
subcommand (cli_handlers.py: what it does and prints). Nothing imports it but the entry
point.
"""
import os
import sys

# The Keras mode is set by the package (trainer/__init__.py, imported first). TensorFlow's C++ start-up chatter (CUDA plugin registration on a CPU machine) is noise
# for a user; `--verbose` runs keep whatever the environment says.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import warnings  # noqa: E402

# google-api-core and google-auth warn on import that Python 3.10 support ends (a check
# on today's date, reached through TensorFlow's cluster resolvers): nothing a user can act
# on, printed on every command. An explicit -W or PYTHONWARNINGS still wins.
if not sys.warnoptions:
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.(api_core|auth)\.")

import argparse  # noqa: E402
import gc  # noqa: E402
from typing import Any, List, Optional  # noqa: E402

# Light modules only (`imgpipe --help` must not load TensorFlow): their heavy imports are
# deferred to the functions that need them.
from components.serving import mlflow_registry  # noqa: E402
from pipeline import cli_handlers as handlers  # noqa: E402
from pipeline.runners import kubeflow  # noqa: E402
from trainer.config_fields import ConfigError  # noqa: E402


# -- the config every command reads (cli_handlers.config_of) -------------------------------
def _config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML config file (every key optional)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.FIELD=VALUE",
                        help="override one config value, e.g. --set train.phase2_epochs=0")
    parser.add_argument("--data", help="shortcut for --set data.source=PATH")
    parser.add_argument("--home", help="shortcut for --set home=DIR")


# -- Kubeflow: compile, submit, schedule ------------------------------------------------------
def _image_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", help="container image for every task "
                        "(default: kubeflow.image)")


def _cluster_args(parser: argparse.ArgumentParser) -> None:
    _image_arg(parser)
    parser.add_argument("--host", help="KFP API URL (default: kubeflow.host, then "
                        "KF_PIPELINES_ENDPOINT, then the in-cluster service)")


def _add_kubeflow_commands(sub: Any) -> None:
    compile_ = sub.add_parser("compile", help="compile the pipeline for Kubeflow "
                              "Pipelines (KubeflowV2DagRunner, offline)")
    _config_args(compile_)
    compile_.add_argument("--target", choices=("kubeflow",), default="kubeflow")
    compile_.add_argument("--format", choices=kubeflow.FORMATS, default="yaml",
                          help="yaml: the pipeline spec KFP uploads; json: the PipelineJob")
    compile_.add_argument("--output", help="default: <home>/kubeflow/<name>.<format>")
    _image_arg(compile_)
    compile_.set_defaults(func=handlers.cmd_compile)

    submit = sub.add_parser("submit", help="upload (a new version of) the pipeline "
                            "to Kubeflow Pipelines and start a run")
    _config_args(submit)
    _cluster_args(submit)
    submit.add_argument("--run-name", help="default: <name> <UTC time>")
    submit.set_defaults(func=handlers.cmd_submit)

    schedule = sub.add_parser(
        "schedule", help="create, list, pause, resume or delete a KFP recurring run")
    _config_args(schedule)
    _cluster_args(schedule)
    schedule.add_argument("action", nargs="?", default="create",
                          choices=("create", "list", "pause", "resume", "delete"))
    schedule.add_argument("recurring_run", nargs="?", metavar="NAME_OR_ID",
                          help="pause/resume/delete: default <name>-schedule")
    schedule.add_argument("--cron", help="create: standard 5-field cron in UTC, "
                          "e.g. '0 3 * * *' (03:00 every day)")
    schedule.add_argument("--name", help="create: the recurring run's name "
                          "(default <name>-schedule)")
    schedule.set_defaults(func=handlers.cmd_schedule)


# -- registry ---------------------------------------------------------------------------------
def _add_registry_commands(sub: Any) -> None:
    parser = sub.add_parser(
        "registry", help="the MLflow model registry: list, show, promote, rollback, sync")
    commands = parser.add_subparsers(dest="registry_command", required=True)
    champion = mlflow_registry.CHAMPION
    for name, func, help_text in (
            ("list", handlers.cmd_registry_list,
             "registered and pushed versions, with the champion"),
            ("show", handlers.cmd_registry_show,
             "one version's tags and metrics (default: the champion)"),
            ("promote", handlers.cmd_registry_promote,
             "make serving version VERSION the champion"),
            ("rollback", handlers.cmd_registry_rollback,
             "move champion back to the version it replaced"),
            ("sync", handlers.cmd_registry_sync,
             "register pushed versions the registry is missing")):
        command = commands.add_parser(name, help=help_text)
        _config_args(command)
        command.set_defaults(func=func)
        if name == "promote":
            command.add_argument("version", type=int, help="serving version number")
        elif name == "show":
            command.add_argument("version", nargs="?", default=champion,
                                 help=f"serving version number or '{champion}'")


# -- history and schema -----------------------------------------------------------------------
def _add_history_and_schema_commands(sub: Any) -> None:
    history_ = sub.add_parser("history", help="one row per run from ML Metadata: data, "
                              "accuracy with CI, baseline, blessed, pushed, data findings")
    history_.add_argument("--limit", type=int, default=None, help="only the newest N runs")
    _config_args(history_)
    history_.set_defaults(func=handlers.cmd_history)
    schema_ = sub.add_parser("schema", help="the data guard's reference schema")
    commands = schema_.add_subparsers(dest="schema_command", required=True)
    accept = commands.add_parser("accept", help="make a run's data (default: the newest "
                                 "run's) the reference for the champion, on record")
    accept.add_argument("run", nargs="?", help="pipeline run id (default: the newest run)")
    _config_args(accept)
    accept.set_defaults(func=handlers.cmd_schema_accept)


# -- report and predict -----------------------------------------------------------------------
def _add_report_and_predict_commands(sub: Any) -> None:
    report_ = sub.add_parser(
        "report", help="an HTML page (+ PNGs) on a run: verdict, curves, confusion matrix, "
        "per-class metrics, baseline diff, misclassified images")
    report_.add_argument("run", nargs="?", help="pipeline run id (default: the newest run)")
    report_.add_argument("--out", help="output folder (default <home>/reports/<run>)")
    _config_args(report_)
    report_.set_defaults(func=handlers.cmd_report)

    predict_ = sub.add_parser("predict", help="top-k class names for image files")
    predict_.add_argument("images", nargs="+", metavar="IMAGE")
    predict_.add_argument("--model", default=mlflow_registry.CHAMPION,
                          help="registry alias (default champion), serving version, or a "
                          "SavedModel folder")
    predict_.add_argument("--top-k", type=int, default=None, help="show at most K classes")
    _config_args(predict_)
    predict_.set_defaults(func=handlers.cmd_predict)


# -- the command ------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imgpipe", description="Fine-tune an image classifier on a folder of images "
        "with TFX, locally or on Kubeflow Pipelines.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the whole pipeline locally (LocalDagRunner)")
    _config_args(run)
    run.add_argument("--verbose", action="store_true", help="print TFX/Beam logs too")
    run.set_defaults(func=handlers.cmd_run)
    _add_kubeflow_commands(sub)
    _add_registry_commands(sub)
    _add_report_and_predict_commands(sub)
    _add_history_and_schema_commands(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as e:
        return handlers.fail(args, str(e), code=2)
    finally:
        # Everything is written: the interpreter's final collection over TensorFlow's and
        # Beam's object graphs would only delay the exit (by ~2.7 s after a run).
        gc.freeze()


if __name__ == "__main__":
    sys.exit(main())
