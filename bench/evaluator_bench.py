"""Evaluator: wall time and peak memory on the e2e dataset, with 1 model and with 2.

1 model: a first run (no blessed baseline yet). 2 models: candidate + baseline, as when
LatestBlessedModel finds a blessed model (TFMA then runs both and computes the differences).

The e2e dataset is the one tests/conftest.py builds (digits 0-2, 540 files), trained with
its E2E_OVERRIDES: one local pipeline run in a fresh home, unless --home names a home
that already has one. Each case then runs the pipeline's Evaluator executor (the real
one, with this config's EvalConfig) in a child process, --repeat times, while the parent
polls the child's RSS. Printed per case: the executor's own time (Do(), imports
excluded), the child's wall time and its peak RSS.

    .venv/bin/python bench/evaluator_bench.py [--home DIR] [--repeat N]
"""
import argparse
import glob
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Optional

from process_stats import measure  # bench/ is on sys.path when a script here runs

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ["TF_USE_LEGACY_KERAS"] = "1"  # as the pipeline runs (children inherit both)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _e2e_helpers():
    """tests/conftest.py, loaded by path: its dataset writer and E2E_OVERRIDES."""
    spec = importlib.util.spec_from_file_location("imgpipe_conftest",
                                                  REPO / "tests" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _config(home: Path):
    from pipeline.config import load_config

    helpers = _e2e_helpers()
    return load_config(overrides=helpers.E2E_OVERRIDES + (f"home={home}",
                                                          f"data.source={home / 'data'}"))


def prepare(home: Path) -> Dict[str, str]:
    """Artifacts of one pipeline run in home (run there first if there is none)."""
    from pipeline import component_ids as ids

    root = home / "pipelines" / "imgpipe"
    if not glob.glob(str(root / ids.TRAINER / "model" / "*")):
        helpers = _e2e_helpers()
        helpers._write_e2e_data(home / "data")
        from absl import logging as absl_logging

        from pipeline.runners.local import run_local

        absl_logging.set_verbosity(absl_logging.ERROR)  # the table, not TFX's logs
        print(f"running the pipeline once in {home} (the e2e dataset) ...", flush=True)
        run_local(_config(home), out=open(os.devnull, "w"))
    newest = lambda pattern: max(glob.glob(str(root / pattern)), key=os.path.getmtime)  # noqa
    return {"model": newest(f"{ids.TRAINER}/model/*"),
            "examples": newest(f"{ids.EXAMPLE_GEN}/examples/*")}


def child(args: argparse.Namespace) -> None:
    """One Evaluator execution, as the pipeline runs it; prints its Do() time."""
    from tfx.types import standard_artifacts
    from tfx.utils import proto_utils

    from components.evaluator.executor import EvaluatorExecutor
    from components.evaluator.tfma_config import eval_config
    from pipeline.pipeline import beam_pipeline_args
    from trainer import features

    def artifact(cls, uri: str):
        a = cls()
        a.uri = uri
        return a

    inputs = {"examples": [_examples(args.examples)], "model": [artifact(standard_artifacts.Model, args.model)]}
    if args.baseline:
        inputs["baseline_model"] = [artifact(standard_artifacts.Model, args.baseline)]
    outputs = {"evaluation": [artifact(standard_artifacts.ModelEvaluation, args.out + "/eval")],
               "blessing": [artifact(standard_artifacts.ModelBlessing, args.out + "/blessing")]}
    config = _config(Path(args.home))
    properties = {"eval_config": proto_utils.proto_to_json(
                      eval_config(config.eval, config.train.top_k)),
                  "example_splits": json.dumps([features.EVAL_SPLIT])}
    executor = EvaluatorExecutor()
    executor._beam_pipeline_args = beam_pipeline_args(config)
    start = time.monotonic()
    executor.Do(inputs, outputs, properties)
    print(f"evaluator_seconds={time.monotonic() - start:.3f}", flush=True)
    blessed = os.path.exists(os.path.join(args.out, "blessing", "BLESSED"))
    print(f"blessed={blessed}", flush=True)


def run_case(home: Path, artifacts: Dict[str, str],
             baseline: Optional[str]) -> Dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="evaluator_bench_") as out:
        cmd = [sys.executable, __file__, "--child", "--home", str(home), "--out", out,
               "--model", artifacts["model"], "--examples", artifacts["examples"]]
        if baseline:
            cmd += ["--baseline", baseline]
        result = measure(cmd)
    seconds = [float(line.split("=")[1]) for line in result["output"].splitlines()
               if line.startswith("evaluator_seconds=")]
    if not seconds:
        sys.exit(f"the evaluator child printed no timing:\n{result['output'][-3000:]}")
    return {"do_s": seconds[0], "wall_s": result["wall_s"], "rss_gb": result["rss_gb"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", help="a home with a pipeline run of the e2e dataset")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for name in ("--model", "--baseline", "--examples", "--out"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    home = Path(args.home or tempfile.mkdtemp(prefix="evaluator_bench_home_"))
    artifacts = prepare(home)
    count = _count_eval_examples(artifacts["examples"])
    print(f"e2e dataset: {count} eval examples; model {artifacts['model']}")
    print(f"\n{'models':>6}  {'Do() s':>8}  {'wall s':>8}  {'peak RSS GB':>11}  (median of "
          f"{args.repeat})")
    # The baseline is the same model: what matters here is TFMA running two models.
    for models, baseline in ((1, None), (2, artifacts["model"])):
        runs = [run_case(home, artifacts, baseline) for _ in range(args.repeat)]
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"{models:>6}  {med['do_s']:8.1f}  {med['wall_s']:8.1f}  {med['rss_gb']:11.2f}",
              flush=True)


def _examples(uri: str):
    """The Examples artifact of a run's ingestion output, as the Evaluator receives it."""
    from tfx.types import artifact_utils, standard_artifacts

    from trainer import features

    examples = standard_artifacts.Examples()
    examples.uri = uri
    examples.split_names = artifact_utils.encode_split_names(
        [features.TRAIN_SPLIT, features.EVAL_SPLIT])
    return examples


def _count_eval_examples(examples_uri: str) -> int:
    import tensorflow as tf

    from components.artifacts.examples import split_files
    from trainer import features

    files = split_files(_examples(examples_uri), features.EVAL_SPLIT)
    return sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP"))


if __name__ == "__main__":
    main()
