/** What the dashboard tests share: an engine with a job that fails once, and dashboards served on a free port. */
import { createServer, type Server } from "node:http";
import { afterEach } from "vitest";
import { createDashboard, type DashboardHandler, type DashboardOptions } from "../../dashboard/index.js";
import type { Engine } from "../../lib/engine.js";
import type { BrokerFactory } from "./brokers.js";
import { trackEngine } from "./engines.js";

/**
 * An engine on `world` keeping 100 failed and 100 succeeded jobs, with the tasks "flaky" (its
 * first run in the engine fails, every later one succeeds; `maxRetries: 0`) and "plain".
 */
export function dashboardEngine(world: BrokerFactory["world"]): Engine {
  const engine = trackEngine(world().create(), undefined, {
    retention: { failed: { count: 100 }, succeeded: { count: 100 } },
  });
  let attempts = 0;
  engine.task(
    "flaky",
    (x: string) => {
      if (attempts++ === 0) throw new Error(`first run of ${x} fails`);
      return `done ${x}`;
    },
    { maxRetries: 0 },
  );
  engine.task("plain", () => undefined);
  return engine;
}

/** Runs the jobs of `engine` until its queue is empty. */
export const runAll = (engine: Engine): Promise<void> => engine.startWorkers({ number: 2, stopWhenQueueEmpty: true });

/**
 * Registers the clean-up of the current file (every dashboard closed, its server too) and returns
 * `serve`, which serves a dashboard of `options` (sampling every `sampleIntervalMs`, 100 ms by
 * default), under `prefix` when given, as Express's `app.use(prefix, dashboard)` does (other
 * paths go to `next`, which answers 404 "passed on"). Resolves with its base URL.
 */
export function dashboardServers(): (
  options: DashboardOptions,
  prefix?: string,
) => Promise<{ base: string; dashboard: DashboardHandler }> {
  const open: { server: Server; dashboard: DashboardHandler }[] = [];
  afterEach(async () => {
    for (const { server, dashboard } of open.splice(0)) {
      await dashboard.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
  return async (options, prefix = "") => {
    const dashboard = createDashboard({ sampleIntervalMs: 100, ...options });
    const server = createServer((req, res) => {
      if (prefix === "") return dashboard(req, res);
      if (!req.url?.startsWith(`${prefix}/`)) return void res.writeHead(418).end("not mine");
      req.url = req.url.slice(prefix.length);
      dashboard(req, res, () => void res.writeHead(404).end("passed on"));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    open.push({ server, dashboard });
    const address = server.address();
    const port = typeof address === "object" && address ? address.port : 0;
    return { base: `http://127.0.0.1:${port}${prefix}/`, dashboard };
  };
}
