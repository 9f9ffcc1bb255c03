"""Publishing a version into the serving root: complete or absent, never overwritten.

Locally the SavedModel, labels.txt and model_card.json are copied into a hidden staging
folder beside the versions (each file fsync'ed), then renamed to <serving_dir>/<version>:
a reader sees the whole version or none of it. The version is one more than the highest
present; an existing version is never overwritten (a rename onto one fails and the next
number is tried). On failure the staging folder is removed and nothing is published. On
a remote filesystem (gs://...), where a folder cannot be renamed, files are copied in
place with saved_model.pb last: TF Serving's marker of a complete model.
"""
import dataclasses
import datetime
import errno
import os
import shutil
import tempfile
from typing import List

import tensorflow as tf
from absl import logging
from tfx.utils import io_utils

from components.serving import fault_points, serving_root
from components.serving.model_card import ModelCard
from trainer import contract
from trainer.files import fsync, is_remote, owner_prefix

STAGING_PREFIX = ".staging-"  # TF Serving loads numeric folders only
PUBLISH_ATTEMPTS = 5


def staging_prefix() -> str:
    """This process's staging folders: `.staging-<pid>@<host>-`, so that a later push
    can tell a dead process's leftover (reconcile.py) from a live push's copy."""
    return f"{STAGING_PREFIX}{owner_prefix()}"


def _copy_file(src: str, dst: str) -> str:
    shutil.copy2(src, dst)
    fsync(dst)
    fault_points.reached("copying")
    return dst


def _write_file(path: str, text: str) -> None:
    if is_remote(path):
        with tf.io.gfile.GFile(path, "w") as f:
            f.write(text)
        return
    with open(path, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _stage(model_dir: str, staging: str, labels: List[str]) -> None:
    shutil.copytree(model_dir, staging, copy_function=_copy_file)
    _write_file(os.path.join(staging, contract.LABELS_FILE), "\n".join(labels) + "\n")


def _finalize_card(card: ModelCard, version: int, path: str) -> ModelCard:
    return dataclasses.replace(
        card, version=version, serving_path=path,
        pushed_at=datetime.datetime.now(datetime.timezone.utc).isoformat())


def _fsync_tree(root: str) -> None:
    for folder, _, _ in os.walk(root):
        fsync(folder)


def publish_local(model_dir: str, serving_dir: str, card: ModelCard,
                  labels: List[str]) -> ModelCard:
    """Stages a copy beside the versions and renames it to the next version number."""
    os.makedirs(serving_dir, exist_ok=True)
    staging_root = tempfile.mkdtemp(prefix=staging_prefix(), dir=serving_dir)
    staged = os.path.join(staging_root, "model")
    try:
        _stage(model_dir, staged, labels)
        for _ in range(PUBLISH_ATTEMPTS):
            version = serving_root.next_version(serving_dir)
            target = os.path.join(serving_dir, str(version))
            final = _finalize_card(card, version, target)
            _write_file(os.path.join(staged, serving_root.CARD_FILE), final.to_json())
            _fsync_tree(staged)
            try:
                os.rename(staged, target)
            except OSError as e:  # another push took this number first
                if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                logging.warning("version %d appeared while pushing; trying the next", version)
                continue
            fsync(serving_dir)
            fault_points.reached("published")
            return final
        raise RuntimeError(f"could not claim a version under {serving_dir} in "
                           f"{PUBLISH_ATTEMPTS} attempts: concurrent pushes?")
    finally:
        shutil.rmtree(staging_root, ignore_errors=True)


def publish_remote(model_dir: str, serving_dir: str, card: ModelCard,
                   labels: List[str]) -> ModelCard:
    """Copies in place with saved_model.pb last (object stores cannot rename folders)."""
    version = serving_root.next_version(serving_dir)
    target = os.path.join(serving_dir, str(version))
    if tf.io.gfile.exists(target):
        raise RuntimeError(f"{target} already exists: not overwriting a version")
    final = _finalize_card(card, version, target)
    io_utils.copy_dir(model_dir, target, deny_regex_patterns=[r"saved_model\.pb"])
    _write_file(os.path.join(target, contract.LABELS_FILE), "\n".join(labels) + "\n")
    _write_file(os.path.join(target, serving_root.CARD_FILE), final.to_json())
    io_utils.copy_file(os.path.join(model_dir, serving_root.SAVED_MODEL_FILE),
                       os.path.join(target, serving_root.SAVED_MODEL_FILE))
    return final


def withdraw(version_dir: str) -> None:
    """Removes a published version nothing serves (the Trainer's artifact still has it).
    Locally it is first renamed to a staging name: cut short, it leaves no half version."""
    if is_remote(version_dir):
        tf.io.gfile.rmtree(version_dir)
        return
    parent = os.path.dirname(version_dir.rstrip("/"))
    doomed = tempfile.mkdtemp(prefix=staging_prefix(), dir=parent)
    os.rename(version_dir, os.path.join(doomed, "withdrawn"))
    fsync(parent)
    shutil.rmtree(doomed)
