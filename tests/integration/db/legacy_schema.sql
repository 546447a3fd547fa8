-- The DDL the modules ran at start before the schema history owned their tables (commit
-- e94f5ac), verbatim: what a database of that release holds. Frozen here, never edited:
-- tests/integration/db/test_migrations.py upgrades a database built from it.

-- adapters/inventory/postgres.py
CREATE TABLE IF NOT EXISTS stock (
    sku       text PRIMARY KEY,
    on_hand   integer NOT NULL CHECK (on_hand >= 0),
    reserved  integer NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    CONSTRAINT stock_never_oversold CHECK (reserved <= on_hand)
);
CREATE TABLE IF NOT EXISTS reservations (
    id           text PRIMARY KEY,
    checkout_id  text NOT NULL,
    status       text NOT NULL
                 CHECK (status IN ('reserved', 'committed', 'released', 'expired')),
    expires_at   bigint NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS reservations_one_active_per_checkout
    ON reservations (checkout_id) WHERE status IN ('reserved', 'committed');
CREATE INDEX IF NOT EXISTS reservations_due
    ON reservations (expires_at) WHERE status = 'reserved';
CREATE TABLE IF NOT EXISTS reservation_lines (
    reservation_id  text NOT NULL REFERENCES reservations (id),
    sku             text NOT NULL REFERENCES stock (sku),
    quantity        integer NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (reservation_id, sku)
);
-- One row per (checkout, attempt key): the remembered outcome of a reserve command, so a
-- redelivered command gets the same answer (a rejection too: re-evaluating it could reserve
-- stock for a checkout the saga has already failed).
CREATE TABLE IF NOT EXISTS reservation_attempts (
    checkout_id       text NOT NULL,
    attempt_key       text NOT NULL,
    reservation_id    text REFERENCES reservations (id),
    rejection_reason  text,
    rejection_sku     text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (checkout_id, attempt_key),
    CHECK ((reservation_id IS NULL) <> (rejection_reason IS NULL))
);

-- adapters/payments/refund_ledger.py
CREATE TABLE IF NOT EXISTS payment_refunds (
    idempotency_key    text PRIMARY KEY,
    provider           text NOT NULL,
    payment_id         text NOT NULL,
    checkout_id        text NOT NULL,
    operation          text NOT NULL,
    amount             bigint NOT NULL CHECK (amount > 0),
    currency           text NOT NULL,
    status             text NOT NULL CHECK (status IN ('pending', 'settled', 'released')),
    provider_refund_id text,
    reserved_at        double precision NOT NULL,
    updated_at         double precision NOT NULL
);
CREATE INDEX IF NOT EXISTS payment_refunds_payment
    ON payment_refunds (provider, payment_id) WHERE status = 'pending';

-- adapters/payments/registry.py
CREATE TABLE IF NOT EXISTS payment_providers (
    key               text PRIMARY KEY,
    tenant_id         text NOT NULL,
    kind              text NOT NULL,
    key_id            text NOT NULL,
    secret_ciphertext bytea NOT NULL,
    options           jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS payment_providers_tenant ON payment_providers (tenant_id);
CREATE TABLE IF NOT EXISTS payment_routes (
    tenant_id  text NOT NULL,
    position   integer NOT NULL,
    provider   text NOT NULL REFERENCES payment_providers (key) ON DELETE CASCADE,
    currencies text[] NOT NULL DEFAULT '{}',
    countries  text[] NOT NULL DEFAULT '{}',
    fallbacks  text[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (tenant_id, position)
);

-- adapters/notifications/sent_log.py
CREATE TABLE IF NOT EXISTS sent_notifications (
    subject_id           text NOT NULL,
    kind                 text NOT NULL,
    checkout_id          text NOT NULL,
    email                text NOT NULL,
    status               text NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    attempts             integer NOT NULL DEFAULT 0,
    provider             text,
    provider_message_id  text,
    last_error           text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    sent_at              timestamptz,
    PRIMARY KEY (subject_id, kind)
);

-- infra/workers/notifier.py
CREATE TABLE IF NOT EXISTS notification_recipients (
    checkout_id  text PRIMARY KEY,
    email        text NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);

-- adapters/shipping/shipments.py
CREATE TABLE IF NOT EXISTS shipments (
    checkout_id    text PRIMARY KEY,
    provider       text NOT NULL,
    reference      text NOT NULL,
    status         text NOT NULL CHECK (status IN ('pending', 'purchased')),
    attempts       integer NOT NULL DEFAULT 0,
    quote_ref      text,
    shipment_id    text,
    carrier        text,
    service_level  text,
    amount         bigint,
    currency       text,
    tracking_code  text,
    label_url      text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    purchased_at   timestamptz
);

-- adapters/shipping/quoted_levels.py
CREATE TABLE IF NOT EXISTS shipping_quotes (
    checkout_id    text PRIMARY KEY,
    attempt        integer NOT NULL,
    carrier        text NOT NULL,
    service_level  text NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now()
);

-- api/keys.py
CREATE TABLE IF NOT EXISTS api_keys (
    key_id      text PRIMARY KEY,
    tenant_id   text NOT NULL,
    name        text NOT NULL,
    key_hash    bytea NOT NULL UNIQUE,
    key_hint    text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX IF NOT EXISTS api_keys_tenant ON api_keys (tenant_id);
CREATE TABLE IF NOT EXISTS audit_log (
    id          bigserial PRIMARY KEY,
    actor       text NOT NULL,
    action      text NOT NULL,
    object      text NOT NULL,
    before      jsonb,
    after       jsonb,
    request_id  text,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS audit_log_object ON audit_log (object, at);
