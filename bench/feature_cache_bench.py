"""Feature cache at 50,000 images: spilled to disk vs held in memory, in the same run.

A phase-2 cache of EfficientNet-Lite0 at 224 px (the bottom's 7x7x192 output, float16:
18.4 KB an image) is written through the trainer's own Writer, 50,000 random rows,
spilled to files; the in-memory peer is a 5,000-row cache. Each trains from its cache in
a child process of its own (so each one's peak RSS is its own):

- a head on the maps (pooling + dense), a full epoch: so little compute that the input
  pipeline is what is measured, the worst case for a cache on disk; the spilled cache
  runs one epoch with its files evicted from the page cache first (posix_fadvise), read
  from disk, and one warm;
- phase 2's real trainable part (Lite0's block6d, top conv and the head), fixed steps.

Printed: examples/s as ratios spilled / in memory, and the peak anonymous RSS
(/proc/self/status RssAnon, what the process itself holds) and file-backed RSS
(RssFile: mapped file pages) above the child's baseline after start-up, against the
cache's size. A third child reads the same files through np.memmap instead of pread,
to show what mapping the file would cost in RSS.

    .venv/bin/python bench/feature_cache_bench.py [--rows 50000] [--memory-rows 5000]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHAPE = (7, 7, 192)  # Lite0's phase-2 cut at 224 px: the input of block6d
NUM_CLASSES, BATCH = 5, 32


def _status() -> dict:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    return out


class Sampler:
    """Peak RssAnon and RssFile, polled every 20 ms from a thread."""

    def __init__(self):
        self.peak = {"RssAnon": 0, "RssFile": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            s = _status()
            for k in self.peak:
                self.peak[k] = max(self.peak[k], s[k])
            time.sleep(0.02)

    def reset(self):
        s = _status()
        self.peak = {k: s[k] for k in self.peak}

    def stop(self):
        self._stop.set()
        self._thread.join()


class _MemmapStore:
    """The alternative reader: the same .npy files mapped, rows gathered by index."""

    spilled = True

    def __init__(self, store):
        self.shapes, self.num_rows, self.nbytes = store.shapes, store.num_rows, store.nbytes
        self.paths = store.paths
        self._store = store  # owns the files
        self._arrays = [np.load(p, mmap_mode="r") for p in store.paths]

    def read(self, index):
        return tuple(a[index].astype(np.float32) for a in self._arrays)


def _epoch_times(model, ds, epochs: int, before_epoch=None, steps=None):
    import keras

    times = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if before_epoch:
                before_epoch(epoch)
            self.start = time.monotonic()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.monotonic() - self.start)

    model.fit(ds, epochs=epochs, steps_per_epoch=steps, verbose=0, callbacks=[Timer()])
    return times


def _evict(store):
    for path in getattr(store, "paths", []):
        fd = os.open(path, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)


def child(case: str, rows: int, steps: int, top_steps: int, work_dir: str) -> dict:
    import keras

    from trainer import feature_cache, fit_callbacks, model as model_lib
    from trainer.train_config import TrainConfig

    keras.utils.set_random_seed(0)
    head = keras.Sequential([keras.Input(SHAPE), keras.layers.GlobalAveragePooling2D(),
                             keras.layers.Dense(128, activation="relu"),
                             keras.layers.Dense(NUM_CLASSES, activation="softmax")])
    fit_callbacks.compile_model(head, 1e-3, 0.0)
    cfg = TrainConfig(backbone="efficientnet_lite0", weights="none", image_size=224)
    classifier = model_lib.build_classifier(cfg, NUM_CLASSES)
    first = model_lib.top_start_index(classifier.base, "block6d_", 0)
    split = model_lib.split_base(classifier, first)
    assert tuple(split.frozen.outputs[0].shape[1:]) == SHAPE, split.frozen.outputs[0].shape
    model_lib.unfreeze_top(classifier.base, first)
    top = split.trainable
    fit_callbacks.compile_model(top, 1e-4, 0.0)

    sampler = Sampler()
    time.sleep(0.1)
    base = _status()
    rng = np.random.default_rng(0)
    labels = rng.integers(0, NUM_CLASSES, rows)
    start = time.monotonic()
    writer = feature_cache.Writer([SHAPE], rows, case == "memory", work_dir)
    for i in range(0, rows, 256):  # a realistic map: ReLU6-like, non-negative, <= 6
        n = min(256, rows - i)
        writer.append([np.clip(rng.standard_normal((n, *SHAPE), np.float32) + 1, 0, 6)])
    store = writer.finish()
    write_s = time.monotonic() - start
    if case == "memmap":
        store = _MemmapStore(store)

    # Every case trains `steps` batches an epoch (the big cache's one pass; the small
    # in-memory cache repeats), so fixed per-epoch costs weigh the same. Epoch 0 traces;
    # the spilled cache's files leave the page cache before epoch 1.
    ds = feature_cache.dataset(store, BATCH, labels, NUM_CLASSES, shuffle_seed=0,
                               repeat=True)
    evict_at = {1} if case == "spilled" else set()
    head_times = _epoch_times(head, ds, 4, lambda e: _evict(store) if e in evict_at else None,
                              steps)
    repeat = feature_cache.dataset(store, BATCH, labels, NUM_CLASSES, shuffle_seed=1,
                                   repeat=True)
    top.fit(repeat, epochs=2, steps_per_epoch=top_steps // 4, verbose=0)  # warm-up: trace
    top_times = _epoch_times(top, repeat.take(top_steps), 1)
    sampler.stop()
    return {"case": case, "rows": rows, "cache_mb": store.nbytes / 2 ** 20,
            "write_s": write_s,
            "head_eps": [steps * BATCH / t for t in head_times],
            "top_eps": top_steps * BATCH / top_times[0],
            "anon_mb": (sampler.peak["RssAnon"] - base["RssAnon"]) / 2 ** 20,
            "file_mb": (sampler.peak["RssFile"] - base["RssFile"]) / 2 ** 20,
            "base_anon_mb": base["RssAnon"] / 2 ** 20,
            "hwm_mb": _status()["VmHWM"] / 2 ** 20}


def float16_error(images: int) -> dict:
    """ImageNet Lite0's phase-2 cut at 224 px on flowers5 photos: the error the float16
    store adds to the real maps, and to the probabilities of a random head on top."""
    import keras
    import tensorflow as tf

    from trainer import feature_cache, image_ops, model as model_lib
    from trainer.train_config import TrainConfig

    flowers = REPO.parent / "shared" / "data" / "images" / "flowers5_128px"
    if not flowers.is_dir():
        return {"skipped": f"{flowers} not found"}
    every = sorted(flowers.rglob("*.jpg"))
    paths = every[::max(1, len(every) // images)][:images]  # spread over the classes
    keras.utils.set_random_seed(0)
    cfg = TrainConfig(backbone="efficientnet_lite0", image_size=224)
    classifier = model_lib.build_classifier(cfg, NUM_CLASSES)
    first = model_lib.top_start_index(classifier.base, "block6d_", 0)
    split = model_lib.split_base(classifier, first)
    batch = np.stack([image_ops.decode_and_resize(tf.io.read_file(str(p)), 224).numpy()
                      for p in paths])
    maps = np.asarray(split.frozen(batch, training=False))
    writer = feature_cache.Writer([maps.shape[1:]], len(maps), True)
    writer.append([maps])
    half = writer.finish().read(slice(0, len(maps)))[0]
    big = np.abs(maps) >= np.finfo(np.float16).tiny
    rel = np.abs(half - maps)[big] / np.abs(maps)[big]
    p32 = np.asarray(split.trainable(maps, training=False))
    p16 = np.asarray(split.trainable(half, training=False))
    return {"images": len(paths), "max_rel": float(rel.max()),
            "rms_rel": float(np.linalg.norm(half - maps) / np.linalg.norm(maps)),
            "max_abs": float(np.abs(half - maps).max()), "max_value": float(np.abs(maps).max()),
            "prob_diff": float(np.abs(p16 - p32).max()),
            "top1_same": float(np.mean(p16.argmax(1) == p32.argmax(1)))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--memory-rows", type=int, default=5_000)
    parser.add_argument("--top-steps", type=int, default=40)
    parser.add_argument("--cases", default="float16,memory,spilled,memmap")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "float16":
        print("RESULT " + json.dumps(float16_error(64)))
        return
    if args.child:
        with tempfile.TemporaryDirectory(prefix="feature_cache_bench_") as work_dir:
            result = child(args.child, args.rows, args.steps, args.top_steps, work_dir)
        print("RESULT " + json.dumps(result))
        return

    results = {}
    for case in args.cases.split(","):
        if case == "float16":
            out = subprocess.run([sys.executable, __file__, "--child", "float16"],
                                 capture_output=True, text=True,
                                 env={**os.environ, "PYTHONPATH": str(REPO)})
            line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
            if out.returncode or not line:
                sys.exit(f"float16 failed:\n{out.stderr[-3000:]}")
            r = json.loads(line[0][len("RESULT "):])
            print(f"float16 store of real maps: skipped, {r['skipped']}" if "skipped" in r else
                  f"float16 store of real maps (ImageNet Lite0, 7x7x192 at 224 px, "
                  f"{r['images']} flowers5 photos): max relative error {r['max_rel']:.2e} "
                  f"(bound 2**-11 = {2 ** -11:.2e}), relative RMS {r['rms_rel']:.2e}, max abs "
                  f"{r['max_abs']:.2e} on values up to {r['max_value']:.1f}; phase-2 top + random "
                  f"head on them: max |p16 - p32| {r['prob_diff']:.2e}, same top-1 "
                  f"{r['top1_same']:.0%}", flush=True)
            continue
        rows = args.memory_rows if case == "memory" else args.rows
        out = subprocess.run(
            [sys.executable, __file__, "--child", case, "--rows", str(rows),
             "--steps", str(-(-args.rows // BATCH)), "--top-steps", str(args.top_steps)],
            capture_output=True, text=True,
            env={**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"})
        line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
        if out.returncode or not line:
            sys.exit(f"{case} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
        results[case] = json.loads(line[0][len("RESULT "):])
        r = results[case]
        head = ", ".join(f"{e:.0f}" for e in r["head_eps"])
        print(f"{case:8} {r['rows']:6d} rows, cache {r['cache_mb']:7.1f} MB (float16), "
              f"written in {r['write_s']:.1f} s; head epochs {head} "
              f"ex/s; phase-2 top {r['top_eps']:.1f} ex/s; RSS above start: anon "
              f"{r['anon_mb']:.0f} MB, file {r['file_mb']:.0f} MB (start anon "
              f"{r['base_anon_mb']:.0f} MB, VmHWM {r['hwm_mb']:.0f} MB)", flush=True)

    m = results.get("memory")
    if not results:
        return
    print()
    for case in ("spilled", "memmap"):
        r = results.get(case)
        if not (m and r):
            continue
        warm = max(m["head_eps"][2:])
        print(f"{case}/memory: head epoch (input-bound) warm "
              f"{max(r['head_eps'][2:]) / warm:.2f}x"
              + (f", read from disk (page cache evicted) "
                 f"{r['head_eps'][1] / warm:.2f}x" if case == "spilled" else "")
              + f"; phase-2 top {r['top_eps'] / m['top_eps']:.2f}x; with "
              f"{r['rows'] / m['rows']:.0f}x the rows ({r['cache_mb']:.0f} vs "
              f"{m['cache_mb']:.0f} MB): peak anon RSS {r['base_anon_mb'] + r['anon_mb']:.0f} vs "
              f"{m['base_anon_mb'] + m['anon_mb']:.0f} MB (growth above start-up "
              f"{r['anon_mb']:.0f} vs {m['anon_mb']:.0f} MB, "
              f"{r['anon_mb'] / r['cache_mb']:.2f} vs {m['anon_mb'] / m['cache_mb']:.2f} of the "
              f"cache), file-backed {r['file_mb']:.0f} MB = "
              f"{r['file_mb'] / r['cache_mb']:.2f} of the cache")
    first = results[next(iter(results))]
    print(f"float32 would take twice each cache's size "
          f"({2 * first['cache_mb'] / first['rows'] * 1024:.1f} KB an image, not "
          f"{first['cache_mb'] / first['rows'] * 1024:.1f}).")


if __name__ == "__main__":
    main()
