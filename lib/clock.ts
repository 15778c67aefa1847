/** A source of wall-clock time in epoch milliseconds; brokers take one so tests can pin time. */
export interface Clock {
  now(): number;
}

/** The real clock (`Date.now`). */
export const systemClock: Clock = { now: () => Date.now() };
