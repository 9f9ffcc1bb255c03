"""ImageExampleGen's ingestion report as the others read it: its files beside the examples
and the Examples artifact's int custom properties (the report's counts)."""

REPORT_FILE = "ingestion_report.json"
REJECTED_CSV = "rejected.csv"
FILES_SEEN = "files_seen"
INGESTED_COUNT = "ingested_count"
REJECTED_COUNT = "rejected_count"
NEAR_DUPLICATE_GROUPS = "near_duplicate_groups"  # groups of 2 or more ingested images
LARGEST_NEAR_DUPLICATE_GROUP = "largest_near_duplicate_group"
# Span ingestion: images this execution ingested (not taken from the span store), the
# window's span names and those ingested by this execution (comma-separated).
NEWLY_INGESTED_COUNT = "newly_ingested_count"
WINDOW_SPANS = "window_spans"
INGESTED_SPANS = "ingested_spans"
