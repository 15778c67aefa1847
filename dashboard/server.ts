/**
 * The dashboard's request handler: the page and its assets, a JSON API over the engines'
 * operations API, Server-Sent Events for live updates, and the actions (POST, guarded against
 * cross-site requests by a per-dashboard token that only the page knows, and by the browser's
 * `Origin` / `Sec-Fetch-Site`). Every request goes through `authorize` first. The page renders
 * every value with `textContent`: no job data is ever parsed as HTML.
 */
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Engine } from "../lib/engine.js";
import { ChardError, InvalidOptionError, describe } from "../lib/errors.js";
import type { JobInfo } from "../lib/job-info.js";
import { JOB_STATES, type JobStateName } from "../lib/operations.js";
import { Sampler } from "./sampler.js";

/** Options of `createDashboard`. */
export interface DashboardOptions {
  /** The engines (namespaces) it shows, each by its namespace. */
  engines: readonly Engine[];
  /** No action at all: the page offers none, and every POST is refused (403). Default false. */
  readOnly?: boolean;
  /**
   * Called for every request (page, assets, API, events, actions) before anything else: false
   * (or a promise of false) answers 403. Default: every request is allowed.
   */
  authorize?: (req: IncomingMessage) => boolean | Promise<boolean>;
  /** The page's title. Default "Chard". */
  title?: string;
  /** How often the throughput is sampled and the live view pushed (ms). Default 1,000. */
  sampleIntervalMs?: number;
}

/**
 * A request handler for `node:http` (`http.createServer(dashboard)`), and a middleware for
 * Express and Connect (`app.use("/chard", dashboard)`: with `next`, requests it does not serve go
 * on). URLs are relative to where it is mounted. `close()` stops its sampler and ends its event
 * streams.
 */
export interface DashboardHandler {
  (req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void): void;
  /** Stops sampling and closes the live streams; the handler then answers 503. */
  close(): Promise<void>;
}

const ASSETS: Record<string, string> = {
  "app.js": "text/javascript; charset=utf-8",
  "style.css": "text/css; charset=utf-8",
};
const CSRF_HEADER = "x-chard-csrf";
const MAX_BODY = 64 * 1024;
const SAMPLES_KEPT = 300;

