"""A pushed version as an MLflow pyfunc model: encoded images in, class names out.

The MLflow model is a copy of the SavedModel (the model's `data/`) and an MLmodel file
naming this module as its `loader_module`: MLflow imports it by name and calls
`_load_pyfunc(data_path)`. Nothing is pickled, so a logged model loads wherever imgpipe is
installed. Only the standard library and trainer.contract are imported at module level:
`mlflow models serve` imports this module before anything else.

Input: a DataFrame with a binary column `image_bytes` (encoded JPEG/PNG), one row per
image; over REST, `dataframe_split` / `dataframe_records` with base64 values (MLflow
decodes binary columns of those two forms). Output, one row per image: class_name, score,
top_k_class_names, top_k_scores (best first) and error ("" or why that image could not
be decoded: a bad image does not fail the others).
"""
import contextlib
import io
import os
import re
from importlib import metadata
from typing import Any, Dict, Iterator, List, Optional, Sequence

from trainer import contract
from trainer.files import is_remote

IMAGE_COLUMN = contract.IMAGE_BYTES_INPUT
OUTPUT_COLUMNS = ("class_name", "score", "top_k_class_names", "top_k_scores", "error")
ARTIFACT_NAME = "model"
# Packages a served model needs, pinned to the running versions.
REQUIREMENTS = ("mlflow", "tensorflow", "pandas")


class ImageClassifier:
    """The serving_default signature of a SavedModel, over a DataFrame of images."""

    def __init__(self, saved_model_dir: str):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import tensorflow as tf

        self._tf = tf
        self._loaded = tf.saved_model.load(saved_model_dir)  # keeps the variables alive
        self._serve = self._loaded.signatures[contract.SERVING_SIGNATURE]

    def classify(self, payloads: Sequence[bytes]) -> List[Dict[str, Any]]:
        """One row of OUTPUT_COLUMNS per encoded image (the serving signature's answer,
        or the error of an image it cannot decode)."""
        tf = self._tf
        try:
            return self._call(payloads) if payloads else []
        except tf.errors.InvalidArgumentError:
            pass  # one undecodable image fails the whole batch: one at a time instead
        rows = []
        for payload in payloads:
            try:
                rows += self._call([payload])
            except tf.errors.InvalidArgumentError as e:
                rows.append(error_row(e))
        return rows

    def _call(self, payloads: Sequence[bytes]) -> List[Dict[str, Any]]:
        out = self._serve(**{IMAGE_COLUMN: self._tf.constant(list(payloads))})
        rows = []
        for names, scores in zip(out[contract.TOP_K_CLASS_NAMES].numpy(),
                                 out[contract.TOP_K_SCORES].numpy()):
            names = [n.decode() for n in names]
            scores = [float(s) for s in scores]
            rows.append({"class_name": names[0], "score": scores[0],
                         "top_k_class_names": names, "top_k_scores": scores, "error": ""})
        return rows

    def predict(self, model_input: Any, params: Optional[Dict[str, Any]] = None) -> Any:
        import pandas as pd

        payloads = [bytes(v) for v in model_input[IMAGE_COLUMN].tolist()]
        frame = pd.DataFrame(self.classify(payloads), columns=list(OUTPUT_COLUMNS))
        # None, not NaN, where there is no score: NaN is not valid JSON over REST.
        frame["score"] = frame["score"].astype(object).where(frame["score"].notna(), None)
        return frame


def error_row(error: Exception) -> Dict[str, Any]:
    """The output row of an image that could not be classified."""
    return {"class_name": "", "score": None, "top_k_class_names": [], "top_k_scores": [],
            "error": first_line(error)}


# TensorFlow's wrapping of an op's error: where it was raised, not why.
_TF_NOISE = re.compile(r"^(Graph execution error:|Detected at node|\s|File |defined at|"
                       r"<stack traces unavailable>)")
_TF_NODE = re.compile(r"\{\{function_node [^}]*\}\}\s*|\s*\[\[.*?\]\]|\s*\[Op:[^\]]*\]")


