"""The `imgpipe` command."""
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # before anything imports TensorFlow
# TensorFlow's C++ start-up chatter (CUDA plugin registration on a CPU machine) is noise
# for a user; `--verbose` runs keep whatever the environment says.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402
import gc  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import List, Optional  # noqa: E402

from pipeline.config import ConfigError, PipelineConfig, load_config  # noqa: E402
from pipeline import kubeflow  # noqa: E402  (light: its heavy imports are deferred)
from pipeline import predict, registry, report  # noqa: E402  (light, like kubeflow)


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
    from pipeline.local import dump_summary, run_local  # heavy imports after logging set-up
    # The imported modules' millions of objects live until exit: out of the collector's
    # sight, full collections during the run only walk what the run creates (~3 s less).
    gc.freeze()

    print(f"imgpipe: full log in {log_path}", flush=True)
    summary = run_local(config)
    print("\n".join(["", "== summary =="] + summary.lines()), flush=True)
    dump_summary(summary, os.path.join(config.home, "last_run_summary.json"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imgpipe", description="Fine-tune an image classifier on a folder of images "
        "with TFX, locally or on Kubeflow Pipelines.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the whole pipeline locally (LocalDagRunner)")
    _config_args(run)
    run.add_argument("--verbose", action="store_true", help="print TFX/Beam logs too")
    run.set_defaults(func=cmd_run)
    kubeflow.add_commands(sub)  # compile, submit, schedule
    for module in (registry, report, predict):  # registry ..., report, predict
        module.add_commands(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as e:
        print(f"imgpipe: {e}", file=sys.stderr)
        return 2
    finally:
        # Everything is written: the interpreter's final collection over TensorFlow's and
        # Beam's object graphs would only delay the exit (by ~2.7 s after a run).
        gc.freeze()


if __name__ == "__main__":
    sys.exit(main())
