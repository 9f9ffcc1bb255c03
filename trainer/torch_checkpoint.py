"""Read a PyTorch state-dict checkpoint (``.pth``) into NumPy arrays, without torch.

Why a restricted reader: a ``.pth`` file is a pickle, and unpickling can call any
importable callable (``os.system``, ``builtins.eval``...) while loading. A state dict
only ever needs a handful of globals (an ``OrderedDict``, the tensor-rebuild functions
and the storage type names), so ``_StateDictUnpickler.find_class`` maps exactly those to
local, side-effect-free replacements and refuses everything else with
``pickle.UnpicklingError``. Torch itself is never imported.

Both on-disk formats are supported:

* zip (torch >= 1.6): ``<root>/data.pkl`` plus one raw file per storage,
  ``<root>/data/<key>``;
* legacy (torch < 1.6, ``_use_new_zipfile_serialization=False``): a sequence of pickles
  on one stream -- magic number, protocol version, sys info, the pickled object, the list
  of storage keys -- followed, for each key in that order, by an int64 element count and
  the raw storage bytes.
"""
from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np

PathLike = Union[str, Path]

_LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL_VERSION = 1001

# torch.<Name>Storage -> element dtype (little-endian, as torch writes on x86/ARM).
_STORAGE_DTYPES: Dict[str, np.dtype] = {
    "DoubleStorage": np.dtype("<f8"),
    "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


@dataclass(frozen=True)
class StorageType:
    """Stand-in for ``torch.FloatStorage`` & co: only remembers the element dtype."""

    name: str
    dtype: np.dtype


def _rebuild_tensor(storage: np.ndarray, storage_offset: int, size: Tuple[int, ...],
                    stride: Tuple[int, ...], *_ignored: Any) -> np.ndarray:
    """Replacement for ``torch._utils._rebuild_tensor_v2`` (and v1): a strided view, copied.

    The bounds are checked before ``as_strided`` because a crafted size/stride would
    otherwise read memory outside the storage.
    """
    if isinstance(storage, _LegacyStorage):  # bytes not read yet: rebuild after loading
        return _PendingTensor(storage, (storage_offset, size, stride))
    if not isinstance(storage, np.ndarray):
        raise pickle.UnpicklingError(f"tensor storage is not a storage: {storage!r:.80}")
    storage_offset = int(storage_offset)
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if len(size) != len(stride) or storage_offset < 0 or any(s < 0 for s in size + stride):
        raise pickle.UnpicklingError(f"invalid tensor geometry size={size} stride={stride}")
    if 0 in size:
        return np.zeros(size, dtype=storage.dtype)
    last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= storage.size:
        raise pickle.UnpicklingError(
            f"tensor (offset {storage_offset}, size {size}, stride {stride}) overruns its "
            f"storage of {storage.size} elements")
    view = np.lib.stride_tricks.as_strided(
        storage[storage_offset:], shape=size,
        strides=tuple(s * storage.itemsize for s in stride), writeable=False)
    return np.array(view, order="C")  # own, contiguous memory, detached from the storage


def _rebuild_parameter(data: np.ndarray, *_ignored: Any) -> np.ndarray:
    """Replacement for ``torch._utils._rebuild_parameter``: a Parameter is just its data."""
    return data


_ALLOWED_GLOBALS: Dict[Tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): StorageType(name, dtype) for name, dtype in _STORAGE_DTYPES.items()},
}


