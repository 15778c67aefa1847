/**
 * The action commands: retry, cancel, delete, promote, purge, pause, resume. Each id is acted on
 * in turn; one that cannot be is reported on stderr and the others go on. The exit code is the
 * highest of the ids' (3 when one is unknown, else 1 when one could not be done).
 */
import type { BulkReport } from "../../lib/job-info.js";
import type { JobFilter } from "../../lib/actions.js";
import { StateError, UnknownJobError } from "../../lib/errors.js";
import { JOB_STATES, type JobStateName } from "../../lib/operations.js";
import { flag, intOption, stringOption, usage, type Invocation } from "../args.js";
import type { Command, Context } from "../context.js";
import { EXIT, exitCodeOf, type ExitCode } from "../errors.js";
import { checkIdArgs, checkState } from "./inspect.js";

/** What acting on one id did: a line for stdout, or why not and its exit code. */
type Outcome = { done: string } | { failed: string; code: ExitCode };

const missing = (ctx: Context, id: string): Outcome => ({
  failed: `no job ${id} in namespace "${ctx.engine.namespace}"`,
  code: EXIT.notFound,
});

/** Why an action did not apply to `id`: unknown (3), or in another state (1). */
async function notDone(ctx: Context, id: string, needs: string): Promise<Outcome> {
  const info = await ctx.engine.getJob(id);
  if (!info) return missing(ctx, id);
  return { failed: `job ${id} is ${info.state}, not ${needs}`, code: EXIT.failed };
}

/** Acts on each id argument in turn; StateError and UnknownJobError are outcomes, anything else ends the command. */
async function eachId(ctx: Context, act: (id: string) => Promise<Outcome>): Promise<ExitCode> {
  let code: ExitCode = EXIT.ok;
  for (const id of ctx.inv.args) {
    let outcome: Outcome;
    try {
      outcome = await act(id);
    } catch (e) {
      if (!(e instanceof StateError || e instanceof UnknownJobError)) throw e;
      outcome = { failed: e.message, code: exitCodeOf(e) };
    }
    if ("done" in outcome) ctx.out(`${outcome.done}\n`);
    else {
      ctx.err(`${outcome.failed}\n`);
      code = Math.max(code, outcome.code) as ExitCode;
    }
  }
  return code;
}

/** The `--queue`, `--task` and `--limit` of a bulk action. */
function filterOf(inv: Invocation): JobFilter {
  const filter: JobFilter = {};
  const queue = stringOption(inv, "queue");
  const task = stringOption(inv, "task");
  const limit = intOption(inv, "limit", 1);
  if (queue !== undefined) filter.queue = queue;
  if (task !== undefined) filter.task = task;
  if (limit !== undefined) filter.limit = limit;
  return filter;
}

/** Ids or a bulk flag, not both, not neither; filters only with the bulk flag. */
function checkIdsOrBulk(inv: Invocation, bulk: boolean, bulkName: string): void {
  const filters = ["queue", "task", "limit"].filter((o) => inv.options[o] !== undefined);
  if (bulk && inv.args.length > 0) throw usage(`${inv.command}: give job ids or ${bulkName}, not both`);
  if (!bulk && inv.args.length === 0) throw usage(`${inv.command}: give job ids or ${bulkName}`);
  if (!bulk && filters.length > 0) throw usage(`${inv.command}: --${filters[0]} goes with ${bulkName}`);
  checkIdArgs(inv.args);
  intOption(inv, "limit", 1);
}

/** Prints a bulk report: how many, then the ids skipped on stderr (exit 1 when some were). */
function reportBulk(ctx: Context, report: BulkReport, verb: string, why: string): ExitCode {
  ctx.out(`${verb} ${report.done} job${report.done === 1 ? "" : "s"}\n`);
  if (report.skipped.length === 0) return EXIT.ok;
  ctx.err(`skipped ${report.skipped.length} (${why}): ${report.skipped.join(" ")}\n`);
  return EXIT.failed;
}

