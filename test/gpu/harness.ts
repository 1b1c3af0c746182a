/**
 * A framework-neutral GPU test suite: a list of named async cases that each get a GpuContext.
 * The same cases run under Deno (test/deno/gpu_test.ts) and in headless Chromium
 * (test/browser/gpu.entry.ts driven by test/browser.test.ts), so both runtimes are held to the
 * same float64 references.
 */
import type { GpuContext } from "../../src/gpu/context.ts";

export interface GpuCase {
  name: string;
  run(ctx: GpuContext): Promise<void>;
}

export function expectThrows(label: string, pattern: RegExp, errorClass: string, fn: () => unknown) {
  return (async () => {
    try {
      await fn();
    } catch (e) {
      const err = e as Error;
      if (err.name !== errorClass || !pattern.test(err.message)) {
        throw new Error(`${label}: expected ${errorClass} matching ${pattern}, got ${err.name}: ${err.message}`);
      }
      return;
    }
    throw new Error(`${label}: expected ${errorClass} matching ${pattern}, but nothing was thrown`);
  })();
}

export function check(condition: boolean, message: string) {
  if (!condition) throw new Error(message);
}
