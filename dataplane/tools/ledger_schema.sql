-- The ledger of record in PostgreSQL (docs/ledger-sql.md): what
-- authconsume --postgres creates in its schema (default "authd") and keeps.
-- Run once, in a new schema (search_path = that schema), in the transaction
-- that also loads the base.
--
-- Money is bigint fen (1 yuan = 100 fen); wire ids (user, request,
-- reference) are unsigned 64-bit, kept exactly in the domain u64; times are
-- unix seconds as the engine has them (with generated timestamptz columns).

CREATE DOMAIN u64 AS numeric(20, 0)
    CHECK (VALUE >= 0 AND VALUE <= 18446744073709551615);

-- Where the stream has been applied to: one row. Advanced in the same
-- transaction as the batch it applies, so a restart resumes exactly after it.
CREATE TABLE consumer_position (
    stream          text PRIMARY KEY,  -- JetStream stream (authd --export-stream)
    journal_id      text,              -- the engine's journal id, 16 hex digits (NULL until the first record)
    base_seq        bigint NOT NULL,   -- the base snapshot's seq_start: records after it are applied
    applied_seq     bigint NOT NULL,   -- every record up to this seq is in the tables
    base_snapshot   text NOT NULL,     -- which snapshot the base was loaded from ("" = empty base)
    base_users      bigint NOT NULL,
    records         bigint NOT NULL DEFAULT 0,  -- records applied since the base
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (applied_seq >= base_seq)
);

-- Every journal record after the base, once, keyed by its seq.
CREATE TABLE journal (
    seq               bigint PRIMARY KEY,
    kind              smallint NOT NULL CHECK (kind BETWEEN 1 AND 14),
    kind_name         text NOT NULL,     -- auth, capture, ..., user_set (docs/journal-format.md)
    -- decisions and expiries (kinds 1..8, struct lim_effect)
    user_id           u64,               -- the user (also for user_set / ext_set)
    gateway_id        bigint,
    request_id        u64,
    ref_id            u64,               -- the authorization a capture, void, refund or expiry names
    now_s             bigint NOT NULL,   -- the decision's (or change's) engine time
    at                timestamptz GENERATED ALWAYS AS (to_timestamp(now_s)) STORED,
    op                smallint,          -- wire op: 1 authorize .. 5 repay
    product           smallint,          -- 1 paylater, 2 installment, 3 cash
    terms             smallint,
    status            smallint,          -- 0 approved, 1 declined, 2 error
    reason            smallint,          -- reason code (docs/protocol.md)
    notes             smallint,
    amount_fen        bigint,            -- the answer's amount
    available_fen     bigint,            -- the answer's available credit
    d_outstanding_fen bigint,            -- change of the user's debt
    d_holds_fen       bigint,            -- change of the user's holds
    d_bucket_fen      bigint,            -- change of cash (product 3) or installment (2) debt
    d_month_fen       bigint,            -- change of the month's spend
    group_id          bigint,
    hold_expires_s    bigint,
    funder_id         integer,
    own_share_pct     smallint,
    risk_score        integer,
    -- settings changes (kinds 9..14, struct lim_cfg_effect)
    object_id         u64,               -- merchant, group or funder id (kinds 11..13)
    uid               bigint,            -- who: the caller's uid, 4294967294 = a risk verdict
    limit_fen         bigint,            -- user_set: the user's settings after the change
    self_cap_fen      bigint,
    tier              smallint,
    flags             smallint,
    created           boolean,           -- user_set: the change added the user
    record            bytea NOT NULL CHECK (length(record) = 128)  -- the record as exported, checksum sealed
);
CREATE INDEX journal_user ON journal (user_id, seq);
CREATE INDEX journal_ref ON journal (gateway_id, ref_id) WHERE ref_id IS NOT NULL;

-- Users: settings and balances; balances = base + every delta after base_seq.
CREATE TABLE users (
    user_id              u64 PRIMARY KEY,
    limit_fen            bigint NOT NULL,
    self_cap_fen         bigint NOT NULL,
    tier                 smallint NOT NULL,
    frozen               boolean NOT NULL,
    soft_cap             boolean NOT NULL,
    outstanding_fen      bigint NOT NULL CHECK (outstanding_fen >= 0),  -- debt, every product
    holds_fen            bigint NOT NULL CHECK (holds_fen >= 0),        -- open holds
    cash_fen             bigint NOT NULL CHECK (cash_fen >= 0),         -- cash-loan debt (part of outstanding)
    inst_fen             bigint NOT NULL CHECK (inst_fen >= 0),         -- installment debt (part of outstanding)
    base_seq             bigint NOT NULL,  -- the base holds this user's effects up to here (its snapshot stamp)
    base_outstanding_fen bigint NOT NULL,
    base_holds_fen       bigint NOT NULL,
    base_cash_fen        bigint NOT NULL,
    base_inst_fen        bigint NOT NULL,
    created_seq          bigint NOT NULL,  -- 0: in the base; else the user_set that added the user
    last_seq             bigint NOT NULL,  -- the last record that changed this row
    CHECK (cash_fen + inst_fen <= outstanding_fen)
);

-- Approved authorizations and their book (the engine's op entries).
CREATE TABLE operations (
    gateway_id      bigint NOT NULL,
    request_id      u64 NOT NULL,
    user_id         u64 NOT NULL,
    product         smallint NOT NULL,
    terms           smallint NOT NULL,
    state           text NOT NULL CHECK (state IN ('held', 'captured', 'closed')),
    amount_fen      bigint NOT NULL,     -- authorized
    held_fen        bigint NOT NULL CHECK (held_fen >= 0),       -- still on hold
    captured_fen    bigint NOT NULL CHECK (captured_fen >= 0),   -- became debt (a cash loan at once)
    refunded_fen    bigint NOT NULL CHECK (refunded_fen >= 0),   -- given back by refunds
    hold_expires_s  bigint NOT NULL,
    funder_id       integer NOT NULL,
    own_share_pct   smallint NOT NULL,
    group_id        bigint NOT NULL,
    auth_seq        bigint NOT NULL,     -- 0: from the base snapshot
    last_seq        bigint NOT NULL,     -- the last record that changed it
    PRIMARY KEY (gateway_id, request_id),
    CHECK (refunded_fen <= captured_fen)
);
CREATE INDEX operations_user ON operations (user_id);
CREATE INDEX operations_held ON operations (hold_expires_s) WHERE state = 'held';
