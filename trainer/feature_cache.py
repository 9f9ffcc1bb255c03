"""Stored outputs of a model's frozen part: written batch by batch, read back as batches.

A `Store` holds N rows of one or more arrays (a frozen model's outputs, one array per
output), as float16 by default: half the bytes of float32, and a relative rounding error
of at most 2**-11 (~4.9e-4). It lives either in memory (NumPy arrays) or, when it would
not fit the memory budget, in files under a work directory, one .npy file per output,
written sequentially and read back row by row with pread: the rows are never mapped
into the process, so reading a spilled store over and over adds nothing to its RSS
(mapped file pages would: they count as RssFile, up to the whole file). The page cache
still speeds the reads up while the machine has memory to spare.

`dataset` turns a store into a tf.data input of float32 batches. The per-epoch shuffle
is a permutation of the row indices (8 bytes a row: 0.4 MB for 50,000 rows, against
the 18.8 KB a 7x7x192 float16 row takes), drawn from the seed and the pass number
alone, so an in-memory and a spilled store of the same rows give the same batches in
the same order, bit for bit.
"""
import abc
import itertools
import logging
import math
import os
import shutil
import tempfile
import weakref
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

DTYPE = np.float16
_FLOAT16_MAX = float(np.finfo(np.float16).max)

Index = Union[np.ndarray, slice]


class Store(abc.ABC):
    """N rows of one array per output; `read` gives float32 rows."""
    spilled = False  # True: the rows are in files

    def __init__(self, shapes: Sequence[Tuple[int, ...]], num_rows: int, dtype):
        self.shapes = [tuple(s) for s in shapes]
        self.num_rows = num_rows
        self.dtype = np.dtype(dtype)

    @property
    def nbytes(self) -> int:
        return self.num_rows * row_bytes(self.shapes, self.dtype)

    def __len__(self) -> int:
        return self.num_rows

    def __getitem__(self, output: int) -> np.ndarray:
        """All rows of one output as float32 (small stores: the tests, the float16 bench)."""
        return self.read(slice(0, self.num_rows))[output]

    def read(self, index: Index) -> Tuple[np.ndarray, ...]:
        """The rows at `index` (a slice or an array of row numbers), one float32 array
        per output, in the order asked."""
        return tuple(part.astype(np.float32) for part in self._read(index))

    @abc.abstractmethod
    def _read(self, index: Index) -> List[np.ndarray]:
        """The rows at `index` as stored (dtype), one array per output."""

    def close(self) -> None:
        """Frees the rows (a spilled store removes its files)."""


class _MemoryStore(Store):
    def __init__(self, arrays: List[np.ndarray]):
        super().__init__([a.shape[1:] for a in arrays], len(arrays[0]), arrays[0].dtype)
        self._arrays = arrays

    def _read(self, index: Index) -> List[np.ndarray]:
        return [a[index] for a in self._arrays]

    def close(self) -> None:
        self._arrays = []


class _FileStore(Store):
    """Rows in .npy files (loadable with np.load, mmap_mode='r' too), read with pread."""
    spilled = True

    def __init__(self, directory: str, paths: List[str], offsets: List[int],
                 shapes: Sequence[Tuple[int, ...]], num_rows: int, dtype):
        super().__init__(shapes, num_rows, dtype)
        self.directory, self.paths, self._offsets = directory, paths, offsets
        self._fds = [os.open(p, os.O_RDONLY) for p in paths]
        self._finalizer = weakref.finalize(self, _remove, list(self._fds), directory)

    def _read(self, index: Index) -> List[np.ndarray]:
        rows = np.arange(*index.indices(self.num_rows)) if isinstance(index, slice) else \
            np.asarray(index)
        contiguous = len(rows) > 0 and rows[-1] - rows[0] == len(rows) - 1 and \
            bool(np.all(np.diff(rows) == 1))
        parts = []
        for fd, offset, shape in zip(self._fds, self._offsets, self.shapes):
            out = np.empty((len(rows), *shape), self.dtype)
            size = out.nbytes // max(len(rows), 1)
            if contiguous:  # one read for a run of rows (the unshuffled splits)
                _pread_into(fd, memoryview(out).cast("B"), offset + int(rows[0]) * size)
            else:
                flat = memoryview(out.reshape(len(rows), -1)).cast("B")
                for j, row in enumerate(rows):
                    _pread_into(fd, flat[j * size:(j + 1) * size], offset + int(row) * size)
            parts.append(out)
        return parts

    def close(self) -> None:
        self._finalizer()


def _pread_into(fd: int, buffer: memoryview, offset: int) -> None:
    done = 0
    while done < len(buffer):
        n = os.preadv(fd, [buffer[done:]], offset + done)
        if n <= 0:
            raise IOError(f"feature cache file ended early (fd {fd}, offset {offset + done})")
        done += n


def _remove(fds: List[int], directory: str) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
    shutil.rmtree(directory, ignore_errors=True)


def row_bytes(shapes: Sequence[Tuple[int, ...]], dtype=DTYPE) -> int:
    return np.dtype(dtype).itemsize * sum(math.prod(s) for s in shapes)


