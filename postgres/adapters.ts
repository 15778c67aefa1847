/**
 * Adapters for query builders and ORMs without node-postgres's `query(text, values)`: each turns
 * the transaction object of one into an `OutboxClient`. Each loads its package only when called
 * (an optional peer dependency), so importing chard/postgres loads none of them.
 */
import type { OutboxClient } from "./outbox.js";

/** The part of a Kysely transaction (or `Kysely` instance) the adapter uses. */
export interface KyselyLike {
  executeQuery(query: unknown): Promise<{ rows: unknown[]; numAffectedRows?: bigint }>;
}

/**
 * A Kysely transaction as an `OutboxClient`: `await db.transaction().execute(async (trx) => {
 * await outbox.schedule(kyselyClient(trx), ...) })`. Runs each statement with
 * `trx.executeQuery(CompiledQuery.raw(text, values))`.
 */
export function kyselyClient(trx: KyselyLike): OutboxClient {
  return {
    async query(text, values = []) {
      const { CompiledQuery } = await import("kysely");
      const result = await trx.executeQuery(CompiledQuery.raw(text, values));
      return {
        rows: result.rows,
        rowCount: result.numAffectedRows === undefined ? result.rows.length : Number(result.numAffectedRows),
      };
    },
  };
}

/** The part of a Drizzle transaction (node-postgres driver) the adapter uses. */
export interface DrizzleLike {
  execute(query: unknown): Promise<unknown>;
}

/**
 * A Drizzle transaction (drizzle-orm/node-postgres) as an `OutboxClient`:
 * `await db.transaction(async (tx) => { await outbox.schedule(drizzleClient(tx), ...) })`. Runs
 * each statement with `tx.execute(sql...)`, its `$n` placeholders turned into `sql.param`s.
 */
export function drizzleClient(tx: DrizzleLike): OutboxClient {
  return {
    async query(text, values = []) {
      const { sql } = await import("drizzle-orm");
      const chunks = text.split(/\$(\d+)/);
      const query = sql.empty();
      chunks.forEach((chunk, i) => {
        if (i % 2 === 0) query.append(sql.raw(chunk));
        else query.append(sql`${sql.param(values[Number(chunk) - 1])}`); // one parameter, arrays too
      });
      const result = (await tx.execute(query)) as { rows?: unknown[]; rowCount?: number | null } | unknown[];
      if (Array.isArray(result)) return { rows: result, rowCount: result.length };
      return { rows: result.rows ?? [], rowCount: result.rowCount ?? null };
    },
  };
}

/** The part of a Prisma interactive transaction the adapter uses. */
export interface PrismaLike {
  $executeRawUnsafe(query: string, ...values: unknown[]): Promise<number>;
}

/**
 * A Prisma interactive transaction as an `OutboxClient` (writes only: what the outbox's writers
 * send): `await prisma.$transaction(async (tx) => { await outbox.schedule(prismaClient(tx), ...) })`.
 * Runs each statement with `tx.$executeRawUnsafe(text, ...values)`, which answers the rows written.
 */
export function prismaClient(tx: PrismaLike): OutboxClient {
  return {
    async query(text, values = []) {
      const count = await tx.$executeRawUnsafe(text, ...values);
      return { rows: [], rowCount: count };
    },
  };
}
