/**
 * The dashboard in a real browser: Debian's Chromium (/usr/bin/chromium; .ci/run installs it)
 * driven by playwright-core, headless, on every broker. The page loads and its counts change as
 * jobs run; a failed job is opened, retried, and then shows as succeeded; a hostile argument
 * renders as text (no element, no script); a read-only dashboard offers no action; a refused
 * authorisation gets 403. Screenshots go to test-results/dashboard/ (git-ignored).
 */
import { mkdirSync } from "node:fs";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { DashboardOptions } from "../dashboard/index.js";
import type { Engine } from "../lib/engine.js";
import { brokerFactories, type BrokerFactory } from "./helpers/brokers.js";
import { dashboardEngine, dashboardServers, runAll as runEngine } from "./helpers/dashboard.js";

const SHOTS = new URL("../test-results/dashboard/", import.meta.url).pathname;
const HOSTILE = "<img src=x onerror=alert(1)>";
let browser: Browser;
beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: process.env.CHARD_CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});
afterAll(async () => {
  await browser?.close();
});

const serveDashboard = dashboardServers();
const serve = async (options: DashboardOptions): Promise<string> =>
  (await serveDashboard({ sampleIntervalMs: 200, ...options })).base;

/** A new page that fails the test on a script error or a dialog (an alert would be a script run from job data). */
async function newPage(): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  const problems: string[] = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("dialog", (d) => {
    problems.push(`dialog: ${d.message()}`);
    void d.dismiss();
  });
  return { page, problems };
}

describe.each(brokerFactories())("$name broker", ({ name, world }: BrokerFactory) => {
  let engine: Engine;
  const setup = (): Engine => (engine = dashboardEngine(world));
  const runAll = (): Promise<void> => runEngine(engine);

  test("the page loads and its counts change as jobs run", async () => {
    setup();
    const base = await serve({ engines: [engine], title: "Chard test" });
    const { page, problems } = await newPage();
    await page.goto(base);
    await expect.poll(() => page.locator("#live").textContent(), { timeout: 10_000 }).toBe("live");
    expect(await page.locator('[data-testid="total-succeededTotal"] .n').textContent()).toBe("0");
    for (let i = 0; i < 3; i++) await engine.schedule("plain");
    await expect
      .poll(() => page.locator('[data-testid="total-queued"] .n').textContent(), { timeout: 10_000 })
      .toBe("3");
    await runAll();
    await expect
      .poll(() => page.locator('[data-testid="total-succeededTotal"] .n').textContent(), { timeout: 10_000 })
      .toBe("3");
    await page.screenshot({ path: `${SHOTS}overview-${name}.png` });
    expect(problems).toEqual([]);
    await page.close();
  });

  test("a failed job is opened and retried, then shows as succeeded; its hostile argument is text", async () => {
    setup();
    const job = await engine.schedule("flaky", HOSTILE);
    await runAll();
    const base = await serve({ engines: [engine] });
    const { page, problems } = await newPage();
    await page.goto(`${base}#/jobs?state=failed`);
    const row = page.locator(`tr[data-job="${job.id}"]`);
    await expect.poll(() => row.count(), { timeout: 10_000 }).toBe(1);
    expect(await row.locator("td.mono").textContent()).toBe(JSON.stringify([HOSTILE]));
    await row.locator("a").first().click();
    await expect
      .poll(() => page.locator('[data-testid="job-state"]').textContent(), { timeout: 10_000 })
      .toBe("failed");
    expect(await page.locator('[data-testid="job-args"]').textContent()).toContain(HOSTILE);
    expect(await page.locator('[data-testid="job-error"]').textContent()).toContain(`first run of ${HOSTILE} fails`);
    // Text only: no element made of it anywhere on the page.
    expect(await page.locator("main img").count()).toBe(0);
    await page.screenshot({ path: `${SHOTS}failed-job-${name}.png` });
    await page.locator('button[data-action="retry"]').click();
    await expect.poll(async () => (await engine.getJob(job.id))?.state, { timeout: 10_000 }).toBe("queued");
    await runAll();
    await expect
      .poll(() => page.locator('[data-testid="job-state"]').textContent(), { timeout: 10_000 })
      .toBe("succeeded");
    await page.screenshot({ path: `${SHOTS}retried-job-${name}.png` });
    expect(problems).toEqual([]);
    await page.close();
  });

  test("a read-only dashboard offers no action; a refused authorisation gets 403", async () => {
    setup();
    const job = await engine.schedule("flaky", "x");
    await runAll();
    const base = await serve({ engines: [engine], readOnly: true });
    const { page, problems } = await newPage();
    await page.goto(base);
    await expect
      .poll(() => page.locator('[data-testid="queue-table"] tr[data-name]').count(), { timeout: 10_000 })
      .toBe(1);
    expect(await page.locator("button").count()).toBe(0);
    await page.goto(`${base}#/job?id=${job.id}`);
    await expect
      .poll(() => page.locator('[data-testid="job-state"]').textContent(), { timeout: 10_000 })
      .toBe("failed");
    expect(await page.locator("button").count()).toBe(0);
    expect(problems).toEqual([]);

    const refused = await serve({ engines: [engine], authorize: () => false });
    const response = await page.goto(refused);
    expect(response?.status()).toBe(403);
    await page.close();
  });
});
