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

let current: Logger = consoleLogger;

/** Replaces the library logger (console by default). Pass `undefined` to restore the default. */
export function setLogger(logger: Logger | undefined): void {
  if (logger !== undefined) {
    for (const level of ["debug", "info", "warn", "error"] as const) {
      if (typeof logger[level] !== "function") {
        throw new TypeError(`setLogger: the logger has no ${level}() method; pass console, pino or an object with debug/info/warn/error`);
      }
    }
  }
  current = logger ?? consoleLogger;
}

/** The library logger in force. */
export function getLogger(): Logger {
  return current;
}
