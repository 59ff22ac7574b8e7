-- mod_livy schema, version 6: shared drivers (LivySharedDrivers, or a session's conf
-- livy.session.sharedDriver). A session marked shared_driver may run in a REPL process that
-- other sessions of the same owner, proxy user and Spark settings also run in, each with its own
-- interpreter namespace and SparkSession; its supervisor decides which process, and records its
-- pid and socket as for any session.
-- Applied by `livy-supervisor --migrate`, inside one transaction, recorded in livy_schema_version.

ALTER TABLE sessions ADD COLUMN shared_driver boolean NOT NULL DEFAULT false;

INSERT INTO livy_schema_version (version) VALUES (6);
