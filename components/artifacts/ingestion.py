"""ImageExampleGen's ingestion report as the others read it: its files beside the examples
and the Examples artifact's int custom properties (the report's counts)."""

REPORT_FILE = "ingestion_report.json"
REJECTED_CSV = "rejected.csv"
FILES_SEEN = "files_seen"
INGESTED_COUNT = "ingested_count"
REJECTED_COUNT = "rejected_count"
