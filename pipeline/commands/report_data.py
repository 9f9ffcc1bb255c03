"""What `imgpipe report` shows for one run, gathered through MLMD: the summary, the
evaluation, the training history, the pushed card, and misclassified eval images.

Light to import: TensorFlow, TFX and TFMA are loaded when a report is gathered.
"""
import base64
import dataclasses
import io
import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

from components.artifacts import baseline
from components.serving import serving_root
from components.serving.model_card import ModelCard
from pipeline import component_ids as ids
from trainer import contract, features

GALLERY_LIMIT = 48  # misclassified thumbnails shown
GALLERY_SCAN = 5000  # eval examples predicted at most to find them (bounds report time)
THUMBNAIL_SIDE = 96


@dataclasses.dataclass
class RunData:
    run_id: str
    summary: Any  # pipeline.run_summary.RunSummary
    evaluation: Any  # components.artifacts.evaluation.Evaluation
    labels: List[str]
    history: List[Dict[str, Any]]  # the Trainer's history.json phases ([] when absent)
    model_dir: str
    eval_files: List[str]
    card: ModelCard  # the pushed version's model card (empty when nothing was pushed)
    lineage: Dict[str, Any]
    baseline_version: Optional[int] = None  # serving version of the blessed model found


@dataclasses.dataclass
class Misclassified:
    image_id: str
    true_label: str
    predicted: str
    score: float
    thumbnail: str  # data: URI


def _read_json(path: str) -> Any:
    import tensorflow as tf

    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def gather(config: Any, run_id: Optional[str] = None) -> RunData:
    """Everything the report shows for one run, found through MLMD."""
    # TensorFlow, TFX and TFMA take seconds to import: only when a report is built.
    from tfx.utils import path_utils

    from components.artifacts import evaluation, model_contract
    from components.artifacts import examples as examples_artifact
    from pipeline import run_summary

    with run_summary.open_store(config) as m:
        run = run_summary.find_run(m.store, config.name, run_id)
        artifacts = run_summary.run_artifacts(m.store, run)
    missing = [k for k in ((ids.TRAINER, "model"), (ids.EVALUATOR, "evaluation"))
               if k not in artifacts]
    if missing:
        raise RuntimeError(f"run {run.name} has no {', '.join('.'.join(k) for k in missing)} "
                           "output (did it fail before evaluating?)")
    model = artifacts[(ids.TRAINER, "model")]
    evaluated = artifacts[(ids.EVALUATOR, "evaluation")]
    model_run = artifacts.get((ids.TRAINER, "model_run"))
    examples = artifacts.get((ids.EXAMPLE_GEN, "examples"))
    pushed = artifacts.get((ids.PUSHER, "pushed_model"))
    card = ModelCard.from_dict(
        (_read_json(os.path.join(pushed.uri, serving_root.CARD_FILE)) if pushed else None) or {})
    return RunData(
        run_id=run.name,
        summary=run_summary.summarize_latest_run(config, run.name),
        evaluation=evaluation.read_evaluation(evaluated.uri),
        labels=model_contract.model_labels(model.uri),
        history=(_read_json(os.path.join(model_run.uri, contract.HISTORY_FILE))
                 if model_run else None) or [],
        model_dir=path_utils.serving_model_path(model.uri),
        eval_files=(examples_artifact.split_files(examples_artifact.from_mlmd(examples),
                                                  features.EVAL_SPLIT) if examples else []),
        card=card,
        lineage={"pipeline": config.name, "run": run.name, "model_id": model.id,
                 "model_uri": model.uri, "evaluation_id": evaluated.id,
                 "examples_id": examples.id if examples else None,
                 "pushed_model_id": pushed.id if pushed else None,
                 "config_hash": card.config_hash or config.fingerprint()},
        baseline_version=_baseline_version(artifacts.get((ids.EVALUATOR, "blessing"))))


def _baseline_version(blessing: Any) -> Optional[int]:
    """The serving version of the blessed model the Evaluator found, if any."""
    from pipeline.run_summary import artifact_property  # TFX and TFMA: see gather

    return artifact_property(blessing, baseline.BASELINE_SERVING_VERSION) if blessing else None


def _thumbnail(image_bytes: bytes) -> str:
    from PIL import Image

    image = Image.open(io.BytesIO(image_bytes)).convert("RGB")
    scale = THUMBNAIL_SIDE / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    # Nearest when enlarging keeps tiny images' pixels crisp instead of a blur.
    image = image.resize(size, Image.NEAREST if scale > 1 else Image.LANCZOS)
    return data_uri(_png_bytes(image), "image/png")


def _png_bytes(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def find_misclassified(model_dir: str, files: Sequence[str], labels: Sequence[str],
                       limit: int = GALLERY_LIMIT, scan: int = GALLERY_SCAN
                       ) -> Tuple[List[Misclassified], int, int]:
    """Misclassified eval examples (at most `limit`), examples scanned, errors found."""
    import tensorflow as tf

    if not files:
        return [], 0, 0
    predict = tf.saved_model.load(model_dir).signatures[contract.TF_EXAMPLE_SIGNATURE]
    found: List[Misclassified] = []
    scanned = errors = 0
    dataset = tf.data.TFRecordDataset(list(files), compression_type="GZIP").take(scan).batch(64)
    for records in dataset:
        batch = predict(**{contract.EXAMPLES_INPUT: records})[contract.PROBABILITIES].numpy()
        for record, probabilities in zip(records.numpy(), batch):
            scanned += 1
            feature = tf.train.Example.FromString(record).features.feature
            truth = feature[features.LABEL_KEY].bytes_list.value[0].decode().strip()
            predicted = labels[int(probabilities.argmax())]
            if predicted == truth:
                continue
            errors += 1
            if len(found) < limit:
                found.append(Misclassified(
                    image_id=feature[features.IMAGE_ID_KEY].bytes_list.value[0].decode(),
                    true_label=truth, predicted=predicted, score=float(probabilities.max()),
                    thumbnail=_thumbnail(feature[features.IMAGE_KEY].bytes_list.value[0])))
    return found, scanned, errors


def data_uri(payload: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(payload).decode()}"
