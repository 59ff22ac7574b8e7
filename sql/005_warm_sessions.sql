-- mod_livy schema, version 5: warm REPLs (supervisor setting warm_sessions). A supervisor starts
-- REPLs ahead of demand as session rows of its own marked warm; while warm, a row is also
-- deleted, so that no listing, count, GET or statement sees it. POST /sessions hands a ready
-- warm row to the new session (warm and deleted cleared, the request's settings written) in
-- the statement that would otherwise insert a fresh row; each warm row serves one session.
-- Applied by `livy-supervisor --migrate`, inside one transaction, recorded in livy_schema_version.

ALTER TABLE sessions ADD COLUMN warm boolean NOT NULL DEFAULT false;
ALTER TABLE sessions ADD CONSTRAINT sessions_warm_hidden CHECK (NOT warm OR deleted);

-- what POST /sessions looks for: a ready warm REPL
CREATE INDEX sessions_warm_ready ON sessions (id)
    WHERE warm AND state = 'idle' AND ended_at IS NULL AND stop_requested IS NULL;

INSERT INTO livy_schema_version (version) VALUES (5);
