/** Every command's implementation, by name (loaded by `run` once the command line is known to need one). */
import type { CommandName } from "../args.js";
import type { Command } from "../context.js";
import { cancel, del, pause, promote, purge, resume, retry } from "./act.js";
import { job, jobs, schedules, status, workers } from "./inspect.js";
import { watch } from "./watch.js";

export { DEFAULT_NAMESPACE } from "../../lib/engine.js";

/** The commands that run on an engine (all but `help`). */
export const IMPLEMENTATIONS: Readonly<Record<Exclude<CommandName, "help">, Command>> = {
  status,
  jobs,
  job,
  retry,
  cancel,
  delete: del,
  promote,
  purge,
  pause,
  resume,
  workers,
  schedules,
  watch,
};
