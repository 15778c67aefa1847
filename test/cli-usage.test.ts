/**
 * The command line's grammar and exit codes that need no jobs: help, usage errors (exit 2, found
 * before any connection), connection failures (exit 4), where the URL and namespace come from.
 */
import { randomUUID } from "node:crypto";
import { createServer, type AddressInfo, type Socket } from "node:net";
import { describe, expect, test } from "vitest";
import { MemoryBroker } from "../brokers/memory.js";
import { Engine } from "../lib/engine.js";
import { COMMANDS } from "../cli/args.js";
import { CONNECT_TIMEOUT_MS } from "../cli/connect.js";
import { mustNotConnect, runCli } from "./helpers/cli.js";
import { freePort } from "./helpers/redis-server.js";

const ID = "0190a5b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b";

describe("chard help", () => {
  test("--help lists every command, the options of every command and the exit codes, on stdout", async () => {
    const { code, stdout, stderr } = await runCli(["--help"], mustNotConnect);
    expect(code).toBe(0);
    expect(stderr).toBe("");
    for (const name of Object.keys(COMMANDS)) expect(stdout).toMatch(new RegExp(`^  ${name} +\\S`, "m"));
    expect(stdout).toContain("--redis URL");
    expect(stdout).toContain("--namespace NS");
    for (const line of ["0  done", "1  failed", "2  usage", "3  not found", "4  cannot connect"])
      expect(stdout).toContain(line);
  });

  test("help <command> and <command> --help show its usage and its own options", async () => {
    const viaHelp = await runCli(["help", "jobs"], mustNotConnect);
    const viaFlag = await runCli(["jobs", "--help"], mustNotConnect);
    expect(viaHelp).toEqual(viaFlag);
    expect(viaHelp.code).toBe(0);
    expect(viaHelp.stdout).toMatch(/^Usage: chard jobs <state> \[--queue Q\]/);
    expect(viaHelp.stdout).toContain("--cursor C");
    expect(viaHelp.stdout).toContain("4  cannot connect");
    const retry = await runCli(["-h", "retry"], mustNotConnect);
    expect(retry.stdout).toContain("       chard retry --all [--queue Q] [--task T] [--limit N]");
  });

  test("no command prints the help on stderr and exits 2; help of an unknown command exits 2", async () => {
    const none = await runCli([], mustNotConnect);
    expect(none.code).toBe(2);
    expect(none.stdout).toBe("");
    expect(none.stderr).toContain("Usage: chard <command>");
    const unknown = await runCli(["help", "nope"], mustNotConnect);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown command "nope"');
  });
});

describe("chard usage errors exit 2 before connecting", () => {
  test.each([
    [["nope"], 'unknown command "nope"'],
    [["--namespace", "x", "nope", "--json"], 'unknown command "nope"'],
    [["status", "--bogus"], "status: Unknown option '--bogus'"],
    [["status", "extra"], 'status: unexpected argument "extra"'],
    [["jobs"], "jobs: missing argument; usage: chard jobs <state>"],
    [["jobs", "nope"], 'unknown state "nope"; one of waiting, retrying, queued, running, failed, succeeded'],
    [["jobs", "failed", "--limit", "0"], '--limit must be a whole number from 1 to 1000, got "0"'],
    [["jobs", "failed", "--limit", "1001"], "--limit must be a whole number from 1 to 1000"],
    [["jobs", "failed", "--limit", "ten"], '--limit must be a whole number from 1 to 1000, got "ten"'],
    [["jobs", "failed", "--queue"], "jobs: Option '--queue <value>' argument missing"],
    [["job", "42"], '"42" is not a job id (a UUID)'],
    [["retry"], "retry: give job ids or --all"],
    [["retry", "--all", ID], "retry: give job ids or --all, not both"],
    [["retry", ID, "--queue", "q"], "retry: --queue goes with --all"],
    [["retry", ID, "nope"], '"nope" is not a job id'],
    [["retry", "--all", "--limit", "-1"], "retry: Option '--limit' argument is ambiguous"],
    [["retry", "--all", "--limit=-1"], '--limit must be a whole number >= 1, got "-1"'],
    [["cancel"], "cancel: missing argument"],
    [["delete", "--state", "running", "--yes"], "running jobs cannot be deleted; cancel them"],
    [["delete", "--state", "failed"], "delete --state failed deletes jobs for good: add --yes"],
    [
      ["delete", "--state", "dead", "--yes"],
      'unknown state "dead"; one of waiting, retrying, queued, failed, succeeded',
    ],
    [["promote", "x"], '"x" is not a job id'],
    [["purge", "q"], 'purge removes every queued job of queue "q" for good: add --yes'],
    [["purge", "--yes"], "purge: missing argument"],
    [["pause"], "pause: give one of <queue>, --task T, --schedule S"],
    [["resume", "q", "--task", "t"], "resume: give one of <queue>, --task T, --schedule S"],
    [["watch", "--interval", "0"], '--interval must be seconds above 0 (at most 86400), got "0"'],
    [["watch", "--iterations", "0"], "--iterations must be a whole number >= 1"],
    [["watch", "--once", "--iterations", "2"], "watch: give --once or --iterations, not both"],
    [["schedules", "--upcoming", "101"], "--upcoming must be a whole number from 0 to 100"],
  ])("chard %j", async (argv, message) => {
    const { code, stdout, stderr } = await runCli(argv, mustNotConnect);
    expect(stdout).toBe("");
    expect(stderr).toContain(message);
    expect(code).toBe(2);
  });
});