/** A request the API refuses, with its status. */
class HttpError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/** The dashboard for `options.engines`. @throws InvalidOptionError for bad options */
export function createDashboard(options: DashboardOptions): DashboardHandler {
  if (options === null || typeof options !== "object")
    throw new InvalidOptionError(`createDashboard needs options, got ${describe(options)}`);
  const engines: readonly Engine[] = options.engines;
  const given: unknown = engines;
  if (
    !Array.isArray(given) ||
    engines.length === 0 ||
    engines.some((e) => typeof (e as Partial<Engine>)?.counts !== "function")
  )
    throw new InvalidOptionError(
      `createDashboard: engines must be a non-empty array of Engines, got ${describe(engines)}`,
    );
  const byNamespace = new Map<string, Engine>();
  for (const e of engines) {
    if (byNamespace.has(e.namespace))
      throw new InvalidOptionError(`createDashboard: two engines of namespace "${e.namespace}"`);
    byNamespace.set(e.namespace, e);
  }
  if (options.authorize !== undefined && typeof options.authorize !== "function")
    throw new InvalidOptionError(`createDashboard: authorize must be a function, got ${describe(options.authorize)}`);
  const interval = options.sampleIntervalMs ?? 1_000;
  if (!Number.isFinite(interval) || interval < 100)
    throw new InvalidOptionError(`createDashboard: sampleIntervalMs must be at least 100, got ${describe(interval)}`);
  const readOnly = options.readOnly === true;
  const title = options.title ?? "Chard";
  const token = randomBytes(24).toString("hex");
  const sampler = new Sampler(engines, interval, SAMPLES_KEPT);
  const streams = new Set<ServerResponse>();
  // After each sample, one overview of its counts for every open stream.
  sampler.onTick(() => {
    if (streams.size === 0) return;
    overview(true).then(
      (data) => {
        const message = `event: overview\ndata: ${JSON.stringify(data)}\n\n`;
        for (const res of streams) res.write(message);
      },
      () => undefined,
    );
  });
  let closed = false;
  let page: Promise<string> | undefined;

  const engineOf = (ns: string | null): Engine => {
    const engine = ns === null || ns === "" ? engines[0] : byNamespace.get(ns);
    if (!engine) throw new HttpError(404, `no engine of namespace ${JSON.stringify(ns)}`);
    return engine;
  };

  /** Every engine's counts and throughput: read now, or (`sampled`) those the last sample read. */
  const overview = async (sampled = false): Promise<unknown> => {
    return {
      title,
      readOnly,
      engines: await Promise.all(
        engines.map(async (engine) => {
          const [counts, pausedQueues, pausedTasks] = await Promise.all([
            (sampled && sampler.latest.get(engine.namespace)) || engine.counts(),
            engine.pausedQueues(),
            engine.pausedTasks(),
          ]);
          return {
            namespace: engine.namespace,
            total: counts.total,
            queues: [...counts.queues].map(([name, c]) => ({ name, ...c, paused: pausedQueues.includes(name) })),
            tasks: [...counts.tasks].map(([name, c]) => ({ name, ...c, paused: pausedTasks.includes(name) })),
            throughput: sampler.samples(engine.namespace),
          };
        }),
      ),
    };
  };

  const api = async (req: IncomingMessage, route: string, q: URLSearchParams): Promise<unknown> => {
    if (req.method === "POST") {
      if (route !== "api/action") throw new HttpError(404, "no such action route");
      return act(req);
    }
    if (req.method !== "GET" && req.method !== "HEAD") throw new HttpError(405, "GET or POST only");
    switch (route) {
      case "api/overview":
        return overview();
      case "api/jobs": {
        const state = q.get("state") ?? "failed";
        if (!(JOB_STATES as readonly string[]).includes(state))
          throw new HttpError(400, `state must be one of ${JOB_STATES.join(", ")}`);
        const page = await engineOf(q.get("ns")).jobs({
          state: state as JobStateName,
          order: q.get("order") === "oldest" ? "oldest" : "newest",
          limit: Math.min(200, Math.max(1, Number(q.get("limit") ?? 25) || 25)),
          ...(q.get("queue") ? { queue: q.get("queue")! } : {}),
          ...(q.get("task") ? { task: q.get("task")! } : {}),
          ...(q.get("cursor") ? { cursor: q.get("cursor")! } : {}),
        });
        return { jobs: page.jobs.map(view), cursor: page.cursor ?? null };
      }
      case "api/job": {
        const info = await engineOf(q.get("ns")).getJob(q.get("id") ?? "");
        if (!info) throw new HttpError(404, "no such job in this namespace");
        return view(info);
      }
      case "api/search":
        return { jobs: (await search(engineOf(q.get("ns")), (q.get("q") ?? "").trim())).map(view) };
      case "api/workers":
        return { workers: await engineOf(q.get("ns")).workers() };
      case "api/schedules":
        return { schedules: await engineOf(q.get("ns")).schedules() };
      default:
        throw new HttpError(404, "no such API route");
    }
  };

  const act = async (req: IncomingMessage): Promise<unknown> => {
    if (readOnly) throw new HttpError(403, "this dashboard is read-only");
    checkSameOrigin(req, token);
    const body = await readJson(req);
    const engine = engineOf(typeof body.ns === "string" ? body.ns : null);
    const text = (k: string): string => {
      const v = body[k];
      if (typeof v !== "string" || v === "") throw new HttpError(400, `the action needs "${k}"`);
      return v;
    };
    switch (body.action) {
      case "retry":
        return { outcome: await engine.retryJob(text("id")) };
      case "cancel":
        return { outcome: await engine.cancel(text("id")) };
      case "delete":
        return { outcome: await engine.deleteJob(text("id")) };
      case "promote":
        return { outcome: await engine.promoteJob(text("id")) };
      case "purge":
        return { outcome: await engine.purgeQueue(text("queue")) };
      case "pauseQueue":
        return { outcome: await engine.pauseQueue(text("queue")) };
      case "resumeQueue":
        return { outcome: await engine.resumeQueue(text("queue")) };
      case "pauseTask":
        return { outcome: await engine.pauseTask(text("task")) };
      case "resumeTask":
        return { outcome: await engine.resumeTask(text("task")) };
      case "pauseSchedule":
        return { outcome: await engine.pauseSchedule(text("schedule")) };
      case "resumeSchedule":
        return { outcome: await engine.resumeSchedule(text("schedule")) };
      default:
        throw new HttpError(400, `unknown action ${JSON.stringify(body.action)}`);
    }
  };

  const events = (req: IncomingMessage, res: ServerResponse): void => {
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      connection: "keep-alive",
      "x-content-type-options": "nosniff",
    });
    res.write(": chard\n\n");
    streams.add(res);
    overview().then(
      (data) => res.write(`event: overview\ndata: ${JSON.stringify(data)}\n\n`),
      () => undefined,
    );
    const end = (): void => void streams.delete(res);
    req.on("close", end);
    res.on("close", end);
  };

  const serve = async (req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void): Promise<void> => {
    if (closed) return send(res, 503, "text/plain; charset=utf-8", "the dashboard is closed");
    if (options.authorize && !(await options.authorize(req)))
      return send(res, 403, "text/plain; charset=utf-8", "forbidden");
    sampler.start();
    // Relative to where it is mounted: Express and Connect strip the mount path from req.url.
    const url = new URL(req.url ?? "/", "http://dashboard.invalid");
    const route = url.pathname.replace(/^\/+/, "");
    if (route === "" || route === "index.html") {
      page ??= readFile(new URL("./assets/index.html", import.meta.url), "utf8");
      const html = (await page)
        .replaceAll("{{title}}", escapeHtml(title))
        .replace("{{csrf}}", token)
        .replace("{{readOnly}}", readOnly ? "true" : "false");
      return send(res, 200, "text/html; charset=utf-8", html, { "content-security-policy": CSP });
    }
    if (route.startsWith("assets/")) {
      const name = route.slice("assets/".length);
      const type = ASSETS[name];
      if (!type) return notFound(res, next);
      return send(res, 200, type, await readFile(new URL(`./assets/${name}`, import.meta.url)), {
        "cache-control": "no-cache",
      });
    }
    if (route === "events") return events(req, res);
    if (route === "favicon.ico") return send(res, 204, "image/x-icon", "");
    if (route.startsWith("api/")) {
      try {
        const data = await api(req, route, url.searchParams);
        return send(res, 200, "application/json; charset=utf-8", JSON.stringify(data));
      } catch (e) {
        const status = e instanceof HttpError ? e.status : e instanceof ChardError ? 400 : 500;
        const message = e instanceof Error ? e.message : String(e);
        return send(res, status, "application/json; charset=utf-8", JSON.stringify({ error: message }));
      }
    }
    return notFound(res, next);
  };

  const handler = ((req, res, next) => {
    serve(req, res, next).catch((e: unknown) => {
      if (next) return next(e);
      if (!res.headersSent) send(res, 500, "text/plain; charset=utf-8", "internal error");
      else res.end();
    });
  }) as DashboardHandler;
  handler.close = async () => {
    closed = true;
    for (const res of streams) res.end();
    streams.clear();
    await sampler.stop();
  };
  return handler;
}

