-- mod_livy schema, version 3: each session's and batch's last 10 log lines kept on its row, so
-- that a listing reads them with the row instead of looking the log up once per entry.
-- Applied by `livy-supervisor --migrate`, inside one transaction, recorded in livy_schema_version.

-- The last 10 lines, oldest first, as a JSON array of strings ([] when there are none): what
-- the `log` of GET /sessions, /sessions/{id}, /batches and /batches/{id} shows.
ALTER TABLE sessions ADD COLUMN log_tail json NOT NULL DEFAULT '[]';
ALTER TABLE batches ADD COLUMN log_tail json NOT NULL DEFAULT '[]';

UPDATE sessions s SET log_tail = t.tail FROM (
    SELECT session_id, json_agg(line ORDER BY seq) AS tail FROM (
        SELECT session_id, seq, line,
               row_number() OVER (PARTITION BY session_id ORDER BY seq DESC) AS n
        FROM session_log) l
    WHERE n <= 10 GROUP BY session_id) t
WHERE s.id = t.session_id;

UPDATE batches b SET log_tail = t.tail FROM (
    SELECT batch_id, json_agg(line ORDER BY seq) AS tail FROM (
        SELECT batch_id, seq, line,
               row_number() OVER (PARTITION BY batch_id ORDER BY seq DESC) AS n
        FROM batch_log) l
    WHERE n <= 10 GROUP BY batch_id) t
WHERE b.id = t.batch_id;

-- Kept by statement triggers on the logs: after lines are added or trimmed, the tails of the
-- sessions (batches) those lines belong to are read again from the log. The owning rows are
-- locked first, so that the tail is read after any other writer's lines to the same log are
-- committed (those who append lock the row too, to take seq numbers from next_log_seq); a
-- tail that did not change is not rewritten.
CREATE FUNCTION session_log_tail_maintain() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM sessions WHERE id IN (SELECT session_id FROM changed) ORDER BY id FOR UPDATE;
    UPDATE sessions s SET log_tail = t.tail FROM (
        SELECT c.session_id, (SELECT coalesce(json_agg(l.line ORDER BY l.seq), '[]') FROM (
            SELECT line, seq FROM session_log WHERE session_id = c.session_id
            ORDER BY seq DESC LIMIT 10) l) AS tail
        FROM (SELECT DISTINCT session_id FROM changed) c) t
    WHERE s.id = t.session_id AND s.log_tail::text IS DISTINCT FROM t.tail::text;
    RETURN NULL;
END $$;

CREATE TRIGGER session_log_tail_added AFTER INSERT ON session_log
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION session_log_tail_maintain();
CREATE TRIGGER session_log_tail_removed AFTER DELETE ON session_log
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION session_log_tail_maintain();

CREATE FUNCTION batch_log_tail_maintain() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM batches WHERE id IN (SELECT batch_id FROM changed) ORDER BY id FOR UPDATE;
    UPDATE batches b SET log_tail = t.tail FROM (
        SELECT c.batch_id, (SELECT coalesce(json_agg(l.line ORDER BY l.seq), '[]') FROM (
            SELECT line, seq FROM batch_log WHERE batch_id = c.batch_id
            ORDER BY seq DESC LIMIT 10) l) AS tail
        FROM (SELECT DISTINCT batch_id FROM changed) c) t
    WHERE b.id = t.batch_id AND b.log_tail::text IS DISTINCT FROM t.tail::text;
    RETURN NULL;
END $$;

CREATE TRIGGER batch_log_tail_added AFTER INSERT ON batch_log
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION batch_log_tail_maintain();
CREATE TRIGGER batch_log_tail_removed AFTER DELETE ON batch_log
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION batch_log_tail_maintain();

INSERT INTO livy_schema_version (version) VALUES (3);
