import { InvalidOptionError } from "./errors.js";

/** What Chard logs through: console, pino and most loggers fit. */
export interface Logger {
  debug(message: string, ...rest: unknown[]): void;
  info(message: string, ...rest: unknown[]): void;
  warn(message: string, ...rest: unknown[]): void;
  error(message: string, ...rest: unknown[]): void;
}

const consoleLogger: Logger = {
  // The default logger: the only place Chard writes to the console.
  debug: () => {},
  info: (m, ...r) => console.info(`[chard] ${m}`, ...r),
  warn: (m, ...r) => console.warn(`[chard] ${m}`, ...r),
  error: (m, ...r) => console.error(`[chard] ${m}`, ...r),
};

const LEVELS = ["debug", "info", "warn", "error"] as const;

/** `logger`, with every call that throws made harmless: logging can never break a job or a worker. */
function safe(logger: Logger): Logger {
  const level =
    (name: (typeof LEVELS)[number]) =>
    (message: string, ...rest: unknown[]): void => {
      try {
        logger[name](message, ...rest);
      } catch {
        // Nowhere left to report it: the logger is what failed.
      }
    };
  return { debug: level("debug"), info: level("info"), warn: level("warn"), error: level("error") };
}

let current: Logger = consoleLogger;

/**
 * Replaces the library logger (console by default). Pass `undefined` to restore the default. A
 * logger call that throws is ignored.
 * @throws InvalidOptionError when a level method is missing.
 */
export function setLogger(logger: Logger | undefined): void {
  if (logger !== undefined) {
    for (const level of LEVELS) {
      if (typeof logger[level] !== "function") {
        throw new InvalidOptionError(
          `setLogger: the logger has no ${level}() method; pass console, pino or an object with debug/info/warn/error`,
        );
      }
    }
  }
  current = logger === undefined ? consoleLogger : safe(logger);
}

/** The library logger in force. */
export function getLogger(): Logger {
  return current;
}
