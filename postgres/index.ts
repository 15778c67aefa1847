/**
 * chard/postgres: reliable signals and jobs atomic with the application's PostgreSQL transaction.
 *
 * `new Outbox(engine)` writes jobs and reliable signals as rows of an outbox table through the
 * client of the application's open transaction (a rollback leaves nothing, a commit leaves the
 * rows); `outbox.relay(pool).start()` enqueues committed rows through the engine's broker, exactly
 * once per row. `pg` (node-postgres) is an optional peer dependency: this entry imports none of
 * it; Kysely, Drizzle and Prisma fit through the adapters. See the README's Reliable signals section.
 */
export { Outbox, NotInTransactionError, type OutboxClient, type OutboxOptions } from "./outbox.js";
export { OutboxRelay, type OutboxPool, type OutboxPoolClient, type RelayOptions, type RelayStats } from "./relay.js";
export { DEFAULT_SCHEMA, DEFAULT_TABLE, migrationSql, outboxNames, type OutboxNames } from "./sql.js";
export {
  kyselyClient,
  drizzleClient,
  prismaClient,
  type KyselyLike,
  type DrizzleLike,
  type PrismaLike,
} from "./adapters.js";
