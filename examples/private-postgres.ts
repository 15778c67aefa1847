/**
 * A private PostgreSQL server in a temporary directory, for the outbox's example, tests, soak and
 * bench: `initdb` and `pg_ctl` on a free loopback port, never the machine's own server on 5432.
 *
 * The server binaries are looked up in `CHARD_PG_BIN`, then on PATH, then in Debian's versioned
 * directories (`/usr/lib/postgresql/<major>/bin`, where the `postgresql` package puts them off
 * PATH). `initdb` and `pg_ctl` refuse to run as root: as root, they run as the `postgres` user
 * (Debian's package creates it) through `runuser`, in a directory that user owns. The server keeps
 * its data without fsync (a test server: only the machine crashing could lose what it wrote).
 */
import { execFile, execFileSync } from "node:child_process";
import { accessSync, chownSync, constants, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { promisify } from "node:util";
import { freePort } from "../test/helpers/redis-server.js";

const run = promisify(execFile);

/** A PostgreSQL server started by `startPostgres`. */
export interface PostgresServer {
  /** A connection string for the `postgres` superuser and database (trust authentication). */
  readonly url: string;
  readonly port: number;
  /** The temporary directory holding its data directory, socket and log. */
  readonly dir: string;
  /**
   * Stops the server: `"fast"` (the default) disconnects clients and shuts down cleanly;
   * `"immediate"` aborts as a crash would (recovery from the WAL at the next start).
   */
  stop(mode?: "fast" | "immediate"): Promise<void>;
  /** Starts it again on the same port and data directory, after `stop`. */
  start(): Promise<void>;
  /** Stops it for good and removes its directory. */
  close(): Promise<void>;
  /** `close()` at once, synchronously (an exit handler's last resort); never throws. */
  kill(): void;
}

/** Where `initdb` and `pg_ctl` are. @throws Error saying how to install them when they are not found. */
export function postgresBinDir(): string {
  const has = (dir: string): boolean => {
    try {
      accessSync(join(dir, "initdb"), constants.X_OK);
      accessSync(join(dir, "pg_ctl"), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  const fromEnv = process.env.CHARD_PG_BIN;
  if (fromEnv !== undefined && fromEnv !== "") {
    if (has(fromEnv)) return fromEnv;
    throw new Error(`CHARD_PG_BIN=${fromEnv} holds no initdb and pg_ctl`);
  }
  for (const dir of (process.env.PATH ?? "").split(delimiter)) if (dir !== "" && has(dir)) return dir;
  let majors: string[] = [];
  try {
    majors = readdirSync("/usr/lib/postgresql").sort((a, b) => Number(b) - Number(a));
  } catch {
    // no Debian package
  }
  for (const major of majors) {
    const dir = join("/usr/lib/postgresql", major, "bin");
    if (has(dir)) return dir;
  }
  throw new Error(
    "PostgreSQL's server binaries (initdb, pg_ctl) were not found on PATH, in CHARD_PG_BIN or in /usr/lib/postgresql/*/bin: install them (Debian: apt-get install postgresql)",
  );
}

/** The uid and gid of `user`. */
async function ids(user: string): Promise<{ uid: number; gid: number }> {
  try {
    const [uid, gid] = await Promise.all([run("id", ["-u", user]), run("id", ["-g", user])]);
    return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
  } catch {
    throw new Error(
      `initdb refuses to run as root and there is no "${user}" user to run it as: create one (Debian's postgresql package does)`,
    );
  }
}

/** Starts a private PostgreSQL server (see the module's comment); `close()` it when done. */
export async function startPostgres(options: { port?: number } = {}): Promise<PostgresServer> {
  const bin = postgresBinDir();
  const port = options.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), "chard-pg-"));
  const data = join(dir, "data");
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const { uid, gid } = await ids("postgres");
    chownSync(dir, uid, gid);
  }
  const command = (tool: string, args: string[]): [string, string[]] =>
    asRoot ? ["runuser", ["-u", "postgres", "--", join(bin, tool), ...args]] : [join(bin, tool), args];
  const pg = (tool: string, args: string[]): Promise<unknown> => run(...command(tool, args));
  const serverOptions = [
    `-p ${port}`,
    `-k ${dir}`,
    "-c listen_addresses=127.0.0.1",
    "-c fsync=off",
    "-c full_page_writes=off",
    "-c max_connections=200",
  ].join(" ");
  const start = async (): Promise<void> => {
    await pg("pg_ctl", ["-D", data, "-l", join(dir, "log"), "-o", serverOptions, "-w", "-t", "60", "start"]);
  };
  try {
    await pg("initdb", ["-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"]);
    await start();
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  let running = true;
  const stop = async (mode: "fast" | "immediate" = "fast"): Promise<void> => {
    if (!running) return;
    running = false;
    await pg("pg_ctl", ["-D", data, "-m", mode, "-w", "-t", "60", "stop"]);
  };
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    dir,
    stop,
    start: async () => {
      if (running) return;
      await start();
      running = true;
    },
    close: async () => {
      try {
        await stop("immediate");
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    kill: () => {
      try {
        if (running)
          execFileSync(...command("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"]), { stdio: "ignore" });
      } catch {
        // already stopped
      }
      running = false;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