describe("chard connection", () => {
  test("a Redis that cannot be reached exits 4 at once, naming the URL (its password hidden)", async () => {
    const port = await freePort(); // nothing listens there
    const started = Date.now();
    const { code, stdout, stderr } = await runCli(["--redis", `redis://:secret@127.0.0.1:${port}`, "status"]);
    expect(code).toBe(4);
    expect(stdout).toBe("");
    expect(stderr).toContain(`chard: cannot connect to redis://:***@127.0.0.1:${port}`);
    expect(stderr).toContain("ECONNREFUSED");
    expect(stderr).not.toContain("secret");
    expect(Date.now() - started).toBeLessThan(2000);
  });

  test("a server that accepts the connection and never answers exits 4 after the connect timeout", async () => {
    const sockets: Socket[] = [];
    const server = createServer((socket) => void sockets.push(socket));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const started = Date.now();
      const { code, stderr } = await runCli(["--redis", `redis://127.0.0.1:${port}`, "status"]);
      expect(code).toBe(4);
      expect(stderr).toContain(`cannot connect to redis://127.0.0.1:${port}: no answer within 3 s`);
      expect(Date.now() - started).toBeGreaterThanOrEqual(CONNECT_TIMEOUT_MS - 50);
      expect(Date.now() - started).toBeLessThan(CONNECT_TIMEOUT_MS + 2000);
    } finally {
      sockets.forEach((s) => s.destroy());
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test("the URL and namespace come from --redis and --namespace, else CHARD_REDIS_URL and CHARD_NAMESPACE, else the defaults", async () => {
    const seen: [string, string][] = [];
    const connect = (url: string, namespace: string) => {
      seen.push([url, namespace]);
      return new Engine(new MemoryBroker(), namespace);
    };
    const env = { CHARD_REDIS_URL: "redis://env:1", CHARD_NAMESPACE: `env-${randomUUID()}` };
    expect((await runCli(["pause", "q"], connect)).code).toBe(0);
    expect((await runCli(["pause", "q"], connect, { env })).code).toBe(0);
    expect(
      (await runCli(["--redis", "redis://flag:2", "pause", "q", "--namespace", "flag"], connect, { env })).code,
    ).toBe(0);
    expect(seen).toEqual([
      ["redis://127.0.0.1:6379", "chard"],
      ["redis://env:1", env.CHARD_NAMESPACE],
      ["redis://flag:2", "flag"],
    ]);
  });

  test("a namespace the engine refuses is a usage error (exit 2)", async () => {
    const { code, stderr } = await runCli(
      ["status", "--namespace", ""],
      (_url, ns) => new Engine(new MemoryBroker(), ns),
    );
    expect(code).toBe(2);
    expect(stderr).toContain("namespace must be a string of 1 to 200 characters");
  });
});
