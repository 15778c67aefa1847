/** The onion runner of enqueue and execute middlewares (lib/middleware.ts), without a broker. */
import { describe, expect, test } from "vitest";
import { StateError } from "../lib/errors.js";
import { runChain } from "../lib/middleware.js";

type Mw = (context: string[], next: () => Promise<string>) => unknown;

const run = (mws: Mw[], core: () => Promise<string> = () => Promise.resolve("core")) => {
  const trace: string[] = [];
  return { trace, done: runChain(mws, trace, core, "execute") };
};

describe("runChain", () => {
  test("with no middleware it resolves with the core's value", async () => {
    await expect(run([]).done).resolves.toBe("core");
  });

  test("every next() resolves with the core's value, whatever the inner middlewares return", async () => {
    const seen: string[] = [];
    const { done } = run([
      async (_t, next) => void seen.push(`outer got ${await next()}`),
      async (_t, next) => {
        await next();
        return "inner's own value";
      },
    ]);
    await expect(done).resolves.toBe("core");
    expect(seen).toEqual(["outer got core"]);
  });

  test("an inner middleware's error swallowed by an outer one still rejects the chain", async () => {
    const { done } = run([
      async (_t, next) => {
        await next().catch(() => undefined);
      },
      () => {
        throw new Error("inner refused");
      },
    ]);
    await expect(done).rejects.toThrow("inner refused");
  });

  test("the outermost middleware that throws gives the chain its error", async () => {
    const { done } = run(
      [
        async (_t, next) => {
          await next().catch((e: Error) => {
            throw new Error(`outer saw ${e.message}`);
          });
        },
      ],
      () => Promise.reject(new Error("core failed")),
    );
    await expect(done).rejects.toThrow("outer saw core failed");
  });

  test("a next() not awaited: the chain waits for the rest and reports its error, with no unhandled rejection", async () => {
    let finish!: () => void;
    const core = () => new Promise<string>((_, reject) => (finish = () => reject(new Error("late core error"))));
    const { done } = run(
      [
        (_t, next) => {
          void next();
        },
      ],
      core,
    );
    let settled = false;
    void done.then(
      () => (settled = true),
      () => (settled = true),
    );
    await new Promise((r) => setImmediate(r)); // the middleware has returned; the core runs on
    expect(settled).toBe(false);
    finish();
    await expect(done).rejects.toThrow("late core error");
  });

  test("resolving without next() and calling next() twice are StateErrors", async () => {
    await expect(run([() => undefined]).done).rejects.toThrow(StateError);
    const twice = run([
      async (_t, next) => {
        await next();
        await next();
      },
    ]);
    await expect(twice.done).rejects.toThrow(/called next\(\) twice/);
  });
});
