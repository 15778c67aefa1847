#!/usr/bin/env node
/**
 * The `chard` binary: runs the command line on the process's streams and sets the exit code.
 * SIGINT and SIGTERM stop the command (watch stops cleanly, closing its connection); a second
 * one exits at once.
 */
import { run } from "./run.js";

const controller = new AbortController();
const stop = (): void => {
  if (controller.signal.aborted) process.exit(130);
  controller.abort();
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);

process.exitCode = await run(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  signal: controller.signal,
});
process.off("SIGINT", stop);
process.off("SIGTERM", stop);
