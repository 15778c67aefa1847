/** The read commands: status, jobs, job, workers, schedules. */
import { DEFAULT_PAGE, type JobQuery } from "../../lib/job-info.js";
import { isJobId } from "../../lib/jobs.js";
import { JOB_STATES, MAX_PAGE, type JobStateName } from "../../lib/operations.js";
import { flag, intOption, stringOption, usage, type Invocation } from "../args.js";
import type { Command, Context } from "../context.js";
import { CliError, EXIT } from "../errors.js";
import { countsJson, jobJson, scheduleJson, workerJson } from "../json.js";
import { jobView, jobsView, schedulesView, statusView, workersView } from "../views.js";

const printJson = (ctx: Context, value: unknown): void => ctx.out(`${JSON.stringify(value, null, 2)}\n`);

/**
 * Checks a state argument.
 * @throws CliError (usage) for one that is not a state.
 */
export function checkState(state: string, allowed: readonly string[] = JOB_STATES): JobStateName {
  if (!allowed.includes(state)) throw usage(`unknown state ${JSON.stringify(state)}; one of ${allowed.join(", ")}`);
  return state as JobStateName;
}

/**
 * Checks job id arguments.
 * @throws CliError (usage) for one that is not a job id.
 */
export function checkIdArgs(ids: readonly string[]): void {
  for (const id of ids) if (!isJobId(id)) throw usage(`${JSON.stringify(id)} is not a job id (a UUID)`);
}

/** `chard status`. */
export const status: Command = {
  async run(ctx) {
    const [counts, pausedQueues, pausedTasks] = await Promise.all([
      ctx.engine.counts(),
      ctx.engine.pausedQueues(),
      ctx.engine.pausedTasks(),
    ]);
    if (flag(ctx.inv, "json")) printJson(ctx, countsJson(counts, pausedQueues, pausedTasks));
    else ctx.out(statusView(counts, pausedQueues, pausedTasks, flag(ctx.inv, "tasks")));
    return EXIT.ok;
  },
};

/** `chard jobs <state>`. */
export const jobs: Command = {
  check(inv: Invocation) {
    checkState(inv.args[0]!);
    intOption(inv, "limit", 1, MAX_PAGE);
  },
  async run(ctx) {
    const query: JobQuery = {
      state: checkState(ctx.inv.args[0]!),
      order: flag(ctx.inv, "newest") ? "newest" : "oldest",
      limit: intOption(ctx.inv, "limit", 1, MAX_PAGE) ?? DEFAULT_PAGE,
    };
    for (const name of ["queue", "task", "cursor"] as const) {
      const value = stringOption(ctx.inv, name);
      if (value !== undefined) query[name] = value;
    }
    const page = await ctx.engine.jobs(query);
    if (flag(ctx.inv, "json")) {
      printJson(ctx, { jobs: page.jobs.map(jobJson), cursor: page.cursor ?? null });
      return EXIT.ok;
    }
    if (page.jobs.length > 0) ctx.out(jobsView(page.jobs, ctx.nowMs()));
    else ctx.err(`no ${query.state} jobs${page.cursor ? " in this page" : ""}\n`);
    if (page.cursor) ctx.err(`more may follow: add --cursor ${page.cursor}\n`);
    return EXIT.ok;
  },
};

/** `chard job <id>`. */
export const job: Command = {
  check(inv) {
    checkIdArgs(inv.args);
  },
  async run(ctx) {
    const id = ctx.inv.args[0]!;
    const info = await ctx.engine.getJob(id);
    if (!info) throw new CliError(`no job ${id} in namespace "${ctx.engine.namespace}"`, EXIT.notFound);
    if (flag(ctx.inv, "json")) printJson(ctx, jobJson(info));
    else ctx.out(jobView(info, ctx.nowMs()));
    return EXIT.ok;
  },
};

/** `chard workers`. */
export const workers: Command = {
  async run(ctx) {
    const list = await ctx.engine.workers();
    if (flag(ctx.inv, "json")) printJson(ctx, list.map(workerJson));
    else if (list.length > 0) ctx.out(workersView(list, ctx.nowMs()));
    else ctx.err(`no live worker in namespace "${ctx.engine.namespace}"\n`);
    return EXIT.ok;
  },
};

/** `chard schedules`. */
export const schedules: Command = {
  check(inv) {
    intOption(inv, "upcoming", 0, 100);
  },
  async run(ctx) {
    const list = await ctx.engine.schedules({ upcoming: intOption(ctx.inv, "upcoming", 0, 100) ?? 3 });
    if (flag(ctx.inv, "json")) printJson(ctx, list.map(scheduleJson));
    else if (list.length > 0) ctx.out(schedulesView(list));
    else ctx.err(`no schedule in namespace "${ctx.engine.namespace}"\n`);
    return EXIT.ok;
  },
};
