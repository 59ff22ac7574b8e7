-- mod_livy schema, version 2: batches (POST /batches: spark-submit runs of a file), and when
-- each session was first ready.
-- Applied by `livy-supervisor --migrate`, inside one transaction, recorded in livy_schema_version.

-- Batch ids count from 0 and never repeat; they are counted apart from sessions', as in Livy.
CREATE SEQUENCE batches_id_seq MINVALUE 0 START WITH 0;

CREATE TABLE batches (
    id                bigint PRIMARY KEY DEFAULT nextval('batches_id_seq'),
    name              text,
    owner             text,
    proxy_user        text,
    -- starting: waiting for a supervisor (supervisor_id NULL) or for spark-submit to run;
    -- running: spark-submit runs; then success (exit 0), dead (failed) or killed (DELETE).
    state             text NOT NULL DEFAULT 'starting'
        CHECK (state IN ('starting','running','success','dead','killed')),
    app_id            text,
    spark_ui_url      text,
    driver_log_url    text,
    file              text NOT NULL,
    class_name        text,
    args              json NOT NULL DEFAULT '[]',
    driver_memory     text,
    driver_cores      integer NOT NULL DEFAULT 0,
    executor_memory   text,
    executor_cores    integer NOT NULL DEFAULT 0,
    num_executors     integer NOT NULL DEFAULT 0,
    queue             text,
    conf              json NOT NULL DEFAULT '{}',
    jars              json NOT NULL DEFAULT '[]',
    py_files          json NOT NULL DEFAULT '[]',
    files             json NOT NULL DEFAULT '[]',
    archives          json NOT NULL DEFAULT '[]',
    supervisor_id     bigint REFERENCES supervisors(id),
    pid               integer,            -- spark-submit's process group, while it may run
    exit_status       integer,            -- spark-submit's exit code, once known
    log_offset        bigint NOT NULL DEFAULT 0, -- bytes of its output file already in batch_log
    created_at        timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    state_changed_at  timestamptz NOT NULL DEFAULT now(),
    ended_at          timestamptz,        -- set when the state becomes terminal
    stop_requested    boolean NOT NULL DEFAULT false,
    deleted           boolean NOT NULL DEFAULT false,
    next_log_seq      bigint NOT NULL DEFAULT 0
);

-- Names are unique among live batches only (sessions have their own names).
CREATE UNIQUE INDEX batches_live_name ON batches (name)
    WHERE name IS NOT NULL AND ended_at IS NULL;
CREATE INDEX batches_listed ON batches (id) WHERE NOT deleted;
CREATE INDEX batches_live ON batches (owner) WHERE ended_at IS NULL AND NOT deleted;
CREATE INDEX batches_unclaimed ON batches (id)
    WHERE supervisor_id IS NULL AND state = 'starting' AND NOT deleted;
CREATE INDEX batches_supervisor ON batches (supervisor_id) WHERE supervisor_id IS NOT NULL;

-- Per-batch log (spark-submit's stdout and stderr, and the supervisor's notes); seq counts from
-- 0 per batch, the oldest lines are trimmed.
CREATE TABLE batch_log (
    batch_id  bigint NOT NULL REFERENCES batches(id) ON DELETE CASCADE,
    seq       bigint NOT NULL,
    line      text NOT NULL,
    PRIMARY KEY (batch_id, seq)
);

-- How many batches GET /batches lists, kept by trigger (as session_count is).
CREATE TABLE batch_count (
    only_row  boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    listed    bigint NOT NULL
);
INSERT INTO batch_count (listed) VALUES (0);

CREATE FUNCTION batch_count_maintain() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' AND NOT NEW.deleted THEN
        UPDATE batch_count SET listed = listed + 1;
    ELSIF TG_OP = 'UPDATE' AND NEW.deleted AND NOT OLD.deleted THEN
        UPDATE batch_count SET listed = listed - 1;
    ELSIF TG_OP = 'UPDATE' AND OLD.deleted AND NOT NEW.deleted THEN
        UPDATE batch_count SET listed = listed + 1;
    ELSIF TG_OP = 'DELETE' AND NOT OLD.deleted THEN
        UPDATE batch_count SET listed = listed - 1;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER batches_count_listed AFTER INSERT OR UPDATE OF deleted OR DELETE ON batches
    FOR EACH ROW EXECUTE FUNCTION batch_count_maintain();

-- When a session first became idle: its start took ready_at - created_at (GET /metrics).
ALTER TABLE sessions ADD COLUMN ready_at timestamptz;

INSERT INTO livy_schema_version (version) VALUES (2);
