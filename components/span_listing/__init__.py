"""SpanListing: what data a run sees, as a string parameter its downstream cache keys hold."""