class Writer:
    """Appends batches of rows; `finish` returns the Store. In memory, or spilled: each
    batch goes straight to the files, never all rows in memory at once."""

    def __init__(self, shapes: Sequence[Tuple[int, ...]], num_rows: int, in_memory: bool,
                 work_dir: Optional[str] = None, dtype=DTYPE, name: str = "cache"):
        self.shapes, self.num_rows = [tuple(int(d) for d in s) for s in shapes], num_rows
        self.dtype, self.in_memory, self.name = np.dtype(dtype), in_memory, name
        self._written, self._clipped = 0, 0
        if in_memory:
            self._arrays = [np.empty((num_rows, *s), self.dtype) for s in self.shapes]
            return
        if work_dir:
            os.makedirs(work_dir, exist_ok=True)
        self._directory = tempfile.mkdtemp(prefix=f"{name}_", dir=work_dir or None)
        self._paths = [os.path.join(self._directory, f"output_{i}.npy")
                       for i in range(len(self.shapes))]
        self._files = [open(p, "wb") for p in self._paths]
        self._offsets = []
        for f, shape in zip(self._files, self.shapes):
            np.lib.format.write_array_header_1_0(f, {
                "descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                "shape": (num_rows, *shape)})
            self._offsets.append(f.tell())

    def append(self, outputs: Sequence[np.ndarray]) -> None:
        outputs = list(outputs)
        count = len(outputs[0])
        if self._written + count > self.num_rows:
            raise ValueError(f"{self.name}: more than the {self.num_rows} rows announced")
        for i, batch in enumerate(outputs):
            batch = self._cast(np.asarray(batch))
            if self.in_memory:
                self._arrays[i][self._written:self._written + count] = batch
            else:
                self._files[i].write(np.ascontiguousarray(batch).tobytes())
        self._written += count

    def _cast(self, batch: np.ndarray) -> np.ndarray:
        if self.dtype == np.float16:
            beyond = np.abs(batch) > _FLOAT16_MAX
            if beyond.any():  # would round to inf: keep the largest float16 instead
                self._clipped += int(beyond.sum())
                batch = np.clip(batch, -_FLOAT16_MAX, _FLOAT16_MAX)
        return batch.astype(self.dtype, copy=False)

    def finish(self) -> Store:
        if self._written != self.num_rows:
            raise ValueError(f"{self.name}: {self._written} rows written, "
                             f"{self.num_rows} announced")
        if self._clipped:
            logging.warning("%s: %d values beyond float16's range were clipped to +-%g",
                            self.name, self._clipped, _FLOAT16_MAX)
        if self.in_memory:
            return _MemoryStore(self._arrays)
        for f in self._files:
            f.close()
        return _FileStore(self._directory, self._paths, self._offsets, self.shapes,
                          self.num_rows, self.dtype)

    def abort(self) -> None:
        if not self.in_memory:
            for f in self._files:
                f.close()
            shutil.rmtree(self._directory, ignore_errors=True)


def dataset(store: Store, batch_size: int, labels: Optional[np.ndarray] = None,
            num_classes: int = 0, shuffle_seed: Optional[int] = None,
            repeat: bool = False, rows_per_example: int = 1) -> tf.data.Dataset:
    """The store as float32 batches of inputs, or of (inputs, one-hot labels); a single
    output is a tensor, several a tuple (the structure a multi-input model takes).

    With shuffle_seed, pass k over the rows follows permutation k of a generator seeded
    with (shuffle_seed, k): each epoch (each new iterator, or each round of `repeat`)
    gets a new order, the same for every store holding the same rows.

    rows_per_example > 1: example i owns rows i * rows_per_example onwards (its views,
    trainer/views.py), `labels` has one entry per example, and a pass yields each example
    once, as one of its rows drawn by the same generator (the first row, unshuffled)."""
    passes = itertools.count()
    one_hot = np.eye(num_classes, dtype=np.float32) if labels is not None else None
    single = len(store.shapes) == 1
    if store.num_rows % rows_per_example:
        raise ValueError(f"{store.num_rows} rows are not {rows_per_example} per example")
    num_examples = store.num_rows // rows_per_example

    def batches() -> Iterator:
        n = next(passes)
        rng = np.random.default_rng([shuffle_seed, n]) if shuffle_seed is not None else None
        order = rng.permutation(num_examples) if rng is not None else None
        pick = (rng.integers(0, rows_per_example, num_examples)
                if rng is not None and rows_per_example > 1 else None)
        for start in range(0, num_examples, batch_size):
            index = order[start:start + batch_size] if order is not None else \
                slice(start, min(start + batch_size, num_examples))
            rows = index
            if rows_per_example > 1:
                examples = np.arange(num_examples)[index]
                rows = examples * rows_per_example + (pick[examples] if pick is not None else 0)
            inputs = store.read(rows)
            inputs = inputs[0] if single else inputs
            yield inputs if labels is None else (inputs, one_hot[labels[index]])

    specs = [tf.TensorSpec((None, *s), tf.float32) for s in store.shapes]
    signature = specs[0] if single else tuple(specs)
    if labels is not None:
        signature = (signature, tf.TensorSpec((None, num_classes), tf.float32))
    ds = tf.data.Dataset.from_generator(batches, output_signature=signature)
    ds = ds.apply(tf.data.experimental.assert_cardinality(
        math.ceil(num_examples / batch_size)))
    if repeat:
        ds = ds.repeat()
    return ds.prefetch(2)
