"""Ingestion's limits that protect memory: a file over data.max_file_mb is rejected
before it is read."""
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from components.image_example_gen import component  # noqa: E402
from components.image_example_gen import image_checks as checks  # noqa: E402
from components.image_example_gen import reasons  # noqa: E402
from components.image_example_gen.config import DataConfig, ingestion_config  # noqa: E402


def _options(**data_fields) -> DataConfig:
    return ingestion_config(component.ingestion_options(DataConfig(**data_fields)))


def test_a_huge_file_is_rejected_before_it_is_read(tmp_path):
    huge = tmp_path / "label" / "huge.jpg"
    huge.parent.mkdir()
    with open(huge, "wb") as f:  # 3 GB, sparse: no disk used, and never read
        f.write(b"\xff\xd8\xff")
        f.truncate(3 * 2 ** 30)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outcome = checks.check_candidate(
        checks.Candidate("label/huge.jpg", "label", "", str(huge)), _options())
    assert outcome.reason == reasons.REASON_TOO_LARGE
    assert f"{3 * 2 ** 30} bytes" in outcome.detail and "data.max_file_mb=200" in outcome.detail
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024  # KB


# -- names and encodings ----------------------------------------------------------------
def _png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), "red").save(buf, "PNG")
    return buf.getvalue()


def test_a_name_that_is_not_utf8_is_rejected_naming_it(tmp_path):
    import os

    from components.image_example_gen import file_names, listing

    root = tmp_path / "data"
    (root / "cat" / "sub").mkdir(parents=True)
    (root / "cat" / "ok.png").write_bytes(_png())
    with open(os.path.join(os.fsencode(root / "cat" / "sub"), b"caf\xe9.png"), "wb") as f:
        f.write(_png())
    listed = listing.list_inputs(str(root), "*/*", listing.LAYOUT_FOLDER)
    rejected = {o.image_id: o.reason for o in listed if isinstance(o, checks.Outcome)}
    assert rejected == {"cat/sub/caf\\xe9.png": file_names.REASON_BAD_FILE_NAME}
    assert [c.image_id for c in listed if isinstance(c, checks.Candidate)] == ["cat/ok.png"]


def test_names_tfx_fingerprints_are_checked_before_it_runs(tmp_path):
    import os

    import pytest

    from components.image_example_gen import file_names

    (tmp_path / "cat").mkdir()
    with open(os.path.join(os.fsencode(tmp_path / "cat"), b"\xe9t\xe9.png"), "wb") as f:
        f.write(_png())
    with pytest.raises(ValueError, match=r"not valid UTF-8 \(rename them\): cat/\\xe9t\\xe9\.png"):
        file_names.check_fingerprinted_names(str(tmp_path))


def test_a_latin1_manifest_names_the_line(tmp_path):
    import pytest

    from components.image_example_gen import listing

    (tmp_path / "a.png").write_bytes(_png())
    (tmp_path / "m.csv").write_bytes("path,label\na.png,cat\na.png,caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"m\.csv, line 3: byte 0xe9 is not UTF-8"):
        listing.list_inputs(str(tmp_path), "m.csv", listing.LAYOUT_MANIFEST)
