// Copies what tsc does not next to the compiled JavaScript: the Redis broker's Lua scripts, and the
// outbox's SQL migration (chard/postgres/outbox.sql), the dashboard's page and assets.
import { cpSync } from "node:fs";
cpSync("brokers/redis/scripts", "dist/brokers/redis/scripts", { recursive: true });
cpSync("postgres/outbox.sql", "dist/postgres/outbox.sql");
cpSync("dashboard/assets", "dist/dashboard/assets", { recursive: true });
