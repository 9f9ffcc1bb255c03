"""What the data guard reports, as the runners, `imgpipe history` and notifications read
it: its output, the findings property, and the error that stops a run
(a marker line, then one finding per line)."""
from typing import List, Sequence

OUTPUT_KEY = "report"
FINDINGS = "findings"  # JSON list of strings: anomalies and drift, stopping or not
REPORT_FILE = "data_guard.json"
STOP_MARKER = "the data guard stopped the run before training:"


class DataGuardStop(RuntimeError):
    """An anomaly, or drift past its threshold with guard.on_drift=stop."""

    def __init__(self, findings: Sequence[str], hint: str):
        super().__init__("\n".join([STOP_MARKER, *findings, hint]))
        self.findings = list(findings)


def findings_in(lines: Sequence[str]) -> List[str]:
    """The findings of a DataGuardStop from its message's lines (e.g. a traceback)."""
    lines = list(lines)
    starts = [i for i, line in enumerate(lines) if STOP_MARKER in line]
    if not starts:
        return []
    found = []
    for line in lines[starts[-1] + 1:]:
        if not line.startswith(("anomaly:", "drift:")):
            break
        found.append(line)
    return found
