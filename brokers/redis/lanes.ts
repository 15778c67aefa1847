/**
 * Producer lanes of a RedisBroker: what makes a re-sent enqueue call store its jobs once without a
 * key per call. A lane carries one call at a time; each call takes the lane's next sequence
 * number, and every attempt of that call sends the same one, so the lane's STRING in Redis
 * (`<p>:producer:<broker id>:<n>`, chard_producer_turn) needs to hold only the highest number
 * applied: a call at or below it is a repeat, or a late attempt of an earlier call, and writes
 * nothing. Every call that may be on the wire beside another takes a free lane (the coalesced
 * enqueues, at most `MAX_ENQUEUES_IN_FLIGHT` at once; the scheduler's claims), so a broker has as
 * many lanes as it ever had calls at once, each a key of a few bytes that expires 10 minutes after
 * its last call.
 */
import type { ProducerTurn } from "./calls.js";

/** The lanes of one broker (`brokerId`): `take` a turn before a call, `give` the lane back once it settled. */
export class ProducerLanes {
  readonly #brokerId: string;
  /** The last sequence number of each lane (index = lane number). */
  readonly #seqs: number[] = [];
  /** The lanes no call holds, the lowest last (taken first). */
  readonly #free: number[] = [];

  constructor(brokerId: string) {
    this.#brokerId = brokerId;
  }

  /** A free lane (the lowest, or a new one) and its next sequence number. */
  take(): ProducerTurn & { readonly index: number } {
    const index = this.#free.pop() ?? this.#seqs.length;
    const seq = (this.#seqs[index] ?? 0) + 1;
    this.#seqs[index] = seq;
    return { lane: `${this.#brokerId}:${index}`, seq, index };
  }

  /** Gives a lane back once its call settled (applied, or failed after its last attempt). */
  give(turn: { readonly index: number }): void {
    this.#free.push(turn.index);
    if (this.#free.length > 1) this.#free.sort((a, b) => b - a);
  }
}
