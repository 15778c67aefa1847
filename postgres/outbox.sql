-- The Chard outbox (chard/postgres): jobs and reliable signals written in the application's
-- transaction, enqueued by the relay after commit. Generated for chard.outbox.
BEGIN;
SELECT pg_advisory_xact_lock(hashtext('chard.outbox:chard.outbox'));
CREATE SCHEMA IF NOT EXISTS "chard";
CREATE TABLE IF NOT EXISTS "chard"."outbox" (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- The engine's namespace the job belongs to.
  namespace text NOT NULL,
  -- The job as the broker stores it (its id, task, queue, arguments, options, headers).
  job json NOT NULL,
  -- The job's onDuplicate policy and keyTtl (ms), which its JSON does not carry.
  key_policy text,
  key_ttl_ms bigint,
  created_at timestamptz NOT NULL DEFAULT now(),
  -- Set by the relay on a row it cannot read as a job: left in the table, never relayed.
  error text
);
CREATE INDEX IF NOT EXISTS "outbox_relay" ON "chard"."outbox" (namespace, id) WHERE error IS NULL;
CREATE OR REPLACE FUNCTION "chard"."outbox_notify"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  ns text;
BEGIN
  FOR ns IN SELECT DISTINCT namespace FROM new_rows LOOP
    PERFORM pg_notify('chard_outbox', ns);
  END LOOP;
  RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS "outbox_notify" ON "chard"."outbox";
CREATE TRIGGER "outbox_notify" AFTER INSERT ON "chard"."outbox"
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION "chard"."outbox_notify"();
COMMIT;
