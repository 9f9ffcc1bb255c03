"""The `imgpipe` command: its arguments, and what each subcommand prints.

The work is done by plain functions elsewhere (runners/, commands/, the serving
library); this module parses the arguments, loads the config and turns known failures
into a message and an exit code. Nothing imports it but the entry point.
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
import functools  # noqa: E402
import gc  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402
from typing import Any, Callable, List, Optional, Tuple  # noqa: E402

# Light modules only (`imgpipe --help` must not load TensorFlow): their heavy imports are
# deferred to the functions that need them.
from components.serving import mlflow_registry, tf_serving, versions  # noqa: E402
from pipeline.commands import predict, registry, report  # noqa: E402
from pipeline.config import PipelineConfig, load_config  # noqa: E402
from pipeline.runners import kubeflow  # noqa: E402
from trainer.config_fields import ConfigError  # noqa: E402

Command = Callable[[argparse.Namespace], int]


def _fail(args: argparse.Namespace, message: str, code: int = 1) -> int:
    """Every error the CLI reports, one way: `imgpipe <command>: <message>` on stderr, and
    the exit code (1; 2 for a wrong config)."""
    print(f"imgpipe {args.command}: {message}", file=sys.stderr, flush=True)
    return code


# -- the config every command reads ---------------------------------------------------------
def _config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML config file (every key optional)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.FIELD=VALUE",
                        help="override one config value, e.g. --set train.phase2_epochs=0")
    parser.add_argument("--data", help="shortcut for --set data.source=PATH")
    parser.add_argument("--home", help="shortcut for --set home=DIR")


def _load(args: argparse.Namespace) -> PipelineConfig:
    overrides = list(args.overrides)
    if args.data:
        overrides.append(f"data.source={args.data}")
    if args.home:
        overrides.append(f"home={args.home}")
    return load_config(args.config, tuple(overrides))


# -- run --------------------------------------------------------------------------------------
def _log_to_file(config: PipelineConfig, verbose: bool) -> str:
    """Full logs go to a file; the terminal gets progress lines unless --verbose."""
    from absl import logging as absl_logging

    log_dir = os.path.join(config.home, "logs")
    os.makedirs(log_dir, exist_ok=True)
    path = os.path.join(log_dir, time.strftime("run-%Y%m%d-%H%M%S.log"))
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)  # library deprecation warnings go to the file too
    if not verbose:
        absl_logging.use_absl_handler()
        absl_logging.get_absl_handler().setLevel(logging.ERROR)
    absl_logging.set_verbosity(absl_logging.INFO)  # use_absl_handler resets it to WARNING
    return path


def cmd_run(args: argparse.Namespace) -> int:
    config = _load(args)
    log_path = _log_to_file(config, args.verbose)
    # TFX, TensorFlow and Beam: imported after the logging set-up, which they read.
    from pipeline.runners.local import run_local
    from pipeline.run_summary import LAST_RUN_FILE, dump_summary
    # The imported modules' millions of objects live until exit: out of the collector's
    # sight, full collections during the run only walk what the run creates (~3 s less).
    gc.freeze()

    print(f"imgpipe: full log in {log_path}", flush=True)
    summary = run_local(config)
    print("\n".join(["", "== summary =="] + summary.lines()), flush=True)
    dump_summary(summary, os.path.join(config.home, LAST_RUN_FILE))
    return 1 if summary.data_stopped else 0


# -- Kubeflow: compile, submit, schedule ------------------------------------------------------
def _reports_kfp_errors(command: Command) -> Command:
    """KFP failures end the command with their message and exit code 1, no traceback."""
    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        from pipeline.runners.kfp_client import KfpError  # the KFP client library: seconds to import

        try:
            return command(args)
        except KfpError as e:
            return _fail(args, str(e))
    return run


def cmd_compile(args: argparse.Namespace) -> int:
    config = kubeflow.cluster_config(_load(args), image=args.image)
    path = args.output or os.path.join(config.home, "kubeflow", f"{config.name}.{args.format}")
    kubeflow.write_spec(kubeflow.compile_spec(config), path, args.format)
    print(f"imgpipe: wrote the KFP v2 pipeline spec to {path}")
    return 0


@_reports_kfp_errors
def cmd_submit(args: argparse.Namespace) -> int:
    config = kubeflow.cluster_config(_load(args), image=args.image)
    run = kubeflow.submit(config, args.host, args.run_name)
    print(f"imgpipe: started run {run.run_id} of {config.name} (version {run.version_name}) "
          f"in experiment '{config.kubeflow.experiment}'")
    return 0


@_reports_kfp_errors
def cmd_schedule(args: argparse.Namespace) -> int:
    from pipeline.runners import kfp_client  # the KFP client library: only for talking to KFP

    config = _load(args)
    name = args.name or args.recurring_run or f"{config.name}-schedule"
    if args.action == "create":
        cron = kfp_client.kfp_cron(args.cron)  # invalid cron: error before connecting
        config = kubeflow.cluster_config(config, image=args.image)
        created = kubeflow.create_schedule(config, args.host, name, cron)
        print(f"imgpipe: recurring run '{name}' ({created.recurring_run_id}) runs "
              f"{config.name} on cron '{cron}' (KFP: seconds first, UTC)")
        return 0
    conn = kfp_client.connect(args.host, config)
    if args.action == "list":
        for line in kfp_client.list_schedules(conn, config):
            print(line)
        return 0
    recurring_run_id = kfp_client.change_schedule(conn, config, name, args.action)
    print(f"imgpipe: {args.action}d recurring run '{name}' ({recurring_run_id})")
    return 0


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
    compile_.set_defaults(func=cmd_compile)

    submit = sub.add_parser("submit", help="upload (a new version of) the pipeline "
                            "to Kubeflow Pipelines and start a run")
    _config_args(submit)
    _cluster_args(submit)
    submit.add_argument("--run-name", help="default: <name> <UTC time>")
    submit.set_defaults(func=cmd_submit)

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
    schedule.set_defaults(func=cmd_schedule)


# -- registry ---------------------------------------------------------------------------------
def _registry_errors(command: Command) -> Command:
    """Registry errors end the command with a message, not a traceback."""
    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except (versions.RegistryError, tf_serving.ServingError) as e:
            return _fail(args, str(e))
        except Exception as e:  # unreachable server, unusable database file...
            if isinstance(e, OSError) or type(e).__module__.startswith("mlflow"):
                return _fail(args, f"the MLflow registry failed: {type(e).__name__}: {e}")
            raise
    return run


def _registry(args: argparse.Namespace) -> Any:
    """(config, MLflow client) of a registry command."""
    config = _load(args)
    return config, mlflow_registry.connect(config.registry_uri)


def _tf_serving(config: Any) -> Tuple[str, int]:
    """(url, timeout) of the running TF Serving a label move waits for."""
    return config.registry.tf_serving_url, config.registry.tf_serving_timeout_s


def cmd_registry_list(args: argparse.Namespace) -> int:
    config, client = _registry(args)
    rows = versions.entries(client, config.registry_model_name, config.serving_dir)
    print(f"model '{config.registry_model_name}' in {config.registry_uri}; "
          f"serving root {config.serving_dir}")
    if not rows:
        print("no versions yet: run `imgpipe run` to train, evaluate and push one")
        return 0
    print("\n".join(registry.entry_lines(rows)))
    return 0


def cmd_registry_show(args: argparse.Namespace) -> int:
    config, client = _registry(args)
    print("\n".join(registry.version_lines(client, config.registry_model_name, args.version)))
    return 0


def cmd_registry_promote(args: argparse.Namespace) -> int:
    config, client = _registry(args)
    version = versions.promote(client, config.registry_model_name, args.version,
                               config.serving_dir, *_tf_serving(config))
    print(f"champion -> serving version {args.version} (registry version {version.version}); "
          "models.config labels it stable")
    return 0


def cmd_registry_rollback(args: argparse.Namespace) -> int:
    config, client = _registry(args)
    old, new = versions.rollback(client, config.registry_model_name, config.serving_dir,
                                 *_tf_serving(config))
    tag = mlflow_registry.SERVING_VERSION_TAG
    print(f"champion: serving version {old.tags.get(tag)} -> {new.tags.get(tag)} "
          f"(registry {old.version} -> {new.version}); models.config labels it stable")
    return 0


def cmd_registry_sync(args: argparse.Namespace) -> int:
    config, client = _registry(args)
    added, current = versions.sync(client, config.registry_uri, config.registry_model_name,
                                   config.serving_dir, *_tf_serving(config))
    print(f"registered serving versions {', '.join(map(str, added))}" if added else
          "every pushed version is registered")
    print("no champion yet" if current is None else
          f"champion: serving version {current}, labelled stable in models.config")
    return 0


def _add_registry_commands(sub: Any) -> None:
    parser = sub.add_parser(
        "registry", help="the MLflow model registry: list, show, promote, rollback, sync")
    commands = parser.add_subparsers(dest="registry_command", required=True)
    champion = mlflow_registry.CHAMPION
    for name, func, help_text in (
            ("list", cmd_registry_list, "registered and pushed versions, with the champion"),
            ("show", cmd_registry_show,
             "one version's tags and metrics (default: the champion)"),
            ("promote", cmd_registry_promote, "make serving version VERSION the champion"),
            ("rollback", cmd_registry_rollback,
             "move champion back to the version it replaced"),
            ("sync", cmd_registry_sync, "register pushed versions the registry is missing")):
        command = commands.add_parser(name, help=help_text)
        _config_args(command)
        command.set_defaults(func=_registry_errors(func))
        if name == "promote":
            command.add_argument("version", type=int, help="serving version number")
        elif name == "show":
            command.add_argument("version", nargs="?", default=champion,
                                 help=f"serving version number or '{champion}'")


# -- history and schema -----------------------------------------------------------------------
def cmd_history(args: argparse.Namespace) -> int:
    from pipeline.commands import history  # ML Metadata and TFX: heavy

    config = _load(args)
    try:
        records = history.history(config, args.limit)
    except RuntimeError as e:
        print(f"imgpipe history: {e}")
        return 1
    print("\n".join(history.lines(records)))
    return 0


def cmd_schema_accept(args: argparse.Namespace) -> int:
    from pipeline.commands import schema  # TFDV and TFX: heavy

    config = _load(args)
    try:
        path, accepted, findings = schema.accept_run(config, args.run)
    except (LookupError, RuntimeError) as e:
        print(f"imgpipe schema accept: {e}")
        return 1
    print(f"accepted the data of run {accepted.record['run_id']} as the reference of "
          f"champion version {accepted.record['version']} ({path})")
    for finding in findings:
        print(f"  accepted: {finding}")
    return 0


def _add_history_and_schema_commands(sub: Any) -> None:
    history_ = sub.add_parser("history", help="one row per run from ML Metadata: data, "
                              "accuracy with CI, baseline, blessed, pushed, data findings")
    history_.add_argument("--limit", type=int, default=None, help="only the newest N runs")
    _config_args(history_)
    history_.set_defaults(func=cmd_history)
    schema_ = sub.add_parser("schema", help="the data guard's reference schema")
    commands = schema_.add_subparsers(dest="schema_command", required=True)
    accept = commands.add_parser("accept", help="make a run's data (default: the newest "
                                 "run's) the reference for the champion, on record")
    accept.add_argument("run", nargs="?", help="pipeline run id (default: the newest run)")
    _config_args(accept)
    accept.set_defaults(func=cmd_schema_accept)


# -- report and predict -----------------------------------------------------------------------
def cmd_report(args: argparse.Namespace) -> int:
    config = _load(args)
    try:
        path = report.build_report(config, args.run, args.out)
    except RuntimeError as e:
        return _fail(args, str(e))
    print(f"report written to {path}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    config = _load(args)
    try:
        model_dir = predict.resolve_model(config, args.model)
    except LookupError as e:
        return _fail(args, str(e))
    print(f"model: {model_dir}")
    failed = 0
    for p in predict.predict(model_dir, args.images, args.top_k):
        if p.error:
            failed += 1
            _fail(args, f"{p.image}: cannot predict: {p.error}")
            continue
        print(p.image)
        for rank, (name, score) in enumerate(p.top, 1):
            print(f"  {rank}. {name:20} {score:.4f}")
    return 1 if failed else 0


def _add_report_and_predict_commands(sub: Any) -> None:
    report_ = sub.add_parser(
        "report", help="an HTML page (+ PNGs) on a run: verdict, curves, confusion matrix, "
        "per-class metrics, baseline diff, misclassified images")
    report_.add_argument("run", nargs="?", help="pipeline run id (default: the newest run)")
    report_.add_argument("--out", help="output folder (default <home>/reports/<run>)")
    _config_args(report_)
    report_.set_defaults(func=cmd_report)

    predict_ = sub.add_parser("predict", help="top-k class names for image files")
    predict_.add_argument("images", nargs="+", metavar="IMAGE")
    predict_.add_argument("--model", default=mlflow_registry.CHAMPION,
                          help="registry alias (default champion), serving version, or a "
                          "SavedModel folder")
    predict_.add_argument("--top-k", type=int, default=None, help="show at most K classes")
    _config_args(predict_)
    predict_.set_defaults(func=cmd_predict)


# -- the command ------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imgpipe", description="Fine-tune an image classifier on a folder of images "
        "with TFX, locally or on Kubeflow Pipelines.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the whole pipeline locally (LocalDagRunner)")
    _config_args(run)
    run.add_argument("--verbose", action="store_true", help="print TFX/Beam logs too")
    run.set_defaults(func=cmd_run)
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
        return _fail(args, str(e), code=2)
    finally:
        # Everything is written: the interpreter's final collection over TensorFlow's and
        # Beam's object graphs would only delay the exit (by ~2.7 s after a run).
        gc.freeze()


if __name__ == "__main__":
    sys.exit(main())
