"""DataGuard: this run's data against a fixed schema and the champion's data (drift)."""
