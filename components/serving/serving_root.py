"""The serving root's layout, which RegistryPusher writes and LatestBlessedModel and
`imgpipe registry` read:

    <serving_dir>/<version>/     a SavedModel (TF Serving loads numeric folders only)
        saved_model.pb           written last to object stores: marks a complete version
        labels.txt               the label vocabulary (trainer.contract)
        model_card.json          what was pushed, why, from what (see model_card.py)

<serving_dir> is <serving_root>/<model_name>. Light to import: TensorFlow's file system
is loaded only for remote paths.
"""
import json
import os
from typing import Iterator, Optional, Tuple

from components.serving.model_card import ModelCard
from trainer import contract
from trainer.files import remote_fs

CARD_FILE = "model_card.json"
SAVED_MODEL_FILE = "saved_model.pb"
# What the Pusher adds to a version beside the SavedModel.
PUSHER_FILES = (CARD_FILE, contract.LABELS_FILE)


def serving_versions(serving_dir: str) -> Iterator[Tuple[int, str]]:
    """(version, path) of each published version folder, newest first."""
    gfile = remote_fs(serving_dir)
    if not (gfile.isdir(serving_dir) if gfile else os.path.isdir(serving_dir)):
        return
    names = [n.rstrip("/") for n in (gfile or os).listdir(serving_dir)]
    for version in sorted((int(n) for n in names if n.isdigit()), reverse=True):
        yield version, os.path.join(serving_dir, str(version))


def read_card(version_dir: str) -> ModelCard:
    """The model card of a version folder."""
    path = os.path.join(version_dir, CARD_FILE)
    gfile = remote_fs(path)
    with (gfile.GFile(path) if gfile else open(path)) as f:
        return ModelCard.from_dict(json.load(f))


def find_published(serving_dir: str, model_uri: str) -> Optional[Tuple[int, str]]:
    """(version, path) of the version whose model card names model_uri, if any."""
    for version, path in serving_versions(serving_dir):
        card = card_or_empty(path)  # empty: a version pushed by something else
        if card.lineage.model_uri == model_uri:
            return version, path
    return None


def card_or_empty(version_dir: str) -> ModelCard:
    """The version's model card, an empty one when it has none this project wrote."""
    path = os.path.join(version_dir, CARD_FILE)
    gfile = remote_fs(path)
    if not (gfile.exists(path) if gfile else os.path.isfile(path)):
        return ModelCard()
    try:
        return read_card(version_dir)
    except (ValueError, TypeError):  # not JSON, or not a card: not one this project wrote
        return ModelCard()


def next_version(serving_dir: str) -> int:
    """The number the next pushed version takes: one more than the highest present."""
    return 1 + max([v for v, _ in serving_versions(serving_dir)] or [0])