/** The page's policy: its own scripts and styles only, no inline script, no framing. */
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

function send(
  res: ServerResponse,
  status: number,
  type: string,
  body: string | Buffer,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, {
    "content-type": type,
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
    "referrer-policy": "same-origin",
    ...headers,
  });
  res.end(body);
}

function notFound(res: ServerResponse, next?: (error?: unknown) => void): void {
  if (next) next();
  else send(res, 404, "text/plain; charset=utf-8", "not found");
}

/** `&<>"'` as entities, for the title in the page's head. */
function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * Refuses a POST that a page of another site could have sent: it must carry the dashboard's
 * token in a header (a cross-site form cannot set headers; a cross-site fetch that sets one is
 * preflighted, and nothing here answers a preflight), and when the browser says where it comes
 * from, that must be this origin.
 */
function checkSameOrigin(req: IncomingMessage, token: string): void {
  if (req.headers[CSRF_HEADER] !== token) throw new HttpError(403, "missing or wrong CSRF token");
  const site = req.headers["sec-fetch-site"];
  if (site !== undefined && site !== "same-origin" && site !== "none")
    throw new HttpError(403, `cross-site request refused (${site})`);
  const origin = req.headers.origin;
  if (origin !== undefined && req.headers.host !== undefined && new URL(origin).host !== req.headers.host)
    throw new HttpError(403, "cross-origin request refused");
  if (!String(req.headers["content-type"] ?? "").startsWith("application/json"))
    throw new HttpError(415, "actions take application/json");
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new HttpError(413, "the body is too large");
    chunks.push(chunk);
  }
  try {
    const body: unknown = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    if (body !== null && typeof body === "object" && !Array.isArray(body)) return body as Record<string, unknown>;
  } catch {
    // below
  }
  throw new HttpError(400, "the body must be a JSON object");
}

const JOB_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The jobs `q` names: the job of that id, the holder of that key, or the latest jobs of that task. */
async function search(engine: Engine, q: string): Promise<JobInfo[]> {
  if (q === "") return [];
  if (JOB_ID.test(q)) {
    const info = await engine.getJob(q);
    if (info) return [info];
  }
  const found: JobInfo[] = [];
  const holder = await engine.getJobByKey(q).catch(() => undefined);
  if (holder) {
    const info = await engine.getJob(holder.id);
    if (info) found.push(info);
  }
  const counts = await engine.counts();
  if (counts.tasks.has(q)) {
    const pages = await Promise.all(
      JOB_STATES.map((state) => engine.jobs({ state, task: q, order: "newest", limit: 10 })),
    );
    for (const page of pages) found.push(...page.jobs);
  }
  return found;
}

/** A job as the API sends it: its info without the Job object. */
function view(info: JobInfo): Omit<JobInfo, "job"> {
  const { job: _job, ...rest } = info;
  return rest;
}
