/**
 * The scheduler of an engine whose workers run: it claims the namespace's due schedules. It
 * sleeps until the earliest next fire time (read from the broker, at most `MAX_SLEEP_MS`), and
 * is woken when any process changes the schedules (`Broker.onSchedulesChanged`). Each due
 * schedule is planned here (`planFire`: the fire time, the next one, a misfire), because the
 * time-zone arithmetic runs in the client, and claimed by the broker in the call that enqueues
 * its job (`Broker.fireSchedule`): of the engines that race for one fire time, one claims it,
 * the others find it claimed (`lost`) and read again. Every timer goes through the broker's clock.
 */
import { BROKER_CALL_BACKOFF, backoffMs } from "./backoff.js";
import type { Broker, FireReport, ScheduleEntry } from "./broker.js";
import type { ClockTimer } from "./clock.js";
import { toError } from "./errors.js";
import type { Job } from "./jobs.js";
import { getLogger } from "./logger.js";
import { ScheduleTimes, claimOf, readDefinition } from "./schedules.js";

/** Longest sleep: a change whose notification was lost (a reconnection) is seen within it. */
export const MAX_SLEEP_MS = 60_000;

/** Most due schedules claimed per read. */
const BATCH = 100;

/** Most claims of one scheduler on the wire at once. */
const CLAIMS_IN_FLIGHT = 16;

/** Most reads of due schedules in one round (then a pause of a second). */
const MAX_PASSES = 20;

/** How long a schedule this version cannot read (or whose job cannot be built) is left alone. */
const UNREADABLE_RETRY_MS = 60_000;

/** What the engine does with a claim's outcome (signals, result binding). */
export type FiredHandler = (name: string, fireAtMs: number, job: Job, report: FireReport) => void;

/** The scheduler of one engine's running workers. */
export class Scheduler {
  readonly #broker: Broker;
  readonly #namespace: string;
  readonly #onFired: FiredHandler;
  /** Parsed definitions, by schedule name (re-parsed when the JSON changes). */
  readonly #times = new Map<string, { json: string; times: ScheduleTimes }>();
  /** Schedules left alone until a time (ms): unreadable here. */
  readonly #unreadable = new Map<string, number>();
  #timer: ClockTimer | undefined;
  #round: Promise<void> | undefined;
  #again = false;
  #stopped = true;
  #failures = 0;

  constructor(broker: Broker, namespace: string, onFired: FiredHandler) {
    this.#broker = broker;
    this.#namespace = namespace;
    this.#onFired = onFired;
  }

  /** Starts claiming (the broker must be started: its notifications wake the scheduler). */
  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#broker.onSchedulesChanged(() => this.#kick());
    this.#kick();
  }

  /** Stops claiming; resolves once the claims on the wire have landed. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#broker.onSchedulesChanged(undefined);
    this.#broker.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#round;
  }

  /** Runs a round now, or once the round in progress ends. */
  #kick(): void {
    if (this.#stopped) return;
    if (this.#round) {
      this.#again = true;
      return;
    }
    this.#broker.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#round = this.#claimDue().finally(() => {
      this.#round = undefined;
      if (this.#again) {
        this.#again = false;
        this.#kick();
      }
    });
  }

  #sleep(untilMs: number | undefined): void {
    if (this.#stopped || this.#again) return;
    const { clock } = this.#broker;
    const now = clock.now();
    const at = Math.min(untilMs ?? Infinity, now + MAX_SLEEP_MS);
    this.#timer = clock.setTimeout(
      () => {
        this.#timer = undefined;
        this.#kick();
      },
      Math.max(0, at - now),
    );
  }

  /** Claims what is due, reading again until nothing is, then sleeps until the next fire time. */
  async #claimDue(): Promise<void> {
    try {
      for (let pass = 0; ; pass++) {
        if (this.#stopped) return;
        if (pass === MAX_PASSES) {
          // Claims that keep finding their fire time taken (by peers firing many schedules at
          // once, or data this version cannot match): a breath, then again.
          this.#sleep(this.#broker.clock.now() + 1_000);
          return;
        }
        const now = this.#broker.clock.now();
        // A window of its own among the due ones: engines racing for a burst claim different ones.
        const read = await this.#broker.readSchedules({ dueBy: now, limit: BATCH, window: Math.random() });
        const due = read.entries.filter((e) => (this.#unreadable.get(e.name) ?? 0) <= now);
        if (due.length === 0 || this.#stopped) {
          let wake = read.nextAtMs;
          for (const until of this.#unreadable.values()) if (until > now) wake = Math.min(wake ?? until, until);
          this.#failures = 0;
          this.#sleep(wake);
          return;
        }
        await this.#claimAll(due, now);
      }
    } catch (e) {
      const delay = backoffMs(BROKER_CALL_BACKOFF, ++this.#failures);
      getLogger().warn(
        `${this.#namespace}: claiming due schedules failed (${toError(e).message}); trying again in ${delay} ms`,
      );
      this.#sleep(this.#broker.clock.now() + delay);
    }
  }

  /**
   * Claims `due` with at most `CLAIMS_IN_FLIGHT` on the wire, in an order of this scheduler's own:
   * the engines racing for the same fire times mostly claim different schedules first, instead of
   * all losing to each other down one list.
   */
  async #claimAll(due: readonly ScheduleEntry[], now: number): Promise<void> {
    const order = [...due];
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < order.length && !this.#stopped) await this.#claim(order[next++]!, now);
    };
    await Promise.all(Array.from({ length: Math.min(CLAIMS_IN_FLIGHT, order.length) }, lane));
  }

  async #claim(entry: ScheduleEntry, now: number): Promise<void> {
    const { name } = entry;
    let planned: ReturnType<typeof claimOf>;
    try {
      planned = claimOf(entry, this.#timesOf(entry), now);
    } catch (e) {
      this.#unreadable.set(name, now + UNREADABLE_RETRY_MS);
      getLogger().error(
        `${this.#namespace}: schedule ${JSON.stringify(name)} cannot be fired by this version (${toError(e).message}); left alone for ${UNREADABLE_RETRY_MS / 1000} s`,
      );
      return;
    }
    this.#unreadable.delete(name);
    const { claim, job } = planned;
    const report = await this.#broker.fireSchedule(claim, job);
    this.#onFired(name, claim.fireAtMs, job, report);
  }

  #timesOf(entry: ScheduleEntry): ScheduleTimes {
    const cached = this.#times.get(entry.name);
    if (cached?.json === entry.definition) return cached.times;
    const definition = readDefinition(entry.definition);
    if (!definition) throw new Error("its definition is not one this version reads");
    const times = new ScheduleTimes(definition);
    this.#times.set(entry.name, { json: entry.definition, times });
    return times;
  }
}
