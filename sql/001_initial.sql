-- mod_livy schema, version 1: sessions, statements, session log, supervisors.
-- Applied by `livy-supervisor --migrate`, inside one transaction, recorded in livy_schema_version.

CREATE TABLE IF NOT EXISTS livy_schema_version (
    version     integer PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per running livy-supervisor (one per Spark host).
CREATE TABLE supervisors (
    id            bigserial PRIMARY KEY,
    host          text NOT NULL,
    pid           integer NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now(),
    capacity      integer NOT NULL,
    stopped_at    timestamptz
);

-- Session ids count from 0 and never repeat.
CREATE SEQUENCE sessions_id_seq MINVALUE 0 START WITH 0;

CREATE TABLE sessions (
    id                   bigint PRIMARY KEY DEFAULT nextval('sessions_id_seq'),
    name                 text,
    kind                 text NOT NULL,
    owner                text,
    proxy_user           text,
    state                text NOT NULL DEFAULT 'not_started'
        CHECK (state IN ('not_started','starting','recovering','idle','busy',
                         'shutting_down','error','dead','killed','success')),
    app_id               text,
    spark_ui_url         text,
    driver_log_url       text,
    driver_memory        text,
    driver_cores         integer NOT NULL DEFAULT 0,
    executor_memory      text,
    executor_cores       integer NOT NULL DEFAULT 0,
    num_executors        integer NOT NULL DEFAULT 0,
    queue                text,
    conf                 json NOT NULL DEFAULT '{}',
    jars                 json NOT NULL DEFAULT '[]',
    py_files             json NOT NULL DEFAULT '[]',
    files                json NOT NULL DEFAULT '[]',
    archives             json NOT NULL DEFAULT '[]',
    heartbeat_timeout_s  integer NOT NULL DEFAULT 0,
    ttl                  text,              -- as the client wrote it, echoed back
    idle_timeout         text,
    ttl_ms               bigint,            -- parsed, for the supervisor's timers
    idle_timeout_ms      bigint,
    supervisor_id        bigint REFERENCES supervisors(id),
    repl_pid             integer,
    repl_socket          text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    started_at           timestamptz,
    state_changed_at     timestamptz NOT NULL DEFAULT now(),
    last_activity_at     timestamptz NOT NULL DEFAULT now(),
    last_heartbeat_at    timestamptz NOT NULL DEFAULT now(),
    ended_at             timestamptz,       -- set when the state becomes terminal
    stop_requested       text CHECK (stop_requested IN ('stop','delete')),
    deleted              boolean NOT NULL DEFAULT false,
    next_statement_id    integer NOT NULL DEFAULT 0,
    next_log_seq         bigint NOT NULL DEFAULT 0
);

-- Names are unique among live sessions only; an ended session frees its name.
CREATE UNIQUE INDEX sessions_live_name ON sessions (name)
    WHERE name IS NOT NULL AND ended_at IS NULL;
CREATE INDEX sessions_listed ON sessions (id) WHERE NOT deleted;
CREATE INDEX sessions_live ON sessions (state, owner) WHERE ended_at IS NULL AND NOT deleted;
CREATE INDEX sessions_unclaimed ON sessions (id)
    WHERE supervisor_id IS NULL AND state = 'not_started' AND NOT deleted;

CREATE TABLE statements (
    session_id        bigint NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    id                integer NOT NULL,
    code              text NOT NULL,
    kind              text,
    state             text NOT NULL DEFAULT 'waiting'
        CHECK (state IN ('waiting','running','available','cancelling','cancelled')),
    output            json,               -- json, not jsonb: key order is part of the wire shape
    progress          double precision NOT NULL DEFAULT 0,
    started           bigint NOT NULL DEFAULT 0,   -- epoch ms, 0 while unset
    completed         bigint NOT NULL DEFAULT 0,
    cancel_requested  boolean NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, id)
);
CREATE INDEX statements_pending ON statements (session_id, id)
    WHERE state IN ('waiting','running','cancelling');

-- Per-session log; seq counts from 0 per session, the oldest lines are trimmed.
CREATE TABLE session_log (
    session_id  bigint NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    seq         bigint NOT NULL,
    line        text NOT NULL,
    PRIMARY KEY (session_id, seq)
);

-- How many sessions GET /sessions lists, kept by trigger so the listing's `total` costs the same
-- however many sessions exist.
CREATE TABLE session_count (
    only_row  boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    listed    bigint NOT NULL
);
INSERT INTO session_count (listed) VALUES (0);

CREATE FUNCTION session_count_maintain() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' AND NOT NEW.deleted THEN
        UPDATE session_count SET listed = listed + 1;
    ELSIF TG_OP = 'UPDATE' AND NEW.deleted AND NOT OLD.deleted THEN
        UPDATE session_count SET listed = listed - 1;
    ELSIF TG_OP = 'UPDATE' AND OLD.deleted AND NOT NEW.deleted THEN
        UPDATE session_count SET listed = listed + 1;
    ELSIF TG_OP = 'DELETE' AND NOT OLD.deleted THEN
        UPDATE session_count SET listed = listed - 1;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER sessions_count_listed AFTER INSERT OR UPDATE OF deleted OR DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION session_count_maintain();

INSERT INTO livy_schema_version (version) VALUES (1);
