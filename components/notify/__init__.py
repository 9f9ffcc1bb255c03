"""Notifications of unattended runs: a JSON POST to a Slack-compatible webhook."""
