"""Versioned schema migrations, one list per backend.

A migration is applied once, in its own transaction, and recorded in
``schema_migrations``; an existing database is upgraded in place by applying
the versions it lacks. Never edit a released migration: add a new one.
"""

from __future__ import annotations

from typing import Final

# Telemetry is narrow: one row per (device, ts, key). The primary key makes a
# re-delivered reading a no-op, and its order (device, ts, key) serves both
# "history of a device over time" and the per-hour rollup scans.

SQLITE: Final[list[str]] = [
    # 1: registry and raw telemetry
    """
    CREATE TABLE tenants (
        id INTEGER PRIMARY KEY,
        slug TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        retention_days INTEGER,
        created_ms INTEGER NOT NULL
    );
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        email TEXT NOT NULL,
        role TEXT NOT NULL,
        password_hash TEXT,
        created_ms INTEGER NOT NULL,
        UNIQUE (tenant_id, email)
    );
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        revoked_ms INTEGER
    );
    CREATE TABLE device_types (
        id INTEGER PRIMARY KEY,
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        name TEXT NOT NULL,
        keys TEXT NOT NULL,
        strict INTEGER NOT NULL,
        report_interval_s INTEGER NOT NULL,
        retention_days INTEGER,
        created_ms INTEGER NOT NULL,
        UNIQUE (tenant_id, name)
    );
    CREATE TABLE devices (
        pk INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        type_id INTEGER NOT NULL REFERENCES device_types(id),
        name TEXT NOT NULL,
        token_hash TEXT NOT NULL,
        labels TEXT NOT NULL DEFAULT '{}',
        created_ms INTEGER NOT NULL,
        last_seen_ms INTEGER,
        UNIQUE (tenant_id, name)
    );
    CREATE INDEX devices_type ON devices (type_id);
    CREATE INDEX devices_token ON devices (token_hash);
    CREATE TABLE keys (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE
    );
    CREATE TABLE telemetry (
        device_pk INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        key_id INTEGER NOT NULL,
        num REAL,
        str TEXT,
        bool INTEGER,
        PRIMARY KEY (device_pk, ts, key_id)
    ) WITHOUT ROWID;
    CREATE TABLE latest (
        device_pk INTEGER NOT NULL,
        key_id INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        num REAL,
        str TEXT,
        bool INTEGER,
        PRIMARY KEY (device_pk, key_id)
    ) WITHOUT ROWID;
    CREATE TABLE attributes (
        device_pk INTEGER NOT NULL,
        key TEXT NOT NULL,
        ts INTEGER NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (device_pk, key)
    ) WITHOUT ROWID;
    """,
    # 2: groups, assets over time, rollups, leases
    """
    CREATE TABLE groups (
        id INTEGER PRIMARY KEY,
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        name TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        UNIQUE (tenant_id, name)
    );
    CREATE TABLE group_members (
        group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
        device_pk INTEGER NOT NULL REFERENCES devices(pk) ON DELETE CASCADE,
        PRIMARY KEY (group_id, device_pk)
    ) WITHOUT ROWID;
    CREATE TABLE assets (
        id INTEGER PRIMARY KEY,
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        properties TEXT NOT NULL DEFAULT '{}',
        created_ms INTEGER NOT NULL,
        UNIQUE (tenant_id, name)
    );
    CREATE TABLE asset_assignments (
        id INTEGER PRIMARY KEY,
        asset_id INTEGER NOT NULL REFERENCES assets(id) ON DELETE CASCADE,
        device_pk INTEGER NOT NULL REFERENCES devices(pk) ON DELETE CASCADE,
        from_ms INTEGER NOT NULL,
        to_ms INTEGER
    );
    CREATE INDEX asset_assignments_asset ON asset_assignments (asset_id, from_ms);
    CREATE INDEX asset_assignments_device ON asset_assignments (device_pk, from_ms);
    CREATE TABLE rollup_1m (
        device_pk INTEGER NOT NULL, key_id INTEGER NOT NULL, bucket INTEGER NOT NULL,
        min REAL, max REAL, sum REAL, count INTEGER NOT NULL,
        first_ts INTEGER NOT NULL, first REAL, last_ts INTEGER NOT NULL, last REAL,
        PRIMARY KEY (device_pk, key_id, bucket)
    ) WITHOUT ROWID;
    CREATE TABLE rollup_1h (
        device_pk INTEGER NOT NULL, key_id INTEGER NOT NULL, bucket INTEGER NOT NULL,
        min REAL, max REAL, sum REAL, count INTEGER NOT NULL,
        first_ts INTEGER NOT NULL, first REAL, last_ts INTEGER NOT NULL, last REAL,
        PRIMARY KEY (device_pk, key_id, bucket)
    ) WITHOUT ROWID;
    CREATE TABLE rollup_pending (
        device_pk INTEGER NOT NULL,
        hour INTEGER NOT NULL,
        PRIMARY KEY (device_pk, hour)
    ) WITHOUT ROWID;
    CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_ms INTEGER NOT NULL
    );
    """,
    # 3: device events, connection state, rejected-message counters
    """
    CREATE TABLE events (
        device_pk INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        kind TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (device_pk, ts, kind)
    ) WITHOUT ROWID;
    ALTER TABLE devices ADD COLUMN connected INTEGER;
    ALTER TABLE devices ADD COLUMN rejected INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE devices ADD COLUMN last_error TEXT;
    ALTER TABLE devices ADD COLUMN last_error_ms INTEGER;
    """,
    # 4: commands (downlink) and device twins
    """
    CREATE TABLE commands (
        id TEXT PRIMARY KEY,
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        device_pk INTEGER NOT NULL REFERENCES devices(pk) ON DELETE CASCADE,
        method TEXT NOT NULL,
        params TEXT NOT NULL,
        oneway INTEGER NOT NULL,
        status TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL,
        timeout_ms INTEGER NOT NULL,
        sent_ms INTEGER,
        finished_ms INTEGER,
        result TEXT,
        error TEXT,
        created_by TEXT NOT NULL
    );
    CREATE INDEX commands_device ON commands (device_pk, created_ms);
    CREATE INDEX commands_open ON commands (status, expires_ms);
    CREATE TABLE twins (
        device_pk INTEGER PRIMARY KEY REFERENCES devices(pk) ON DELETE CASCADE,
        desired TEXT NOT NULL DEFAULT '{}',
        desired_version INTEGER NOT NULL DEFAULT 0,
        desired_ms INTEGER,
        reported TEXT NOT NULL DEFAULT '{}',
        reported_version INTEGER NOT NULL DEFAULT 0,
        reported_ms INTEGER
    );
    """,
    # 5: the presence last announced on the bus (online/offline), so each change is
    # announced once across restarts and processes
    """
    ALTER TABLE devices ADD COLUMN presence TEXT;
    ALTER TABLE devices ADD COLUMN presence_ms INTEGER;
    """,
    # 6: the outbox of webhooks and notifications (one row per delivery, claimed by one
    # process at a time), named notification recipients and quiet hours, the audit log
    """
    CREATE TABLE outbox (
        id TEXT PRIMARY KEY,
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        kind TEXT NOT NULL,
        source TEXT NOT NULL,
        target TEXT NOT NULL,
        body TEXT NOT NULL,
        secret TEXT,
        headers TEXT NOT NULL DEFAULT '{}',
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_ms INTEGER NOT NULL,
        lease_ms INTEGER,
        claimed_by TEXT,
        created_ms INTEGER NOT NULL,
        last_attempt_ms INTEGER,
        finished_ms INTEGER,
        last_error TEXT,
        last_code INTEGER
    );
    CREATE INDEX outbox_due ON outbox (status, next_ms);
    CREATE INDEX outbox_tenant ON outbox (tenant_id, kind, created_ms);
    CREATE TABLE notify_recipients (
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        name TEXT NOT NULL,
        urls TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, name)
    );
    CREATE TABLE notify_settings (
        tenant_id INTEGER PRIMARY KEY REFERENCES tenants(id),
        quiet_hours TEXT
    );
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY,
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        ts INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        details TEXT NOT NULL,
        result TEXT NOT NULL
    );
    CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id);
    """,
    # 7: rules (definitions, per-device state, manual-mode pauses) and alarms with their
    # history; at most one open (not cleared) alarm per (rule, device), kept by the index
    """
    CREATE TABLE rules (
        id INTEGER PRIMARY KEY,
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        name TEXT NOT NULL,
        definition TEXT NOT NULL,
        enabled INTEGER NOT NULL,
        source TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        UNIQUE (tenant_id, name)
    );
    CREATE TABLE rule_state (
        rule_id INTEGER NOT NULL REFERENCES rules(id) ON DELETE CASCADE,
        device_pk INTEGER NOT NULL,
        state TEXT NOT NULL,
        updated_ms INTEGER NOT NULL,
        PRIMARY KEY (rule_id, device_pk)
    );
    CREATE TABLE rule_pauses (
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        rule_id INTEGER NOT NULL,
        device_pk INTEGER NOT NULL,
        paused_by TEXT NOT NULL,
        paused_ms INTEGER NOT NULL,
        PRIMARY KEY (rule_id, device_pk)
    );
    CREATE TABLE alarms (
        id INTEGER PRIMARY KEY,
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        rule_id INTEGER NOT NULL,
        rule_name TEXT NOT NULL,
        device_pk INTEGER NOT NULL,
        device_id TEXT NOT NULL,
        type TEXT NOT NULL,
        severity TEXT NOT NULL,
        status TEXT NOT NULL,
        message TEXT NOT NULL,
        details TEXT NOT NULL,
        raised_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        count INTEGER NOT NULL,
        acked_ms INTEGER,
        acked_by TEXT,
        cleared_ms INTEGER,
        cleared_by TEXT
    );
    CREATE UNIQUE INDEX alarms_open ON alarms (rule_id, device_pk) WHERE status <> 'cleared';
    CREATE INDEX alarms_tenant ON alarms (tenant_id, id);
    CREATE TABLE alarm_events (
        id INTEGER PRIMARY KEY,
        alarm_id INTEGER NOT NULL REFERENCES alarms(id) ON DELETE CASCADE,
        ts INTEGER NOT NULL,
        kind TEXT NOT NULL,
        actor TEXT NOT NULL,
        comment TEXT
    );
    CREATE INDEX alarm_events_alarm ON alarm_events (alarm_id, id);
    """,
    # 8: a version on each rule state, so that saving it is conditional: with several
    # rules processes on one database, the one that saves first acts, the others reload
    """
    ALTER TABLE rule_state ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
    """,
    # 9: the command methods a device type declares (JSON list; empty: free-form commands)
    """
    ALTER TABLE device_types ADD COLUMN methods TEXT NOT NULL DEFAULT '[]';
    """,
    # 10: metering: accounts, supply points, meters (a device and its registers), their
    # links over time, tariffs and their assignment to accounts, interval edits, billing
    # runs and invoices (numbered from gapless per-tenant sequences), SEPA exports
    """
    CREATE TABLE metering_accounts (
        id INTEGER PRIMARY KEY,
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        number TEXT NOT NULL,
        name TEXT NOT NULL,
        address TEXT NOT NULL DEFAULT '',
        email TEXT,
        payment_method TEXT NOT NULL,
        iban TEXT,
        bic TEXT,
        mandate_id TEXT,
        mandate_signed_on TEXT,
        created_ms INTEGER NOT NULL,
        UNIQUE (tenant_id, number)
    );
    CREATE TABLE metering_supply_points (
        id INTEGER PRIMARY KEY,
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        code TEXT NOT NULL,
        address TEXT NOT NULL DEFAULT '',
        created_ms INTEGER NOT NULL,
        UNIQUE (tenant_id, code)
    );
    CREATE TABLE metering_meters (
        id INTEGER PRIMARY KEY,
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        name TEXT NOT NULL,
        device_pk INTEGER NOT NULL REFERENCES devices(pk),
        kind TEXT NOT NULL,
        registers TEXT NOT NULL,
        interval_minutes INTEGER NOT NULL,
        created_ms INTEGER NOT NULL,
        UNIQUE (tenant_id, name)
    );
    CREATE TABLE metering_meter_links (
        id INTEGER PRIMARY KEY,
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        meter_id INTEGER NOT NULL REFERENCES metering_meters(id),
        supply_point_id INTEGER NOT NULL REFERENCES metering_supply_points(id),
        from_ms INTEGER NOT NULL,
        to_ms INTEGER
    );
    CREATE INDEX metering_meter_links_point ON metering_meter_links (supply_point_id, from_ms);
    CREATE TABLE metering_account_links (
        id INTEGER PRIMARY KEY,
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        supply_point_id INTEGER NOT NULL REFERENCES metering_supply_points(id),
        account_id INTEGER NOT NULL REFERENCES metering_accounts(id),
        from_ms INTEGER NOT NULL,
        to_ms INTEGER
    );
    CREATE INDEX metering_account_links_account ON metering_account_links (account_id, from_ms);
    CREATE TABLE metering_tariffs (
        id INTEGER PRIMARY KEY,
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        yaml TEXT NOT NULL,
        currency TEXT NOT NULL,
        timezone TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        UNIQUE (tenant_id, name)
    );
    CREATE TABLE metering_tariff_assignments (
        id INTEGER PRIMARY KEY,
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        account_id INTEGER NOT NULL REFERENCES metering_accounts(id),
        tariff_id INTEGER NOT NULL REFERENCES metering_tariffs(id),
        kind TEXT NOT NULL,
        from_date TEXT NOT NULL,
        to_date TEXT
    );
    CREATE INDEX metering_tariff_assignments_account
        ON metering_tariff_assignments (account_id, kind, from_date);
    CREATE TABLE metering_edits (
        id INTEGER PRIMARY KEY,
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        meter_id INTEGER NOT NULL REFERENCES metering_meters(id),
        register TEXT NOT NULL,
        interval_start INTEGER NOT NULL,
        quantity TEXT NOT NULL,
        author TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        reason TEXT NOT NULL
    );
    CREATE INDEX metering_edits_meter ON metering_edits (meter_id, interval_start);
    CREATE TABLE metering_sequences (
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        name TEXT NOT NULL,
        last_number INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, name)
    );
    CREATE TABLE metering_runs (
        id INTEGER PRIMARY KEY,
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        period TEXT NOT NULL,
        account_id INTEGER,
        status TEXT NOT NULL,
        holder TEXT NOT NULL,
        actor TEXT NOT NULL,
        started_ms INTEGER NOT NULL,
        finished_ms INTEGER,
        summary TEXT NOT NULL DEFAULT '[]'
    );
    CREATE INDEX metering_runs_tenant ON metering_runs (tenant_id, id);
    CREATE TABLE metering_invoices (
        id INTEGER PRIMARY KEY,
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        number TEXT NOT NULL,
        kind TEXT NOT NULL,
        account_id INTEGER NOT NULL REFERENCES metering_accounts(id),
        period TEXT NOT NULL,
        subject TEXT NOT NULL,
        start_date TEXT NOT NULL,
        end_date TEXT NOT NULL,
        corrects INTEGER REFERENCES metering_invoices(id),
        document TEXT NOT NULL,
        details TEXT NOT NULL,
        currency TEXT NOT NULL,
        subtotal TEXT NOT NULL,
        tax TEXT NOT NULL,
        total TEXT NOT NULL,
        status TEXT NOT NULL,
        status_ms INTEGER NOT NULL,
        status_reason TEXT,
        content_hash TEXT NOT NULL,
        issued_ms INTEGER NOT NULL,
        due_date TEXT NOT NULL,
        run_id INTEGER,
        sepa_message_id TEXT,
        UNIQUE (tenant_id, number)
    );
    CREATE INDEX metering_invoices_account ON metering_invoices (tenant_id, account_id, period);
    CREATE INDEX metering_invoices_status ON metering_invoices (tenant_id, status);
    CREATE TABLE metering_sepa_exports (
        id INTEGER PRIMARY KEY,
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        message_id TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        xml TEXT NOT NULL,
        batches TEXT NOT NULL,
        UNIQUE (tenant_id, message_id)
    );
    CREATE TABLE metering_settings (
        tenant_id INTEGER PRIMARY KEY REFERENCES tenants(id),
        document TEXT NOT NULL
    );
    """,
    # fleet (apps/fleet): which device types are vehicles (a profile of detection
    # settings), each device's detector state (versioned: saves are conditional), the
    # checkpoints late readings replay from, and the numbered trips, stops and events
    """
    CREATE TABLE fleet_profiles (
        type_id INTEGER PRIMARY KEY REFERENCES device_types(id),
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        settings TEXT NOT NULL,
        timezone TEXT NOT NULL,
        updated_ms INTEGER NOT NULL
    );
    CREATE TABLE fleet_state (
        device_pk INTEGER PRIMARY KEY,
        state TEXT NOT NULL,
        version INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL
    );
    CREATE TABLE fleet_checkpoints (
        device_pk INTEGER NOT NULL,
        last_ts INTEGER NOT NULL,
        state TEXT NOT NULL,
        PRIMARY KEY (device_pk, last_ts)
    );
    CREATE TABLE fleet_outputs (
        device_pk INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL,
        start_ts INTEGER NOT NULL,
        end_ts INTEGER NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (device_pk, seq)
    );
    CREATE INDEX fleet_outputs_time ON fleet_outputs (device_pk, kind, start_ts);
    """,
    # metering: what is left to pay on an invoice once a credit note for a paid
    # invoice is set off against its replacement (NULL: the total)
    """
    ALTER TABLE metering_invoices ADD COLUMN amount_due TEXT;
    """,
]