/** `chard retry <id...>` / `chard retry --all`. */
export const retry: Command = {
  check(inv) {
    checkIdsOrBulk(inv, flag(inv, "all"), "--all");
  },
  async run(ctx) {
    if (flag(ctx.inv, "all"))
      return reportBulk(
        ctx,
        await ctx.engine.retryJobs(filterOf(ctx.inv)),
        "retried",
        "gone meanwhile, or their key is held by another job",
      );
    return eachId(ctx, async (id) =>
      (await ctx.engine.retryJob(id)) ? { done: `retried ${id}` } : notDone(ctx, id, "failed"),
    );
  },
};

/** `chard cancel <id...>`. */
export const cancel: Command = {
  check(inv) {
    checkIdArgs(inv.args);
  },
  async run(ctx) {
    return eachId(ctx, async (id) => {
      await ctx.engine.cancel(id);
      return { done: `cancelled ${id}` };
    });
  },
};

const DELETABLE = JOB_STATES.filter((s) => s !== "running");

/** `chard delete <id...>` / `chard delete --state S --yes`. */
export const del: Command = {
  check(inv) {
    const state = stringOption(inv, "state");
    checkIdsOrBulk(inv, state !== undefined, "--state");
    if (state === undefined) return;
    if (state === "running") throw usage("delete: running jobs cannot be deleted; cancel them (chard cancel <id>)");
    checkState(state, DELETABLE);
    if (!flag(inv, "yes")) throw usage(`delete --state ${state} deletes jobs for good: add --yes`);
  },
  async run(ctx) {
    const state = stringOption(ctx.inv, "state");
    if (state !== undefined) {
      const report = await ctx.engine.deleteJobs(
        checkState(state, DELETABLE) as Exclude<JobStateName, "running">,
        filterOf(ctx.inv),
      );
      return reportBulk(ctx, report, "deleted", "gone or started meanwhile");
    }
    return eachId(ctx, async (id) => ((await ctx.engine.deleteJob(id)) ? { done: `deleted ${id}` } : missing(ctx, id)));
  },
};

/** `chard promote <id...>`. */
export const promote: Command = {
  check(inv) {
    checkIdArgs(inv.args);
  },
  async run(ctx) {
    return eachId(ctx, async (id) =>
      (await ctx.engine.promoteJob(id)) ? { done: `promoted ${id}` } : notDone(ctx, id, "waiting or retrying"),
    );
  },
};

/** `chard purge <queue> --yes`. */
export const purge: Command = {
  check(inv) {
    if (!flag(inv, "yes"))
      throw usage(`purge removes every queued job of queue ${JSON.stringify(inv.args[0])} for good: add --yes`);
  },
  async run(ctx) {
    const queue = ctx.inv.args[0]!;
    const n = await ctx.engine.purgeQueue(queue);
    ctx.out(`purged ${n} job${n === 1 ? "" : "s"} from queue ${queue}\n`);
    return EXIT.ok;
  },
};

/** What `pause` and `resume` act on: exactly one of a queue, `--task` or `--schedule`. */
function targetOf(inv: Invocation): { kind: "queue" | "task" | "schedule"; name: string } {
  const given = [
    ...(inv.args[0] !== undefined ? [{ kind: "queue" as const, name: inv.args[0] }] : []),
    ...(["task", "schedule"] as const).flatMap((kind) => {
      const name = stringOption(inv, kind);
      return name === undefined ? [] : [{ kind, name }];
    }),
  ];
  if (given.length !== 1) throw usage(`${inv.command}: give one of <queue>, --task T, --schedule S`);
  return given[0]!;
}

function pausing(paused: boolean): Command {
  const verb = paused ? "paused" : "resumed";
  return {
    check: (inv) => void targetOf(inv),
    async run(ctx) {
      const { kind, name } = targetOf(ctx.inv);
      const e = ctx.engine;
      const changed =
        kind === "queue"
          ? await (paused ? e.pauseQueue(name) : e.resumeQueue(name))
          : kind === "task"
            ? await (paused ? e.pauseTask(name) : e.resumeTask(name))
            : await (paused ? e.pauseSchedule(name) : e.resumeSchedule(name));
      ctx.out(
        changed ? `${verb} ${kind} ${name}\n` : `${kind} ${name} was ${paused ? "already paused" : "not paused"}\n`,
      );
      return EXIT.ok;
    },
  };
}

/** `chard pause <queue>` / `--task T` / `--schedule S`. */
export const pause = pausing(true);
/** `chard resume <queue>` / `--task T` / `--schedule S`. */
export const resume = pausing(false);
