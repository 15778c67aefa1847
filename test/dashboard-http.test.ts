/**
 * The dashboard's HTTP surface (chard/dashboard) on every broker, through a real `node:http`
 * server: the page and its assets, the JSON API over the operations API, search by id, key and
 * task, the live stream, the actions and their guards (CSRF token, cross-site requests,
 * read-only, the authorisation hook), mounting under a prefix with `next`, and `close()`.
 */
import type { IncomingMessage } from "node:http";
import { describe, expect, test } from "vitest";
import { createDashboard, type DashboardOptions } from "../dashboard/index.js";
import type { Engine } from "../lib/engine.js";
import { InvalidOptionError } from "../lib/errors.js";
import { brokerFactories, type BrokerFactory } from "./helpers/brokers.js";
import { dashboardEngine, dashboardServers, runAll as runEngine } from "./helpers/dashboard.js";
import { until } from "./helpers/engines.js";

const serve = dashboardServers();

const token = async (base: string): Promise<string> =>
  /name="chard-csrf" content="([0-9a-f]+)"/.exec(await (await fetch(base)).text())![1]!;

async function json<T = Record<string, unknown>>(url: string): Promise<{ status: number; body: T }> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as T };
}

function post(base: string, body: unknown, headers: Record<string, string>): Promise<Response> {
  return fetch(`${base}api/action`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
}

describe.each(brokerFactories())("$name broker", ({ world }: BrokerFactory) => {
  let engine: Engine;
  const setup = (): Engine => (engine = dashboardEngine(world));
  const runAll = (): Promise<void> => runEngine(engine);

  test("the page, its assets and the overview, jobs, job, workers and schedules of the API", async () => {
    setup();
    const { base } = await serve({ engines: [engine], title: "Ops <b>" });
    const page = await fetch(base);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-security-policy")).toMatch(/script-src 'self'/);
    const html = await page.text();
    expect(html).toContain("<title>Ops &#60;b&#62;</title>");
    expect(html).toMatch(/name="chard-read-only" content="false"/);
    expect((await fetch(`${base}assets/app.js`)).headers.get("content-type")).toMatch(/javascript/);
    expect((await fetch(`${base}assets/nope.js`)).status).toBe(404);

    const failed = await engine.schedule("flaky", "<img src=x onerror=alert(1)>");
    await runAll();
    const { body: overview } = await json<{ engines: { namespace: string; total: Record<string, number> }[] }>(
      `${base}api/overview`,
    );
    expect(overview.engines[0]).toMatchObject({ namespace: engine.namespace, total: { failed: 1, failedTotal: 1 } });
    const { body: list } = await json<{ jobs: { id: string; args: unknown[] }[] }>(
      `${base}api/jobs?ns=${engine.namespace}&state=failed`,
    );
    expect(list.jobs.map((j) => j.id)).toEqual([failed.id]);
    expect(list.jobs[0]!.args).toEqual(["<img src=x onerror=alert(1)>"]);
    const { body: one } = await json(`${base}api/job?id=${failed.id}`);
    expect(one).toMatchObject({
      id: failed.id,
      state: "failed",
      error: { message: "first run of <img src=x onerror=alert(1)> fails" },
    });
    expect(one).not.toHaveProperty("job");
    expect((await json(`${base}api/job?id=00000000-0000-4000-8000-000000000000`)).status).toBe(404);
    expect((await json(`${base}api/jobs?state=nope`)).status).toBe(400);
    expect((await json(`${base}api/overview?ns=other`)).status).toBe(200); // the overview covers every engine
    expect((await json(`${base}api/jobs?ns=other&state=failed`)).status).toBe(404);
    expect((await json<{ workers: unknown[] }>(`${base}api/workers`)).body.workers).toEqual([]);
    await engine.upsertSchedule("tick", "plain", { every: 60 });
    expect(
      (await json<{ schedules: { name: string }[] }>(`${base}api/schedules`)).body.schedules.map((s) => s.name),
    ).toEqual(["tick"]);
  });

  test("search finds a job by id, by key, and the latest jobs of a task", async () => {
    setup();
    const { base } = await serve({ engines: [engine] });
    const keyed = await engine.schedule(engine.getTask("plain").with({ key: "order-42" }));
    const other = await engine.schedule("flaky", "x");
    const search = async (q: string): Promise<string[]> =>
      (await json<{ jobs: { id: string }[] }>(`${base}api/search?q=${encodeURIComponent(q)}`)).body.jobs.map(
        (j) => j.id,
      );
    expect(await search(other.id)).toEqual([other.id]);
    expect(await search("order-42")).toEqual([keyed.id]);
    expect(await search("flaky")).toEqual([other.id]);
    expect(await search("nothing-like-it")).toEqual([]);
  });

  test("an action needs the page's token and a same-origin request; retry runs the failed job again", async () => {
    setup();
    const { base } = await serve({ engines: [engine] });
    const job = await engine.schedule("flaky", "a");
    await runAll();
    const csrf = await token(base);
    const retry = { ns: engine.namespace, action: "retry", id: job.id };
    expect((await post(base, retry, {})).status).toBe(403);
    expect((await post(base, retry, { "x-chard-csrf": "0".repeat(48) })).status).toBe(403);
    expect((await post(base, retry, { "x-chard-csrf": csrf, "sec-fetch-site": "cross-site" })).status).toBe(403);
    expect((await post(base, retry, { "x-chard-csrf": csrf, origin: "http://evil.example" })).status).toBe(403);
    expect((await engine.getJob(job.id))?.state).toBe("failed");
    const ok = await post(base, retry, { "x-chard-csrf": csrf, "sec-fetch-site": "same-origin" });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ outcome: true });
    await runAll();
    expect((await engine.getJob(job.id))?.state).toBe("succeeded");
    const bad = await post(base, { action: "explode" }, { "x-chard-csrf": csrf });
    expect(bad.status).toBe(400);
    const pause = await post(base, { action: "pauseQueue", queue: "chard" }, { "x-chard-csrf": csrf });
    expect(await pause.json()).toEqual({ outcome: true });
    expect(await engine.isQueuePaused("chard")).toBe(true);
  });

  test("read-only refuses every action; a refused authorisation gets 403 on every route", async () => {
    setup();
    const readOnly = await serve({ engines: [engine], readOnly: true });
    expect(await (await fetch(readOnly.base)).text()).toMatch(/name="chard-read-only" content="true"/);
    const csrf = await token(readOnly.base);
    expect((await post(readOnly.base, { action: "pauseQueue", queue: "chard" }, { "x-chard-csrf": csrf })).status).toBe(
      403,
    );
    expect(await engine.isQueuePaused("chard")).toBe(false);

    const seen: string[] = [];
    const guarded = await serve({
      engines: [engine],
      authorize: async (req: IncomingMessage) => {
        seen.push(req.url ?? "");
        return req.headers.authorization === "Bearer letmein";
      },
    });
    for (const path of ["", "assets/app.js", "api/overview", "events"])
      expect((await fetch(`${guarded.base}${path}`)).status, path).toBe(403);
    expect((await post(guarded.base, { action: "pauseQueue", queue: "chard" }, {})).status).toBe(403);
    expect(seen.length).toBe(5);
    expect((await fetch(`${guarded.base}api/overview`, { headers: { authorization: "Bearer letmein" } })).status).toBe(
      200,
    );
  });

  test("mounted under a prefix: relative routes work, other paths go to next; the live stream pushes and close() ends it", async () => {
    setup();
    const { base, dashboard } = await serve({ engines: [engine] }, "/ops/chard");
    expect((await fetch(`${base}api/overview`)).status).toBe(200);
    const passed = await fetch(`${base}elsewhere`);
    expect([passed.status, await passed.text()]).toEqual([404, "passed on"]);
    const res = await fetch(`${base}events`);
    expect(res.headers.get("content-type")).toMatch(/text\/event-stream/);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let text = "";
    await until(
      async () => {
        const { value } = await reader.read();
        text += new TextDecoder().decode(value);
        return (text.match(/event: overview/g) ?? []).length >= 2;
      },
      5_000,
      "two overview events",
    );
    expect(text).toContain(`"namespace":"${engine.namespace}"`);
    await dashboard.close();
    for (let r = await reader.read(); !r.done; r = await reader.read());
    expect((await fetch(`${base}api/overview`)).status).toBe(503);
  });
});

test("bad options are refused when the dashboard is made", () => {
  expect(() => createDashboard({ engines: [] })).toThrow(InvalidOptionError);
  expect(() => createDashboard({ engines: [{} as Engine] })).toThrow(InvalidOptionError);
  expect(() => createDashboard(undefined as unknown as DashboardOptions)).toThrow(InvalidOptionError);
});
