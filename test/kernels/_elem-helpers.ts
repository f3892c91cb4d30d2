// Helpers shared by the elementwise / stats kernel tests.
import type test from "tape";
import { LowbitError } from "../../src/runtime/errors.ts";

export function firstDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) if (!Object.is(a[i], b[i])) return i;
  return -1;
}

export function throwsCode(t: test.Test, fn: () => void, code: string, what: string): void {
  try {
    fn();
    t.fail(`${what}: should throw ${code}`);
  } catch (e) {
    t.ok(e instanceof LowbitError && e.code === code, `${what} → ${code} (${(e as Error).message})`);
  }
}

/** Channel counts every test sweeps: 1, odd, around the 4/8/16-lane boundaries. */
export const CHANNELS = [1, 2, 3, 5, 7, 12, 15, 16, 17, 31, 33, 48, 64];
