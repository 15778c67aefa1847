// Copies the Redis broker's Lua scripts next to the compiled JavaScript (tsc does not copy them).
import { cpSync } from "node:fs";
cpSync("brokers/redis/scripts", "dist/brokers/redis/scripts", { recursive: true });
