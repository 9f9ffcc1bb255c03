"""Files on a local disk or an object store (gs://, s3://, ...), and the one way a file is
written: to a temporary name beside it, then renamed, so a reader sees the old file or the
new one, never a part, and a crash leaves at most a dot-named temporary behind."""
import contextlib
import os
import socket
import uuid
from typing import Any, Iterator, Optional


def is_remote(path: str) -> bool:
    """A URI of an object store or another filesystem, not a local path."""
    return "://" in path


def remote_fs(path: str) -> Optional[Any]:
    """tf.io.gfile for a remote path; None (use os) for a local one: TensorFlow takes
    seconds to import, and light commands read local files."""
    if not is_remote(path):
        return None
    import tensorflow as tf

    return tf.io.gfile


def fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def owner_prefix() -> str:
    """`<pid>@<host>-`: starts the name of a temporary file or folder, so that a later run
    can tell a dead writer's leftover from a live writer's (serving/reconcile.py)."""
    return f"{os.getpid()}@{socket.gethostname()}-"


@contextlib.contextmanager
def written_then_renamed(path: str) -> Iterator[str]:
    """Yields a temporary path beside `path` (a dot-name with its writer's owner_prefix,
    ending in the same file name, so writers that look at the extension accept it) for
    the caller to write; renames it
    onto `path` when the block ends without an error, and removes it when it does not."""
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{owner_prefix()}{uuid.uuid4().hex[:12]}.{name}")
    gfile = remote_fs(path)
    try:
        yield tmp
        if gfile:
            gfile.rename(tmp, path, overwrite=True)
        else:
            fsync(tmp)
            os.replace(tmp, path)
    finally:
        if gfile and gfile.exists(tmp):
            gfile.remove(tmp)
        elif not gfile and os.path.exists(tmp):
            os.remove(tmp)


def replace_text(path: str, text: str) -> None:
    """Writes `path` whole (written_then_renamed), readable by all (a server may run as
    another user)."""
    gfile = remote_fs(path)
    if not gfile:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with written_then_renamed(path) as tmp:
        with (gfile.GFile(tmp, "w") if gfile else open(tmp, "w")) as f:
            f.write(text)
        if not gfile:
            os.chmod(tmp, 0o644)
