"""What each `imgpipe` subcommand does and prints, given its parsed arguments (cli.py owns
the arguments): it loads the config, calls the plain functions that do the work
(runners/, commands/, the serving library) and turns known failures into a message and
an exit code. Only cli.py imports it.
"""
import argparse
import functools
import gc
import logging
import os
import sys
import time
from typing import Any, Callable, Tuple

# Light modules only (`imgpipe --help` must not load TensorFlow): their heavy imports are
# deferred to the functions that need them.
from components.serving import mlflow_registry, tf_serving, versions
from pipeline.commands import predict, registry, report
from pipeline.config import PipelineConfig, load_config
from pipeline.runners import kubeflow

Command = Callable[[argparse.Namespace], int]


def fail(args: argparse.Namespace, message: str, code: int = 1) -> int:
    """Every error the CLI reports, one way: `imgpipe <command>: <message>` on stderr, and
    the exit code (1; 2 for a wrong config)."""
    print(f"imgpipe {args.command}: {message}", file=sys.stderr, flush=True)
    return code


def config_of(args: argparse.Namespace) -> PipelineConfig:
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
    config = config_of(args)
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
            return fail(args, str(e))
    return run


def cmd_compile(args: argparse.Namespace) -> int:
    config = kubeflow.cluster_config(config_of(args), image=args.image)
    path = args.output or os.path.join(config.home, "kubeflow", f"{config.name}.{args.format}")
    kubeflow.write_spec(kubeflow.compile_spec(config), path, args.format)
    print(f"imgpipe: wrote the KFP v2 pipeline spec to {path}")
    return 0


@_reports_kfp_errors
def cmd_submit(args: argparse.Namespace) -> int:
    config = kubeflow.cluster_config(config_of(args), image=args.image)
    run = kubeflow.submit(config, args.host, args.run_name)
    print(f"imgpipe: started run {run.run_id} of {config.name} (version {run.version_name}) "
          f"in experiment '{config.kubeflow.experiment}'")
    return 0


@_reports_kfp_errors
def cmd_schedule(args: argparse.Namespace) -> int:
    from pipeline.runners import kfp_client  # the KFP client library: only for talking to KFP

    config = config_of(args)
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


# -- registry ---------------------------------------------------------------------------------
def _registry_errors(command: Command) -> Command:
    """Registry errors end the command with a message, not a traceback."""
    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except (versions.RegistryError, tf_serving.ServingError) as e:
            return fail(args, str(e))
        except Exception as e:  # unreachable server, unusable database file...
            if isinstance(e, OSError) or type(e).__module__.startswith("mlflow"):
                return fail(args, f"the MLflow registry failed: {type(e).__name__}: {e}")
            raise
    return run


def _registry(args: argparse.Namespace) -> Any:
    """(config, MLflow client) of a registry command."""
    config = config_of(args)
    return config, mlflow_registry.connect(config.registry_uri)


def _tf_serving(config: Any) -> Tuple[str, int]:
    """(url, timeout) of the running TF Serving a label move waits for."""
    return config.registry.tf_serving_url, config.registry.tf_serving_timeout_s


@_registry_errors
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


@_registry_errors
def cmd_registry_show(args: argparse.Namespace) -> int:
    config, client = _registry(args)
    print("\n".join(registry.version_lines(client, config.registry_model_name, args.version)))
    return 0


@_registry_errors
def cmd_registry_promote(args: argparse.Namespace) -> int:
    config, client = _registry(args)
    version = versions.promote(client, config.registry_model_name, args.version,
                               config.serving_dir, *_tf_serving(config))
    print(f"champion -> serving version {args.version} (registry version {version.version}); "
          "models.config labels it stable")
    return 0


@_registry_errors
def cmd_registry_rollback(args: argparse.Namespace) -> int:
    config, client = _registry(args)
    old, new = versions.rollback(client, config.registry_model_name, config.serving_dir,
                                 *_tf_serving(config))
    tag = mlflow_registry.SERVING_VERSION_TAG
    print(f"champion: serving version {old.tags.get(tag)} -> {new.tags.get(tag)} "
          f"(registry {old.version} -> {new.version}); models.config labels it stable")
    return 0


@_registry_errors
def cmd_registry_sync(args: argparse.Namespace) -> int:
    config, client = _registry(args)
    added, current = versions.sync(client, config.registry_uri, config.registry_model_name,
                                   config.serving_dir, *_tf_serving(config))
    print(f"registered serving versions {', '.join(map(str, added))}" if added else
          "every pushed version is registered")
    print("no champion yet" if current is None else
          f"champion: serving version {current}, labelled stable in models.config")
    return 0


# -- history and schema -----------------------------------------------------------------------
def cmd_history(args: argparse.Namespace) -> int:
    from pipeline.commands import history  # ML Metadata and TFX: heavy

    config = config_of(args)
    try:
        records = history.history(config, args.limit)
    except RuntimeError as e:
        return fail(args, str(e))
    print("\n".join(history.lines(records)))
    return 0


def cmd_schema_accept(args: argparse.Namespace) -> int:
    from pipeline.commands import schema  # TFDV and TFX: heavy

    config = config_of(args)
    try:
        path, accepted, findings = schema.accept_run(config, args.run)
    except (LookupError, RuntimeError) as e:
        return fail(args, f"accept: {e}")
    print(f"accepted the data of run {accepted.record['run_id']} as the reference of "
          f"champion version {accepted.record['version']} ({path})")
    for finding in findings:
        print(f"  accepted: {finding}")
    return 0


# -- report and predict -----------------------------------------------------------------------
def cmd_report(args: argparse.Namespace) -> int:
    config = config_of(args)
    try:
        path = report.build_report(config, args.run, args.out)
    except RuntimeError as e:
        return fail(args, str(e))
    print(f"report written to {path}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    config = config_of(args)
    try:
        model_dir = predict.resolve_model(config, args.model)
    except LookupError as e:
        return fail(args, str(e))
    print(f"model: {model_dir}")
    failed = 0
    for p in predict.predict(model_dir, args.images, args.top_k):
        if p.error:
            failed += 1
            fail(args, f"{p.image}: cannot predict: {p.error}")
            continue
        print(p.image)
        for rank, (name, score) in enumerate(p.top, 1):
            print(f"  {rank}. {name:20} {score:.4f}")
    return 1 if failed else 0
