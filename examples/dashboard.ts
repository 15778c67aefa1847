/**
 * The dashboard (chard/dashboard) on a busy demo: jobs keep coming, a fifth of them fail for good,
 * some are scheduled a minute ahead, one task is slow, a cron schedule ticks. On MemoryBroker by
 * default; `--redis URL` to use Redis. Serves the dashboard and prints its URL; Ctrl-C stops it.
 * Run it with `npm run example:dashboard` (`-- --port 3000` for a fixed port).
 */
import { createServer } from "node:http";
import { Engine, MemoryBroker, RedisBroker, setLogger, type Broker } from "../lib/index.js";
import { createDashboard } from "../dashboard/index.js";

setLogger({ debug() {}, info() {}, warn() {}, error() {} });
const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const redisUrl = arg("--redis");
const port = Number(arg("--port") ?? 0);

const make = (): Broker => (redisUrl ? new RedisBroker(redisUrl) : new MemoryBroker());
const shop = new Engine(make(), "shop");
const mail = new Engine(make(), "mail");
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const charge = shop.task(
  "charge",
  async (order: string, cents: number) => {
    await sleep(20 + Math.random() * 80);
    if (cents % 5 === 0) throw new Error(`card declined for ${order}`);
    return { order, charged: cents };
  },
  { maxRetries: 1, keepResult: true },
);
const report = shop.task("report", async (day: string) => {
  await sleep(1_500);
  return `report of ${day}`;
});
const send = mail.task("send", async (_to: string) => sleep(10 + Math.random() * 30), { queue: "emails" });
await shop.upsertSchedule("report-every-10s", report, { cron: "*/10 * * * * *", args: ["today"] });

const workers = [shop.startWorkers({ number: 8 }), mail.startWorkers({ number: 4, queue: "emails" })];
let n = 0;
const producer = setInterval(() => {
  for (let i = 0; i < 5; i++) {
    n++;
    void shop.schedule(charge, `A-${n}`, 100 + Math.floor(Math.random() * 900));
    void mail.schedule(send, `customer${n}@example.com`);
  }
  if (n % 50 === 0) void shop.scheduleAt(charge, new Date(Date.now() + 60_000), `later-${n}`, 1234);
}, 200);

const dashboard = createDashboard({ engines: [shop, mail], title: "Chard demo" });
const server = createServer(dashboard);
server.listen(port, "127.0.0.1", () => {
  const address = server.address();
  const p = typeof address === "object" && address ? address.port : port;
  console.log(
    `Chard dashboard: http://127.0.0.1:${p}/ (${redisUrl ? `Redis ${redisUrl}` : "MemoryBroker"}); Ctrl-C stops`,
  );
});

process.once("SIGINT", () => {
  clearInterval(producer);
  server.close();
  void (async () => {
    await dashboard.close();
    await Promise.all([shop.close(), mail.close()]);
    await Promise.all(workers);
  })();
});