class _StateDictUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals a state dict needs; storages via a callback."""

    def __init__(self, file: IO[bytes], load_storage: Optional[Callable[[tuple], Any]] = None):
        super().__init__(file)
        self._load_storage = load_storage

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused global {module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:
        if self._load_storage is None or not isinstance(pid, tuple) or not pid \
                or pid[0] != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.80}")
        return self._load_storage(pid)


def _storage_dtype(storage_type: Any) -> np.dtype:
    if not isinstance(storage_type, StorageType):
        raise pickle.UnpicklingError(f"not a storage type: {storage_type!r:.80}")
    return storage_type.dtype


# ----------------------------------------------------------------------------- zip format

def _zip_record_prefix(archive: zipfile.ZipFile) -> str:
    """The archive's top folder (named after the saved file, so it varies)."""
    pickles = [n for n in archive.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
        raise pickle.UnpicklingError("zip checkpoint without exactly one <root>/data.pkl")
    return pickles[0][: -len("data.pkl")]


def _load_zip(path: PathLike) -> Any:
    with zipfile.ZipFile(path) as archive:
        prefix = _zip_record_prefix(archive)
        byteorder_name = prefix + "byteorder"
        if byteorder_name in archive.namelist() and archive.read(byteorder_name) != b"little":
            raise pickle.UnpicklingError("big-endian checkpoints are not supported")
        storages: Dict[str, np.ndarray] = {}

        def load_storage(pid: tuple) -> np.ndarray:
            # ('storage', storage_type, key, location, numel)
            _, storage_type, key, _location, numel = pid
            key = str(key)
            if key not in storages:
                raw = archive.read(f"{prefix}data/{key}")
                storages[key] = np.frombuffer(raw, dtype=_storage_dtype(storage_type),
                                              count=int(numel))
            return storages[key]

        with archive.open(prefix + "data.pkl") as pkl:
            return _StateDictUnpickler(io.BytesIO(pkl.read()), load_storage).load()


# -------------------------------------------------------------------------- legacy format

class _LegacyStorage:
    """A storage whose bytes follow the pickle (legacy format): filled in after loading."""

    def __init__(self, root_key: str, dtype: np.dtype, offset: int, size: Optional[int]):
        self.root_key, self.dtype, self.offset, self.size = root_key, dtype, offset, size
        self.array: Optional[np.ndarray] = None

    def fill(self, roots: Dict[str, np.ndarray]) -> None:
        root = roots[self.root_key]
        stop = None if self.size is None else self.offset + self.size
        self.array = root[self.offset:stop]


class _PendingTensor:
    """A tensor over a ``_LegacyStorage`` not filled yet; rebuilt by ``_resolve_pending``."""

    def __init__(self, storage: _LegacyStorage, args: tuple):
        self.storage, self.args = storage, args


def _load_legacy(file: IO[bytes]) -> Any:
    header = _StateDictUnpickler(file)  # these three pickles hold plain literals only
    if header.load() != _LEGACY_MAGIC_NUMBER:
        raise pickle.UnpicklingError("not a PyTorch checkpoint (bad magic number)")
    if header.load() != _LEGACY_PROTOCOL_VERSION:
        raise pickle.UnpicklingError("unsupported legacy checkpoint protocol version")
    sys_info = header.load()
    if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
        raise pickle.UnpicklingError("big-endian checkpoints are not supported")

    storages: List[_LegacyStorage] = []

    def load_storage(pid: tuple) -> _LegacyStorage:
        # ('storage', storage_type, root_key, location, numel, view_metadata) where
        # view_metadata is None or (view_key, offset, size).
        _, storage_type, root_key, _location, _numel, view = pid
        storage = _LegacyStorage(str(root_key), _storage_dtype(storage_type),
                                 0 if view is None else int(view[1]),
                                 None if view is None else int(view[2]))
        storages.append(storage)
        return storage

    obj = _StateDictUnpickler(file, load_storage).load()
    storage_keys = _StateDictUnpickler(file).load()
    dtypes = {s.root_key: s.dtype for s in storages}
    roots = {str(key): _read_legacy_storage(file, dtypes[str(key)]) for key in storage_keys}
    for storage in storages:
        storage.fill(roots)
    return _resolve_pending(obj)


def _read_legacy_storage(file: IO[bytes], dtype: np.dtype) -> np.ndarray:
    (numel,) = struct.unpack("<q", file.read(8))
    raw = file.read(numel * dtype.itemsize) if numel >= 0 else b""
    if numel < 0 or len(raw) != numel * dtype.itemsize:
        raise pickle.UnpicklingError("truncated legacy checkpoint")
    return np.frombuffer(raw, dtype=dtype)


def _resolve_pending(obj: Any) -> Any:
    if isinstance(obj, _PendingTensor):
        return _rebuild_tensor(obj.storage.array, *obj.args)
    if isinstance(obj, dict):
        for key, value in obj.items():
            obj[key] = _resolve_pending(value)
    elif isinstance(obj, (list, tuple)):
        return type(obj)(_resolve_pending(v) for v in obj)
    return obj


# ------------------------------------------------------------------------------ public API

def load_checkpoint(path: PathLike) -> Any:
    """Unpickle a checkpoint (either format) with tensors as NumPy arrays."""
    if zipfile.is_zipfile(path):
        return _load_zip(path)
    with open(path, "rb") as file:
        return _load_legacy(file)


def load_state_dict(path: PathLike) -> Dict[str, np.ndarray]:
    """``{parameter name: array}`` from a ``.pth`` state dict, never running pickled code.

    Raises ``pickle.UnpicklingError`` for any global outside the state-dict allow-list.
    A ``{"state_dict": ...}`` wrapper (common in training checkpoints) is unwrapped.
    """
    obj = load_checkpoint(path)
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, np.ndarray) for v in obj.values()):
        raise pickle.UnpicklingError("checkpoint is not a flat state dict of tensors")
    return {str(k): v for k, v in obj.items()}
