-- mod_livy schema, version 4: code completion (POST /sessions/{id}/completion). The module
-- records the request and notifies the session's supervisor, which asks the REPL and writes
-- its candidates back; the module polls for them (holding no connection in between) and deletes
-- the row when it answers or gives up. Rows live for seconds, so the table is unlogged: a
-- crash loses only requests nobody waits for any more.
-- Applied by `livy-supervisor --migrate`, inside one transaction, recorded in livy_schema_version.

CREATE UNLOGGED TABLE completions (
    id          bigserial PRIMARY KEY,
    session_id  bigint NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    kind        text NOT NULL,
    code        text NOT NULL,
    cursor_pos  bigint NOT NULL,          -- -1: the end of code
    created_at  timestamptz NOT NULL DEFAULT now(),
    answered_at timestamptz,
    candidates  json                      -- a JSON array of strings, once answered
);

-- what a supervisor has still to ask, by session
CREATE INDEX completions_unanswered ON completions (session_id, id) WHERE answered_at IS NULL;

INSERT INTO livy_schema_version (version) VALUES (4);
