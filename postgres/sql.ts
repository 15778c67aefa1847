/**
 * The outbox table's SQL: its migration, and the statements the writers and the relay send. One
 * place builds them all from the schema and table names, so the shipped `outbox.sql` (the
 * migration for the default names) and `migrate()` never differ (test/postgres-outbox.test.ts
 * compares them).
 */
import { InvalidOptionError, describe } from "../lib/errors.js";

/** The default schema of the outbox table. */
export const DEFAULT_SCHEMA = "chard";
/** The default name of the outbox table. */
export const DEFAULT_TABLE = "outbox";

/** A plain lower-case SQL identifier: no quoting surprises, room for the suffixes the migration adds. */
const IDENTIFIER = /^[a-z_][a-z0-9_]{0,47}$/;

/** Where the outbox lives, and the names derived from it. */
export interface OutboxNames {
  readonly schema: string;
  readonly table: string;
  /** `"schema"."table"`. */
  readonly qualified: string;
  /** The LISTEN/NOTIFY channel the table's trigger notifies on commit: `<schema>_<table>`. */
  readonly channel: string;
}

/** The names of an outbox in `schema`.`table`. @throws InvalidOptionError for a name that is not a plain identifier. */
export function outboxNames(schema: unknown = DEFAULT_SCHEMA, table: unknown = DEFAULT_TABLE): OutboxNames {
  for (const [what, name] of [
    ["schema", schema],
    ["table", table],
  ] as const) {
    if (typeof name !== "string" || !IDENTIFIER.test(name))
      throw new InvalidOptionError(
        `outbox ${what} must be a lower-case SQL identifier (a-z, 0-9, _; 1-48 characters, not starting with a digit), got ${describe(name)}`,
      );
  }
  const s = schema as string;
  const t = table as string;
  return { schema: s, table: t, qualified: `"${s}"."${t}"`, channel: `${s}_${t}` };
}

/**
 * The migration: the schema, the table, its index and the trigger that notifies the relays at
 * commit (one notification per namespace per statement). Idempotent (IF NOT EXISTS, OR REPLACE),
 * and serialised by an advisory lock, so processes that start together may all run it.
 */
export function migrationSql(names: OutboxNames): string {
  const { schema, table, qualified, channel } = names;
  const fn = `"${schema}"."${table}_notify"`;
  return `-- The Chard outbox (chard/postgres): jobs and reliable signals written in the application's
-- transaction, enqueued by the relay after commit. Generated for ${schema}.${table}.
BEGIN;
SELECT pg_advisory_xact_lock(hashtext('chard.outbox:${schema}.${table}'));
CREATE SCHEMA IF NOT EXISTS "${schema}";
CREATE TABLE IF NOT EXISTS ${qualified} (
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
CREATE INDEX IF NOT EXISTS "${table}_relay" ON ${qualified} (namespace, id) WHERE error IS NULL;
CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  ns text;
BEGIN
  FOR ns IN SELECT DISTINCT namespace FROM new_rows LOOP
    PERFORM pg_notify('${channel}', ns);
  END LOOP;
  RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS "${table}_notify" ON ${qualified};
CREATE TRIGGER "${table}_notify" AFTER INSERT ON ${qualified}
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ${fn}();
COMMIT;
`;
}

/**
 * The custom setting a writer sets (`SET LOCAL`) before its INSERT: inside a transaction block it
 * lasts until the block ends, so the INSERT sees it; outside one the SET was a transaction of its
 * own (PostgreSQL warns and forgets it), so the INSERT, another transaction, does not.
 */
export const IN_TRANSACTION_SETTING = "chard.outbox_tx";

/** The statement that marks the writer's transaction (see `IN_TRANSACTION_SETTING`). */
export const MARK_TRANSACTION_SQL = `SET LOCAL ${IN_TRANSACTION_SETTING} = 'on'`;

/**
 * The writers' INSERT: $1 the namespace, $2 the jobs' JSONs, $3 their key policies, $4 their key
 * ttls. It inserts nothing unless `MARK_TRANSACTION_SQL` ran before it in the same transaction.
 */
export function insertSql(names: OutboxNames): string {
  return `INSERT INTO ${names.qualified} (namespace, job, key_policy, key_ttl_ms)
SELECT $1, j.job, j.policy, j.ttl FROM unnest($2::json[], $3::text[], $4::bigint[]) AS j(job, policy, ttl)
WHERE current_setting('${IN_TRANSACTION_SETTING}', true) = 'on'`;
}

/** The relay's claim of a batch: $1 the namespace, $2 how many rows; rows other relays hold are skipped. */
export function claimSql(names: OutboxNames): string {
  return `SELECT id::text AS id, job::text AS job, key_policy, key_ttl_ms::text AS key_ttl_ms FROM ${names.qualified}
WHERE namespace = $1 AND error IS NULL ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED`;
}

/** The relay's delete of the rows it enqueued: $1 their ids. */
export function deleteSql(names: OutboxNames): string {
  return `DELETE FROM ${names.qualified} WHERE id = ANY($1::bigint[])`;
}

/** The relay's mark of a row it cannot read: $1 its id, $2 why. */
export function failSql(names: OutboxNames): string {
  return `UPDATE ${names.qualified} SET error = $2 WHERE id = $1::bigint`;
}
