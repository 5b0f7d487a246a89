"""Metrics of the notifier service (see loadbay_platform.metrics for the shared ones)."""

from prometheus_client import Counter, Gauge

EMAILS_SENT = Counter(
    "loadbay_emails_sent_total", "Emails the mail relay accepted.", ["event_type"]
)
EMAILS_FAILED = Counter(
    "loadbay_emails_failed_total",
    "Emails given up on (permanent refusal or attempts exhausted).",
    ["event_type"],
)
SEND_ATTEMPTS = Counter(
    "loadbay_email_send_attempts_total",
    "Delivery attempts, by outcome (sent, retried, failed).",
    ["outcome"],
)
EMAILS_PENDING = Gauge("loadbay_emails_pending", "Emails recorded and not yet sent or given up on.")
