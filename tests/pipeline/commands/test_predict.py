"""`imgpipe predict` on inputs that must not pass quietly: broken files get the decoder's
reason, and an image whose header declares too many pixels is refused before decoding,
with a peak memory close to a normal photo's."""
import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

from pipeline.commands import predict
from trainer import contract

REPO = Path(__file__).resolve().parents[2]


def huge_png(path: Path, width: int = 20000, height: int = 20000) -> Path:
    """A black RGB PNG of width x height, a few hundred KB on disk, written row by row."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + \
            struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)

    packer, row = zlib.compressobj(9), b"\0" * (1 + 3 * width)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def photo(path: Path, width: int = 4000, height: int = 3000) -> Path:
    """A 12-megapixel JPEG, as a phone takes."""
    from PIL import Image

    Image.linear_gradient("L").resize((width, height)).convert("RGB").save(path, quality=90)
    return path


def test_broken_files_get_the_decoders_reason(contract_model, tmp_path):
    png = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (64, 64), "red").save(png, "PNG")
    files = {"empty.jpg": b"", "page.jpg": b"<html>moved</html>",
             "truncated.png": png.getvalue()[:60]}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    results = predict.predict(str(contract_model), [str(tmp_path / n) for n in files])
    errors = {Path(r.image).name: r.error for r in results}
    assert all(e and "Graph execution error" not in e for e in errors.values()), errors
    assert "Unknown image file format" in errors["page.jpg"]
    assert "empty" in errors["empty.jpg"].lower()
    assert all("[[" not in e and "Op:" not in e for e in errors.values()), errors


def test_an_image_too_large_is_refused_before_decoding(contract_model, tmp_path):
    big = huge_png(tmp_path / "huge.png")
    assert big.stat().st_size < 2_000_000
    ok = photo(tmp_path / "photo.jpg", 400, 300)
    results = predict.predict(str(contract_model), [str(big), str(ok)])
    assert "too large to decode" in results[0].error and "400000000" in results[0].error
    assert str(contract.MAX_IMAGE_PIXELS) in results[0].error
    assert results[1].error is None and results[1].top  # the others are still predicted


PEAK_SCRIPT = """
import json, resource, sys
from pipeline.commands import predict
result = predict.predict(sys.argv[1], [sys.argv[2]])[0]
print(json.dumps({"error": result.error,
                  "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def _peak(model: Path, image: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(model), str(image)],
                         env={**os.environ, "PYTHONPATH": str(REPO),
                              "TF_CPP_MIN_LOG_LEVEL": "3"},
                         capture_output=True, text=True, timeout=600, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_peak_memory_on_a_huge_image_stays_near_a_normal_photos(contract_model, tmp_path):
    normal = _peak(contract_model, photo(tmp_path / "photo.jpg"))
    huge = _peak(contract_model, huge_png(tmp_path / "huge.png"))
    largest = _peak(contract_model, photo(tmp_path / "largest.jpg", 8000, 4000))  # the most
    assert normal["error"] is None and largest["error"] is None
    assert "too large" in huge["error"]
    ratios = {"huge": huge["peak_kb"] / normal["peak_kb"],
              "largest": largest["peak_kb"] / normal["peak_kb"]}
    print(f"predict peak RSS vs a 12 MP photo ({normal['peak_kb'] / 1024:.0f} MB): "
          f"20000x20000 PNG {ratios['huge']:.2f}x, 32 MP JPEG {ratios['largest']:.2f}x")
    assert ratios["huge"] <= 1.2 and ratios["largest"] <= 1.2, ratios
