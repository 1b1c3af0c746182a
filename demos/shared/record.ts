/// <reference lib="dom" />
/**
 * The record a page keeps for tests (test/support/demoPage.ts) and for anyone curious in the
 * console, `window.__demo`: it exists (`ready: false`) as soon as this module loads;
 * `publish(numbers)` sets `ready: true`, stores the numbers the page shows and bumps `version`;
 * `publishError(e)` stores the message in `error`. A page that is recomputing calls `markBusy()`
 * first, so a test can wait for the next version after an input. `window.__demoSettled` waits for
 * the views drawn asynchronously (trackAsyncView).
 */

/** What the page publishes for tests (and for anyone curious, in the console). */
export interface DemoState {
  /** True once the page's first computation finished and its numbers are shown. */
  ready: boolean;
  /** The numbers the page shows, as plain data (same values as the text in the page). */
  numbers: Record<string, unknown> | null;
  /** An error message when the page failed (no WebGPU, an exception, device loss); else null. */
  error: string | null;
  /** Incremented by every publish(). */
  version: number;
  /** True between markBusy() and the next publish() / publishError(). */
  busy: boolean;
}

declare global {
  interface Window {
    __demo: DemoState;
    /** Resolves when every view drawn asynchronously shows its latest frame (tests, screenshots). */
    __demoSettled?: () => Promise<void>;
  }
}

if (typeof window !== "undefined" && !window.__demo) {
  window.__demo = { ready: false, numbers: null, error: null, version: 0, busy: true };
}

const asyncViews = new Set<() => Promise<void>>();
if (typeof window !== "undefined") {
  window.__demoSettled ??= async () => {
    for (const drawn of [...asyncViews]) await drawn();
  };
}

/**
 * Registers a view that draws asynchronously (a WebGPU render read back into a canvas, which a
 * resize blanks until the next frame lands): `drawn` resolves once it shows its latest frame.
 * Returns the unregister function.
 */
export function trackAsyncView(drawn: () => Promise<void>): () => void {
  asyncViews.add(drawn);
  return () => asyncViews.delete(drawn);
}

/** Publishes the numbers now shown in the page: ready = true, version + 1, busy = false. */
export function publish(numbers: Record<string, unknown>): void {
  const previous = window.__demo;
  window.__demo = { ready: true, numbers: structuredClone(numbers), error: null, version: (previous?.version ?? 0) + 1, busy: false };
}

/** Marks the page as recomputing (a test waits for the next publish). */
export function markBusy(): void {
  window.__demo = { ...window.__demo, busy: true };
}

/** Marks the page as idle again without new numbers (e.g. the user cancelled a recomputation). */
export function markIdle(): void {
  window.__demo = { ...window.__demo, busy: false };
}

/** Publishes a failure: tests see `error` set; the page's last numbers are kept. */
export function publishError(error: unknown): void {
  const previous = window.__demo;
  window.__demo = { ...previous, error: errorMessage(error), busy: false };
}

/** "Name: message" for an Error, String(x) otherwise. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.name && error.name !== "Error" ? `${error.name}: ${error.message}` : error.message;
  return String(error);
}