def first_line(error: Exception) -> str:
    """Why an image failed: the op's own message (e.g. "Unknown image file format"), not
    TensorFlow's "Graph execution error:" heading, node names and traceback."""
    text = getattr(error, "message", None) or str(error)
    lines = [line for line in text.splitlines() if line.strip()]
    reasons = [line for line in lines if not _TF_NOISE.match(line)] or lines
    reason = _TF_NODE.sub("", reasons[0]).strip() if reasons else ""
    return reason or type(error).__name__


def _load_pyfunc(data_path: str) -> ImageClassifier:
    """MLflow's entry point for a `loader_module` model; data_path is the SavedModel."""
    return ImageClassifier(data_path)


def loadable(saved_model_dir: str) -> bool:
    """Whether the folder is a local SavedModel worth logging (not an empty placeholder)."""
    path = os.path.join(saved_model_dir, "saved_model.pb")
    return not is_remote(saved_model_dir) and os.path.isfile(path) and os.path.getsize(path) > 0


def signature() -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, DataType, Schema

    return ModelSignature(
        inputs=Schema([ColSpec(DataType.binary, IMAGE_COLUMN)]),
        outputs=Schema([ColSpec(DataType.string, "class_name"),
                        ColSpec(DataType.double, "score"),
                        ColSpec(Array(DataType.string), "top_k_class_names"),
                        ColSpec(Array(DataType.double), "top_k_scores"),
                        ColSpec(DataType.string, "error")]))


def requirements() -> List[str]:
    """Given explicitly: otherwise MLflow infers them by loading the model in a
    subprocess, a second TensorFlow start-up."""
    reqs = []
    for dist in REQUIREMENTS:
        with contextlib.suppress(metadata.PackageNotFoundError):
            reqs.append(f"{dist}=={metadata.version(dist)}")
    return reqs


def small_png(image: Optional[bytes] = None, max_side: int = 128) -> bytes:
    """`image` as a PNG of at most max_side pixels a side (the input example is stored
    twice, base64), or a grey square when there is no image."""
    from PIL import Image

    picture = Image.open(io.BytesIO(image)).convert("RGB") if image else \
        Image.new("RGB", (32, 32), (128, 128, 128))
    picture.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    picture.save(buf, "PNG")
    return buf.getvalue()


@contextlib.contextmanager
def tracking(uri: str) -> Iterator[None]:
    """MLflow's fluent API (log_model) and the sqlite registry's resolution of a
    `models:/m-...` source use the process-wide tracking URI: `uri` for the duration only,
    then whatever was in force before."""
    import mlflow
    from mlflow.tracking import is_tracking_uri_set

    previous = mlflow.get_tracking_uri() if is_tracking_uri_set() else None
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)


def log(saved_model_dir: str, labels: Sequence[str], run_id: str, example_image: bytes,
        tags: Dict[str, str]) -> Any:
    """Logs the SavedModel as this run's pyfunc model (call within `tracking`); returns
    MLflow's ModelInfo. MLflow scores the input example as its REST server would but
    only warns when that fails: here a failure raises, so an unservable model is never
    registered."""
    import pandas as pd

    import mlflow

    with _failed_validation() as failures:
        with mlflow.start_run(run_id=run_id):  # resumes the run, ends it on exit
            info = mlflow.pyfunc.log_model(
                name=ARTIFACT_NAME, loader_module=__name__, data_path=saved_model_dir,
                signature=signature(),
                input_example=pd.DataFrame({IMAGE_COLUMN: [example_image]}),
                pip_requirements=requirements(),
                metadata={"labels": list(labels)}, tags=tags)
    if failures:
        raise RuntimeError(f"the logged model {info.model_uri} cannot serve its input "
                           f"example: {failures[0][:500]}")
    return info


@contextlib.contextmanager
def _failed_validation() -> Iterator[List[str]]:
    """The messages of MLflow's "Failed to validate serving input example" warnings."""
    import logging

    failures: List[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "Failed to validate serving input example" in record.getMessage():
                failures.append(record.getMessage())

    handler = Capture(logging.WARNING)
    logger = logging.getLogger("mlflow.models.model")
    logger.addHandler(handler)
    try:
        yield failures
    finally:
        logger.removeHandler(handler)
