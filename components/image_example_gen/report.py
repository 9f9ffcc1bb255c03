"""ImageExampleGen's ingestion report: every file accounted for, ingested or rejected.

Beside the examples, the artifact folder receives ingestion_report.json and rejected.csv
(written to a temporary name and renamed, so each is complete or absent). The executor
then fails the run when nothing was ingested or when the rejected fraction exceeds
data.max_rejected_fraction (check_report).
"""
from __future__ import annotations

import collections
import csv
import io
import json
from typing import Any, Dict, Iterable

import apache_beam as beam
from tfx.dsl.io import fileio

from components.artifacts.ingestion import REJECTED_CSV, REPORT_FILE
from components.image_example_gen import reasons
from components.image_example_gen.image_checks import Outcome
from components.image_example_gen.listing import join
from trainer.files import replace_text

# Report-only keys: the distance used, and images kept despite a warning.
NEAR_DUPLICATE_DISTANCE = "near_duplicate_distance"
WARNINGS = "warnings"


class ReportCombineFn(beam.CombineFn):
    """Outcomes -> the ingestion report dict; keeps only rejections, not images."""

    def create_accumulator(self) -> Dict[str, Any]:
        return {"files_seen": 0, "ingested": 0, "rejected": [], "normalised": [],
                "counts_by_reason": collections.Counter(),
                "ingested_by_label": collections.Counter()}

    def add_input(self, acc: Dict[str, Any], outcome: Outcome) -> Dict[str, Any]:
        acc["files_seen"] += 1
        if outcome.accepted:
            acc["ingested"] += 1
            acc["ingested_by_label"][outcome.label] += 1
            if outcome.image.normalised:
                acc["normalised"].append({"file": outcome.image_id,
                                          "reason": reasons.NORMALISED_EXIF_ORIENTATION,
                                          "detail": outcome.image.normalised})
        else:
            acc["rejected"].append({"file": outcome.image_id, "reason": outcome.reason,
                                    "detail": outcome.detail})
            acc["counts_by_reason"][outcome.reason] += 1
        return acc

    def merge_accumulators(self, accumulators: Iterable[Dict[str, Any]]) -> Dict[str, Any]:
        merged = self.create_accumulator()
        for acc in accumulators:
            for key, value in acc.items():
                merged[key] += value  # ints add, lists extend, Counters sum
        return merged

    def extract_output(self, acc: Dict[str, Any]) -> Dict[str, Any]:
        return {
            "files_seen": acc["files_seen"],
            "ingested": acc["ingested"],
            "rejected": sorted(acc["rejected"], key=lambda r: (r["file"], r["reason"])),
            "normalised": sorted(acc["normalised"], key=lambda r: r["file"]),
            "counts_by_reason": dict(sorted(acc["counts_by_reason"].items())),
            "ingested_by_label": dict(sorted(acc["ingested_by_label"].items())),
        }


def write_report(report: Dict[str, Any], directory: str) -> None:
    """ingestion_report.json and rejected.csv (file,reason,detail) into `directory`."""
    fileio.makedirs(directory)  # this branch may run before the split writers create it
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerow(["file", "reason", "detail"])
    writer.writerows([r["file"], r["reason"], r["detail"]] for r in report["rejected"])
    replace_text(join(directory, REJECTED_CSV), rows.getvalue())
    replace_text(join(directory, REPORT_FILE), json.dumps(report, indent=2) + "\n")


def read_report(directory: str) -> Dict[str, Any]:
    with fileio.open(join(directory, REPORT_FILE), "r") as f:
        return json.load(f)


def check_report(report: Dict[str, Any], max_rejected_fraction: float, report_path: str,
                 input_base: str) -> None:
    """Raises RuntimeError when the ingestion result is not usable for training."""
    seen, ingested, rejected = report["files_seen"], report["ingested"], len(report["rejected"])
    if ingested + rejected != seen:
        raise RuntimeError(f"ImageExampleGen lost track of files: {ingested} ingested + "
                           f"{rejected} rejected != {seen} seen; see {report_path}")
    top = ", ".join(f"{reason}={n}" for reason, n in sorted(
        report["counts_by_reason"].items(), key=lambda kv: (-kv[1], kv[0]))[:5])
    if ingested == 0:
        raise RuntimeError(f"ImageExampleGen ingested no image from {input_base}: "
                           f"{seen} files seen, all rejected ({top or 'no files found'}); "
                           f"see {report_path}")
    fraction = rejected / seen
    if fraction > max_rejected_fraction:
        raise RuntimeError(
            f"ImageExampleGen rejected {rejected} of {seen} files: rejected fraction "
            f"{fraction:.3f} is over data.max_rejected_fraction={max_rejected_fraction}. "
            f"Top reasons: {top}. Every rejection is listed in {report_path}")
