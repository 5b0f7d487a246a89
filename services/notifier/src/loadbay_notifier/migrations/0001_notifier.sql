-- One row per outcome event: the email it produced and where its delivery stands.
CREATE TABLE emails (
    id bigserial PRIMARY KEY,
    -- The CloudEvents id of the event the email announces: one email per event, whatever
    -- the redeliveries (and the Message-ID is derived from it).
    event_id text NOT NULL UNIQUE,
    event_type text NOT NULL,
    correlation_id text NOT NULL,
    recipients text[] NOT NULL CHECK (cardinality(recipients) > 0),
    subject text NOT NULL,
    body_text text NOT NULL,
    body_html text NOT NULL,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    -- Delivery attempts started so far (counted when an attempt claims the row).
    attempts int NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error text,
    -- When a pending email is next due; a claim pushes it out by a lease, so a sender that
    -- dies mid-send leaves the email to another one once the lease runs out.
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'sent') = (sent_at IS NOT NULL))
);
CREATE INDEX emails_due ON emails (next_attempt_at) WHERE status = 'pending';
-- GET /emails lists a user's own emails.
CREATE INDEX emails_by_recipient ON emails USING gin (recipients);