POSTGRES: Final[list[str]] = [
    """
    CREATE TABLE tenants (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        slug TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        retention_days INTEGER,
        created_ms BIGINT NOT NULL
    );
    CREATE TABLE users (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        tenant_id BIGINT NOT NULL REFERENCES tenants(id),
        email TEXT NOT NULL,
        role TEXT NOT NULL,
        password_hash TEXT,
        created_ms BIGINT NOT NULL,
        UNIQUE (tenant_id, email)
    );
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        tenant_id BIGINT NOT NULL REFERENCES tenants(id),
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        revoked_ms BIGINT
    );
    CREATE TABLE device_types (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        tenant_id BIGINT NOT NULL REFERENCES tenants(id),
        name TEXT NOT NULL,
        keys TEXT NOT NULL,
        strict BOOLEAN NOT NULL,
        report_interval_s INTEGER NOT NULL,
        retention_days INTEGER,
        created_ms BIGINT NOT NULL,
        UNIQUE (tenant_id, name)
    );
    CREATE TABLE devices (
        pk BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        tenant_id BIGINT NOT NULL REFERENCES tenants(id),
        type_id BIGINT NOT NULL REFERENCES device_types(id),
        name TEXT NOT NULL,
        token_hash TEXT NOT NULL,
        labels TEXT NOT NULL DEFAULT '{}',
        created_ms BIGINT NOT NULL,
        last_seen_ms BIGINT,
        UNIQUE (tenant_id, name)
    );
    CREATE INDEX devices_type ON devices (type_id);
    CREATE INDEX devices_token ON devices (token_hash);
    CREATE TABLE keys (
        id INTEGER GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        name TEXT NOT NULL UNIQUE
    );
    CREATE TABLE telemetry (
        device_pk BIGINT NOT NULL,
        ts BIGINT NOT NULL,
        key_id INTEGER NOT NULL,
        num DOUBLE PRECISION,
        str TEXT,
        bool BOOLEAN,
        PRIMARY KEY (device_pk, ts, key_id)
    );
    CREATE TABLE latest (
        device_pk BIGINT NOT NULL,
        key_id INTEGER NOT NULL,
        ts BIGINT NOT NULL,
        num DOUBLE PRECISION,
        str TEXT,
        bool BOOLEAN,
        PRIMARY KEY (device_pk, key_id)
    );
    CREATE TABLE attributes (
        device_pk BIGINT NOT NULL,
        key TEXT NOT NULL,
        ts BIGINT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (device_pk, key)
    );
    """,
    """
    CREATE TABLE groups (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        tenant_id BIGINT NOT NULL REFERENCES tenants(id),
        name TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        UNIQUE (tenant_id, name)
    );
    CREATE TABLE group_members (
        group_id BIGINT NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
        device_pk BIGINT NOT NULL REFERENCES devices(pk) ON DELETE CASCADE,
        PRIMARY KEY (group_id, device_pk)
    );
    CREATE TABLE assets (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        tenant_id BIGINT NOT NULL REFERENCES tenants(id),
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        properties TEXT NOT NULL DEFAULT '{}',
        created_ms BIGINT NOT NULL,
        UNIQUE (tenant_id, name)
    );
    CREATE TABLE asset_assignments (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        asset_id BIGINT NOT NULL REFERENCES assets(id) ON DELETE CASCADE,
        device_pk BIGINT NOT NULL REFERENCES devices(pk) ON DELETE CASCADE,
        from_ms BIGINT NOT NULL,
        to_ms BIGINT
    );
    CREATE INDEX asset_assignments_asset ON asset_assignments (asset_id, from_ms);
    CREATE INDEX asset_assignments_device ON asset_assignments (device_pk, from_ms);
    CREATE TABLE rollup_1m (
        device_pk BIGINT NOT NULL, key_id INTEGER NOT NULL, bucket BIGINT NOT NULL,
        min DOUBLE PRECISION, max DOUBLE PRECISION, sum DOUBLE PRECISION, count BIGINT NOT NULL,
        first_ts BIGINT NOT NULL, first DOUBLE PRECISION, last_ts BIGINT NOT NULL,
        last DOUBLE PRECISION,
        PRIMARY KEY (device_pk, key_id, bucket)
    );
    CREATE TABLE rollup_1h (
        device_pk BIGINT NOT NULL, key_id INTEGER NOT NULL, bucket BIGINT NOT NULL,
        min DOUBLE PRECISION, max DOUBLE PRECISION, sum DOUBLE PRECISION, count BIGINT NOT NULL,
        first_ts BIGINT NOT NULL, first DOUBLE PRECISION, last_ts BIGINT NOT NULL,
        last DOUBLE PRECISION,
        PRIMARY KEY (device_pk, key_id, bucket)
    );
    CREATE TABLE rollup_pending (
        device_pk BIGINT NOT NULL,
        hour BIGINT NOT NULL,
        PRIMARY KEY (device_pk, hour)
    );
    CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_ms BIGINT NOT NULL
    );
    """,
    """
    CREATE TABLE events (
        device_pk BIGINT NOT NULL,
        ts BIGINT NOT NULL,
        kind TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (device_pk, ts, kind)
    );
    ALTER TABLE devices ADD COLUMN connected BOOLEAN;
    ALTER TABLE devices ADD COLUMN rejected BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE devices ADD COLUMN last_error TEXT;
    ALTER TABLE devices ADD COLUMN last_error_ms BIGINT;
    """,
    """
    CREATE TABLE commands (
        id TEXT PRIMARY KEY,
        tenant_id BIGINT NOT NULL REFERENCES tenants(id),
        device_pk BIGINT NOT NULL REFERENCES devices(pk) ON DELETE CASCADE,
        method TEXT NOT NULL,
        params TEXT NOT NULL,
        oneway BOOLEAN NOT NULL,
        status TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        expires_ms BIGINT NOT NULL,
        timeout_ms BIGINT NOT NULL,
        sent_ms BIGINT,
        finished_ms BIGINT,
        result TEXT,
        error TEXT,
        created_by TEXT NOT NULL
    );
    CREATE INDEX commands_device ON commands (device_pk, created_ms);
    CREATE INDEX commands_open ON commands (status, expires_ms);
    CREATE TABLE twins (
        device_pk BIGINT PRIMARY KEY REFERENCES devices(pk) ON DELETE CASCADE,
        desired TEXT NOT NULL DEFAULT '{}',
        desired_version BIGINT NOT NULL DEFAULT 0,
        desired_ms BIGINT,
        reported TEXT NOT NULL DEFAULT '{}',
        reported_version BIGINT NOT NULL DEFAULT 0,
        reported_ms BIGINT
    );
    """,
    # 5: the presence last announced on the bus (online/offline), so each change is
    # announced once across restarts and processes
    """
    ALTER TABLE devices ADD COLUMN presence TEXT;
    ALTER TABLE devices ADD COLUMN presence_ms BIGINT;
    """,
    # 6: the outbox of webhooks and notifications (one row per delivery, claimed by one
    # process at a time), named notification recipients and quiet hours, the audit log
    """
    CREATE TABLE outbox (
        id TEXT PRIMARY KEY,
        tenant_id BIGINT NOT NULL REFERENCES tenants(id),
        kind TEXT NOT NULL,
        source TEXT NOT NULL,
        target TEXT NOT NULL,
        body TEXT NOT NULL,
        secret TEXT,
        headers TEXT NOT NULL DEFAULT '{}',
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_ms BIGINT NOT NULL,
        lease_ms BIGINT,
        claimed_by TEXT,
        created_ms BIGINT NOT NULL,
        last_attempt_ms BIGINT,
        finished_ms BIGINT,
        last_error TEXT,
        last_code INTEGER
    );
    CREATE INDEX outbox_due ON outbox (status, next_ms);
    CREATE INDEX outbox_tenant ON outbox (tenant_id, kind, created_ms);
    CREATE TABLE notify_recipients (
        tenant_id BIGINT NOT NULL REFERENCES tenants(id),
        name TEXT NOT NULL,
        urls TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        PRIMARY KEY (tenant_id, name)
    );
    CREATE TABLE notify_settings (
        tenant_id BIGINT PRIMARY KEY REFERENCES tenants(id),
        quiet_hours TEXT
    );
    CREATE TABLE audit_log (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        tenant_id BIGINT NOT NULL REFERENCES tenants(id),
        ts BIGINT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        details TEXT NOT NULL,
        result TEXT NOT NULL
    );
    CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id);
    """,
    # 7: rules (definitions, per-device state, manual-mode pauses) and alarms with their
    # history; at most one open (not cleared) alarm per (rule, device), kept by the index
    """
    CREATE TABLE rules (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        tenant_id BIGINT NOT NULL REFERENCES tenants(id),
        name TEXT NOT NULL,
        definition TEXT NOT NULL,
        enabled BOOLEAN NOT NULL,
        source TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL,
        UNIQUE (tenant_id, name)
    );
    CREATE TABLE rule_state (
        rule_id BIGINT NOT NULL REFERENCES rules(id) ON DELETE CASCADE,
        device_pk BIGINT NOT NULL,
        state TEXT NOT NULL,
        updated_ms BIGINT NOT NULL,
        PRIMARY KEY (rule_id, device_pk)
    );
    CREATE TABLE rule_pauses (
        tenant_id BIGINT NOT NULL REFERENCES tenants(id),
        rule_id BIGINT NOT NULL,
        device_pk BIGINT NOT NULL,
        paused_by TEXT NOT NULL,
        paused_ms BIGINT NOT NULL,
        PRIMARY KEY (rule_id, device_pk)
    );
    CREATE TABLE alarms (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        tenant_id BIGINT NOT NULL REFERENCES tenants(id),
        rule_id BIGINT NOT NULL,
        rule_name TEXT NOT NULL,
        device_pk BIGINT NOT NULL,
        device_id TEXT NOT NULL,
        type TEXT NOT NULL,
        severity TEXT NOT NULL,
        status TEXT NOT NULL,
        message TEXT NOT NULL,
        details TEXT NOT NULL,
        raised_ms BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL,
        count BIGINT NOT NULL,
        acked_ms BIGINT,
        acked_by TEXT,
        cleared_ms BIGINT,
        cleared_by TEXT
    );
    CREATE UNIQUE INDEX alarms_open ON alarms (rule_id, device_pk) WHERE status <> 'cleared';
    CREATE INDEX alarms_tenant ON alarms (tenant_id, id);
    CREATE TABLE alarm_events (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        alarm_id BIGINT NOT NULL REFERENCES alarms(id) ON DELETE CASCADE,
        ts BIGINT NOT NULL,
        kind TEXT NOT NULL,
        actor TEXT NOT NULL,
        comment TEXT
    );
    CREATE INDEX alarm_events_alarm ON alarm_events (alarm_id, id);
    """,
    # 8: a version on each rule state, so that saving it is conditional: with several
    # rules processes on one database, the one that saves first acts, the others reload
    """
    ALTER TABLE rule_state ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
    """,
    # 9: the command methods a device type declares (JSON list; empty: free-form commands)
    """
    ALTER TABLE device_types ADD COLUMN methods TEXT NOT NULL DEFAULT '[]';
    """,
    # 10: metering: accounts, supply points, meters (a device and its registers), their
    # links over time, tariffs and their assignment to accounts, interval edits, billing
    # runs and invoices (numbered from gapless per-tenant sequences), SEPA exports
    """
    CREATE TABLE metering_accounts (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        tenant_id BIGINT NOT NULL REFERENCES tenants(id),
        number TEXT NOT NULL,
        name TEXT NOT NULL,
        address TEXT NOT NULL DEFAULT '',
        email TEXT,
        payment_method TEXT NOT NULL,
        iban TEXT,
        bic TEXT,
        mandate_id TEXT,
        mandate_signed_on TEXT,
        created_ms BIGINT NOT NULL,
        UNIQUE (tenant_id, number)
    );
    CREATE TABLE metering_supply_points (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        tenant_id BIGINT NOT NULL REFERENCES tenants(id),
        code TEXT NOT NULL,
        address TEXT NOT NULL DEFAULT '',
        created_ms BIGINT NOT NULL,
        UNIQUE (tenant_id, code)
    );
    CREATE TABLE metering_meters (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        tenant_id BIGINT NOT NULL REFERENCES tenants(id),
        name TEXT NOT NULL,
        device_pk BIGINT NOT NULL REFERENCES devices(pk),
        kind TEXT NOT NULL,
        registers TEXT NOT NULL,
        interval_minutes INTEGER NOT NULL,
        created_ms BIGINT NOT NULL,
        UNIQUE (tenant_id, name)
    );
    CREATE TABLE metering_meter_links (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        tenant_id BIGINT NOT NULL REFERENCES tenants(id),
        meter_id BIGINT NOT NULL REFERENCES metering_meters(id),
        supply_point_id BIGINT NOT NULL REFERENCES metering_supply_points(id),
        from_ms BIGINT NOT NULL,
        to_ms BIGINT
    );
    CREATE INDEX metering_meter_links_point ON metering_meter_links (supply_point_id, from_ms);
    CREATE TABLE metering_account_links (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        tenant_id BIGINT NOT NULL REFERENCES tenants(id),
        supply_point_id BIGINT NOT NULL REFERENCES metering_supply_points(id),
        account_id BIGINT NOT NULL REFERENCES metering_accounts(id),
        from_ms BIGINT NOT NULL,
        to_ms BIGINT
    );
    CREATE INDEX metering_account_links_account ON metering_account_links (account_id, from_ms);
    CREATE TABLE metering_tariffs (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        tenant_id BIGINT NOT NULL REFERENCES tenants(id),
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        yaml TEXT NOT NULL,
        currency TEXT NOT NULL,
        timezone TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL,
        UNIQUE (tenant_id, name)
    );
    CREATE TABLE metering_tariff_assignments (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        tenant_id BIGINT NOT NULL REFERENCES tenants(id),
        account_id BIGINT NOT NULL REFERENCES metering_accounts(id),
        tariff_id BIGINT NOT NULL REFERENCES metering_tariffs(id),
        kind TEXT NOT NULL,
        from_date TEXT NOT NULL,
        to_date TEXT
    );
    CREATE INDEX metering_tariff_assignments_account
        ON metering_tariff_assignments (account_id, kind, from_date);
    CREATE TABLE metering_edits (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        tenant_id BIGINT NOT NULL REFERENCES tenants(id),
        meter_id BIGINT NOT NULL REFERENCES metering_meters(id),
        register TEXT NOT NULL,
        interval_start BIGINT NOT NULL,
        quantity TEXT NOT NULL,
        author TEXT NOT NULL,
        at_ms BIGINT NOT NULL,
        reason TEXT NOT NULL
    );
    CREATE INDEX metering_edits_meter ON metering_edits (meter_id, interval_start);
    CREATE TABLE metering_sequences (
        tenant_id BIGINT NOT NULL REFERENCES tenants(id),
        name TEXT NOT NULL,
        last_number BIGINT NOT NULL,
        PRIMARY KEY (tenant_id, name)
    );
    CREATE TABLE metering_runs (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        tenant_id BIGINT NOT NULL REFERENCES tenants(id),
        period TEXT NOT NULL,
        account_id BIGINT,
        status TEXT NOT NULL,
        holder TEXT NOT NULL,
        actor TEXT NOT NULL,
        started_ms BIGINT NOT NULL,
        finished_ms BIGINT,
        summary TEXT NOT NULL DEFAULT '[]'
    );
    CREATE INDEX metering_runs_tenant ON metering_runs (tenant_id, id);
    CREATE TABLE metering_invoices (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        tenant_id BIGINT NOT NULL REFERENCES tenants(id),
        number TEXT NOT NULL,
        kind TEXT NOT NULL,
        account_id BIGINT NOT NULL REFERENCES metering_accounts(id),
        period TEXT NOT NULL,
        subject TEXT NOT NULL,
        start_date TEXT NOT NULL,
        end_date TEXT NOT NULL,
        corrects BIGINT REFERENCES metering_invoices(id),
        document TEXT NOT NULL,
        details TEXT NOT NULL,
        currency TEXT NOT NULL,
        subtotal TEXT NOT NULL,
        tax TEXT NOT NULL,
        total TEXT NOT NULL,
        status TEXT NOT NULL,
        status_ms BIGINT NOT NULL,
        status_reason TEXT,
        content_hash TEXT NOT NULL,
        issued_ms BIGINT NOT NULL,
        due_date TEXT NOT NULL,
        run_id BIGINT,
        sepa_message_id TEXT,
        UNIQUE (tenant_id, number)
    );
    CREATE INDEX metering_invoices_account ON metering_invoices (tenant_id, account_id, period);
    CREATE INDEX metering_invoices_status ON metering_invoices (tenant_id, status);
    CREATE TABLE metering_sepa_exports (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        tenant_id BIGINT NOT NULL REFERENCES tenants(id),
        message_id TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        xml TEXT NOT NULL,
        batches TEXT NOT NULL,
        UNIQUE (tenant_id, message_id)
    );
    CREATE TABLE metering_settings (
        tenant_id BIGINT PRIMARY KEY REFERENCES tenants(id),
        document TEXT NOT NULL
    );
    """,
    # fleet (apps/fleet): which device types are vehicles (a profile of detection
    # settings), each device's detector state (versioned: saves are conditional), the
    # checkpoints late readings replay from, and the numbered trips, stops and events
    """
    CREATE TABLE fleet_profiles (
        type_id BIGINT PRIMARY KEY REFERENCES device_types(id),
        tenant_id BIGINT NOT NULL REFERENCES tenants(id),
        settings TEXT NOT NULL,
        timezone TEXT NOT NULL,
        updated_ms BIGINT NOT NULL
    );
    CREATE TABLE fleet_state (
        device_pk BIGINT PRIMARY KEY,
        state TEXT NOT NULL,
        version BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL
    );
    CREATE TABLE fleet_checkpoints (
        device_pk BIGINT NOT NULL,
        last_ts BIGINT NOT NULL,
        state TEXT NOT NULL,
        PRIMARY KEY (device_pk, last_ts)
    );
    CREATE TABLE fleet_outputs (
        device_pk BIGINT NOT NULL,
        seq BIGINT NOT NULL,
        kind TEXT NOT NULL,
        start_ts BIGINT NOT NULL,
        end_ts BIGINT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (device_pk, seq)
    );
    CREATE INDEX fleet_outputs_time ON fleet_outputs (device_pk, kind, start_ts);
    """,
    # metering: what is left to pay on an invoice once a credit note for a paid
    # invoice is set off against its replacement (NULL: the total)
    """
    ALTER TABLE metering_invoices ADD COLUMN amount_due TEXT;
    """,
]
