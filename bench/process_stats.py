"""Runs a command and measures it: wall time and peak RSS of its whole process tree."""
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List

import psutil


def measure(cmd: List[str], poll_seconds: float = 0.1) -> Dict[str, Any]:
    """Runs cmd to completion; exits with its output tail when it fails.

    RSS is summed over the tree and polled, since Beam may fork worker processes.
    """
    with tempfile.TemporaryFile("w+") as log:
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)
        parent, peak = psutil.Process(proc.pid), 0
        while proc.poll() is None:
            try:
                tree = [parent] + parent.children(recursive=True)
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(poll_seconds)
        wall = time.monotonic() - start
        log.seek(0)
        output = log.read()
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{output[-3000:]}")
    return {"wall_s": wall, "rss_gb": peak / 1e9, "output": output}


PROBE = "s = 0\nfor i in range(20_000_000):\n    s += i"


def machine_probe() -> float:
    """Seconds a fixed single-threaded workload takes in a fresh interpreter: the same
    work each time, so it shows how fast the machine runs right now (shared machines
    drift by half from hour to hour)."""
    start = time.monotonic()
    subprocess.run([sys.executable, "-c", PROBE], check=True)
    return time.monotonic() - start
