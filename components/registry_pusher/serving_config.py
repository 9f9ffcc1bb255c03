"""TF Serving's model config for the serving root: <serving_root>/models.config.

A text-format ModelServerConfig with one entry per model folder, e.g.

    model_config_list {
      config {
        name: "image_classifier"
        base_path: "/abs/serving/image_classifier"
        model_platform: "tensorflow"
        model_version_policy { specific { versions: 2 versions: 3 } }
        version_labels { key: "canary" value: 3 }
        version_labels { key: "stable" value: 3 }
      }
    }

The champion and the previous champion stay loaded, so a rollback only moves labels;
`stable` and `canary` name the champion. Entries of other models are kept. TF Serving
polls the file, so it is replaced whole (a temp file in the same folder, then a rename)
and never holds text that does not parse.
"""
import os
import socket
import uuid
from typing import Any, Iterable, List, Optional

CONFIG_FILE = "models.config"
STABLE = "stable"
CANARY = "canary"


def _fs(path: str) -> Any:
    """tf.io.gfile for buckets and the like, None (os) for local paths."""
    if "://" not in path:
        return None
    import tensorflow as tf

    return tf.io.gfile


def config_path(serving_dir: str) -> str:
    """models.config of the serving root that holds <serving_root>/<model_name>."""
    return os.path.join(os.path.dirname(serving_dir.rstrip("/")), CONFIG_FILE)


def parse(text: str) -> Any:
    """The ModelServerConfig in `text`; raises text_format.ParseError if it is not one."""
    from google.protobuf import text_format
    # tensorflow-serving-api: protobuf modules only, no TensorFlow import.
    from tensorflow_serving.config import model_server_config_pb2

    return text_format.Parse(text, model_server_config_pb2.ModelServerConfig())


def read(path: str) -> Any:
    """The file's ModelServerConfig, empty when there is no file."""
    text = read_text(path)
    return parse(text or "")


def _entry(serving_dir: str) -> Any:
    """This model's entry in the file, None without one."""
    name = os.path.basename(serving_dir.rstrip("/"))
    for config in read(config_path(serving_dir)).model_config_list.config:
        if config.name == name:
            return config
    return None


def stable_version(serving_dir: str) -> Optional[int]:
    """The version the `stable` label of this model names, None without one."""
    entry = _entry(serving_dir)
    return int(entry.version_labels[STABLE]) if entry and STABLE in entry.version_labels \
        else None


def listed_versions(serving_dir: str) -> List[int]:
    """The versions the file loads for this model."""
    entry = _entry(serving_dir)
    return list(entry.model_version_policy.specific.versions) if entry else []


def write(serving_dir: str, versions: Iterable[Optional[int]], stable: Optional[int]) -> str:
    """Loads `versions` of this model (and `stable`), with `stable` and `canary` on
    `stable` (no labels when it is None); returns the file's path."""
    from google.protobuf import text_format

    path = config_path(serving_dir)
    name = os.path.basename(serving_dir.rstrip("/"))
    server_config = read(path)
    configs = server_config.model_config_list.config
    others = [c for c in configs if c.name != name]
    del configs[:]
    configs.extend(others)
    config = configs.add(name=name, model_platform="tensorflow",
                         base_path=serving_dir if _fs(serving_dir) else
                         os.path.abspath(serving_dir))
    loaded = {int(v) for v in (*versions, stable) if v is not None}
    config.model_version_policy.specific.versions.extend(sorted(loaded))
    if stable is not None:
        config.version_labels[STABLE] = int(stable)
        config.version_labels[CANARY] = int(stable)
    configs.sort(key=lambda c: c.name)
    text = text_format.MessageToString(server_config)
    parse(text)  # never publish a file TF Serving cannot read
    replace(path, text)
    return path


def read_text(path: str) -> Optional[str]:
    """The file as it is (None when there is none): what a failed change restores."""
    gfile = _fs(path)
    if not (gfile.exists(path) if gfile else os.path.isfile(path)):
        return None
    with (gfile.GFile(path) if gfile else open(path)) as f:
        return f.read()


def restore(path: str, text: Optional[str]) -> None:
    """Puts back the file read_text() returned (None: there was none)."""
    if text is not None:
        replace(path, text)
        return
    gfile = _fs(path)
    if gfile and gfile.exists(path):
        gfile.remove(path)
    elif not gfile and os.path.exists(path):
        os.remove(path)


def replace(path: str, text: str) -> None:
    """Writes `path` whole: a reader sees the old file or the new one, never a part."""
    folder = os.path.dirname(path)
    # A dot-name: never taken for a model folder or the config itself; the writer's pid
    # and host, so that a later push can remove it if the writer was killed.
    tmp = os.path.join(folder, f".{CONFIG_FILE}.{os.getpid()}@{socket.gethostname()}-"
                               f"{uuid.uuid4().hex}")
    gfile = _fs(path)
    if gfile:
        with gfile.GFile(tmp, "w") as f:
            f.write(text)
        gfile.rename(tmp, path, overwrite=True)
        return
    os.makedirs(folder, exist_ok=True)
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
