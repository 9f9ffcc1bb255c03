"""A new user's first run: `imgpipe run --data <photo folder>` with no config at all
fine-tunes the offline ImageNet backbone and ends with a blessed, pushed model."""
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow  # ~3 minutes on 2 cores: a full pipeline on 397 photos


def test_default_run_on_hymenoptera_blesses_a_fine_tuned_model(tmp_path, shared):
    photos = shared("images", "hymenoptera")
    start = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", "--data", str(photos),
         "--set", f"home={tmp_path / 'home'}"],
        capture_output=True, text=True, timeout=1800, cwd=tmp_path)
    seconds = time.monotonic() - start
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    lines = run.stdout.splitlines()
    summary = lines[lines.index("== summary ==") + 1:]
    print("\n".join(summary), f"\nwall time with start-up: {seconds:.1f} s")
    accuracy = next(x for x in summary if x.startswith("eval accuracy"))
    # Chance is 0.5; a frozen random base scores about that, a fine-tuned one far above.
    assert float(accuracy.split()[2]) >= 0.9, accuracy
    assert "95% CI" in accuracy
    assert "blessed: yes" in summary
    assert any(x.startswith("pushed: version 1") for x in summary)
