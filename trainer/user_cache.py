"""The per-user cache: what is derived once per machine and reused by every home (the
converted ImageNet weights, an empty MLflow database). $IMGPIPE_CACHE_DIR, else
~/.cache/imgpipe. Anything in it can be deleted; it is rebuilt on next use."""
import os
from pathlib import Path

CACHE_ENV_VAR = "IMGPIPE_CACHE_DIR"


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV_VAR) or Path.home() / ".cache" / "imgpipe")
