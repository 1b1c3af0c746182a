/**
 * Driving the browser demos (demos/index.html, demos/<page>/index.html) from vitest: one server on
 * the repository root and one headless Chromium (test/support/chromium.ts) per test file, pages
 * opened with query parameters, console errors collected, `window.__demo` (demos/shared/record.ts)
 * awaited, screenshots written to test-artifacts/<name>.png where CI keeps its artifacts. The
 * plain server sends no COOP/COEP headers (pages are not cross-origin isolated: the wasm engine
 * runs on one thread); `openDemo(..., { isolated: true })` uses a second server that sends them, as
 * `npm run demos` does (worker threads).
 *
 *   const demos = await startDemos();                 // beforeAll (bundles the demos first)
 *   const p = await openDemo(demos, "demos/spectrum/index.html", { k: 3 });
 *   const state = await p.waitReady();                // throws on window.__demo.error
 *   await p.screenshot("spectrum");
 *   expect(p.errors).toEqual([]);
 *   await demos.close();                              // afterAll
 */
import type { Server } from "node:http";
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Browser, Page } from "puppeteer-core";
import { bundleBrowser } from "../../build.mjs";
import { launchChromium, serveDirectory } from "./chromium.ts";

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "../..");
export const artifactsDir = join(repoRoot, "test-artifacts");

/** What demos/shared/record.ts publishes on window.__demo. */
export interface DemoState {
  ready: boolean;
  numbers: Record<string, unknown> | null;
  error: string | null;
  version: number;
  busy: boolean;
}

export interface DemoSession {
  browser: Browser;
  /** http://127.0.0.1:PORT, serving the repository root (no COOP/COEP headers). */
  url: string;
  /** The same files with the COOP/COEP headers that make a page cross-origin isolated (SharedArrayBuffer, wasm threads). */
  isolatedUrl: string;
  close(): Promise<void>;
}

/** Bundles the demos (build.mjs), serves the repository root and launches headless Chromium. */
export async function startDemos(options: { bundle?: boolean } = {}): Promise<DemoSession> {
  if (options.bundle !== false) await bundleBrowser();
  const { server, url }: { server: Server; url: string } = await serveDirectory(repoRoot);
  const isolated: { server: Server; url: string } = await serveDirectory(repoRoot, { isolated: true });
  let browser: Browser;
  try {
    browser = await launchChromium();
  } catch (e) {
    server.close();
    isolated.server.close();
    throw e;
  }
  return {
    browser,
    url,
    isolatedUrl: isolated.url,
    async close() {
      await browser.close().catch(() => {});
      server.close();
      isolated.server.close();
    },
  };
}

export interface DemoPage {
  page: Page;
  /** Console errors and uncaught page errors, in order. */
  errors: string[];
  /** Every console message ("type: text"), for failure messages. */
  log: string[];
  /** Waits for ready (or an error, which it throws with the page's log); returns the state. */
  waitReady(timeoutMs?: number): Promise<DemoState>;
  /** Waits until a publish newer than `version` (and not busy); returns the state. */
  waitForVersion(version: number, timeoutMs?: number): Promise<DemoState>;
  /** The current window.__demo. */
  state(): Promise<DemoState>;
  /** Main-thread tasks longer than 50 ms that started after `sincePageMs` (page clock): [start, ms]. */
  longTasks(sincePageMs?: number): Promise<[number, number][]>;
  /** The page's clock (performance.now()). */
  now(): Promise<number>;
  /** Full-page screenshot to test-artifacts/<name>.png; returns the path. */
  screenshot(name: string): Promise<string>;
  close(): Promise<void>;
}

/**
 * Opens `path` (relative to the repository root, e.g. "demos/index.html") with `query` as URL
 * parameters, collecting console errors from the start. The viewport is a laptop's (1280 x 800).
 * `withoutWebGPU` removes navigator.gpu first (the page must then explain, not go blank);
 * `isolated` serves it with COOP/COEP (cross-origin isolated, as `npm run demos` does).
 */
export async function openDemo(
  session: DemoSession,
  path: string,
  query: Record<string, string | number> = {},
  options: { withoutWebGPU?: boolean; isolated?: boolean } = {},
): Promise<DemoPage> {
  const page = await session.browser.newPage();
  await page.setViewport({ width: 1280, height: 800 });
  // Main-thread tasks over 50 ms (the page must stay responsive): window.__longTasks = [[start, ms]].
  await page.evaluateOnNewDocument(() => {
    const w = window as unknown as { __longTasks: [number, number][] };
    w.__longTasks = [];
    try {
      new PerformanceObserver((list) => {
        for (const e of list.getEntries()) w.__longTasks.push([e.startTime, e.duration]);
      }).observe({ type: "longtask", buffered: true });
    } catch {
      // no longtask timing in this browser
    }
  });
  if (options.withoutWebGPU) {
    // A browser without WebGPU: navigator.gpu is gone before any script of the page runs.
    await page.evaluateOnNewDocument(() => {
      delete (Navigator.prototype as { gpu?: unknown }).gpu;
    });
  }
  const errors: string[] = [];
  const log: string[] = [];
  page.on("console", (m) => {
    log.push(`${m.type()}: ${m.text()}`);
    if (m.type() === "error") errors.push(m.text());
  });
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("requestfailed", (r) => errors.push(`request failed: ${r.url()} ${r.failure()?.errorText ?? ""}`));
  page.on("response", (r) => {
    if (r.status() >= 400) errors.push(`HTTP ${r.status()}: ${r.url()}`);
  });
  const search = new URLSearchParams(Object.entries(query).map(([k, v]) => [k, String(v)])).toString();
  await page.goto(`${options.isolated ? session.isolatedUrl : session.url}/${path}${search ? `?${search}` : ""}`, { waitUntil: "load" });

  const state = () => page.evaluate(() => (window as unknown as { __demo?: DemoState }).__demo ?? null) as Promise<DemoState>;
  const fail = (what: string, s: DemoState | null) =>
    new Error(`${path}: ${what}${s?.error ? `: ${s.error}` : ""}\nconsole:\n${log.slice(-30).join("\n")}\nerrors:\n${errors.join("\n")}`);
  const waitFor = async (predicate: string, timeoutMs: number, what: string) => {
    try {
      await page.waitForFunction(predicate, { timeout: timeoutMs, polling: 200 });
    } catch {
      throw fail(`timed out after ${timeoutMs} ms waiting for ${what}`, await state().catch(() => null));
    }
    const s = await state();
    if (s.error) throw fail("the page reported an error", s);
    return s;
  };
  /** Two animation frames (resize observers run), then every asynchronously drawn view's latest frame. */
  const settle = () =>
    page.evaluate(async () => {
      for (let i = 0; i < 2; i++) await new Promise((resolve) => requestAnimationFrame(resolve));
      await (window as unknown as { __demoSettled?: () => Promise<void> }).__demoSettled?.();
    });
  return {
    page,
    errors,
    log,
    state,
    waitReady: (timeoutMs = 300_000) =>
      waitFor("window.__demo && (window.__demo.ready && !window.__demo.busy || window.__demo.error !== null)", timeoutMs, "window.__demo.ready"),
    waitForVersion: (version, timeoutMs = 300_000) =>
      waitFor(`window.__demo && (window.__demo.version > ${version} && !window.__demo.busy || window.__demo.error !== null)`, timeoutMs, `a publish after version ${version}`),
    longTasks: (sincePageMs = 0) =>
      page.evaluate((since) => ((window as unknown as { __longTasks?: [number, number][] }).__longTasks ?? []).filter(([start]) => start >= since), sincePageMs),
    now: () => page.evaluate(() => performance.now()),
    /** Saves a full-page screenshot, then fails if the page shows an error box (other than "needs WebGPU"). */
    async screenshot(name: string) {
      mkdirSync(artifactsDir, { recursive: true });
      const file = join(artifactsDir, `${name}.png`);
      // What a user sees once the page has finished: grow the viewport to the whole page first
      // (a fullPage capture resizes it mid-shot, which blanks canvases drawn asynchronously, such
      // as the WebGPU surface, until their next frame), let resize observers fire, wait for every
      // such view to show its latest frame, then capture; the laptop viewport comes back after.
      const viewport = page.viewport() ?? { width: 1280, height: 800 };
      const height = await page.evaluate(() => Math.ceil(document.documentElement.scrollHeight));
      await page.setViewport({ ...viewport, height: Math.max(viewport.height, height) });
      await settle();
      await page.screenshot({ path: file as `${string}.png` });
      await page.setViewport(viewport);
      await settle();
      const shown = await page.$$eval(".demo-error:not(.webgpu-missing)", (boxes) => boxes.map((b) => b.textContent ?? ""));
      if (shown.length > 0) throw fail(`the page shows an error: ${shown.join(" | ")} (screenshot ${file})`, null);
      return file;
    },
    close: () => page.close(),
  };
}

/** Sets an <input type=range> (or number) to `value` and dispatches input and change events. */
export async function setInput(page: Page, selector: string, value: number | string): Promise<void> {
  const found = await page.$eval(selector, (node, v) => {
    const input = node as HTMLInputElement;
    input.value = String(v);
    input.dispatchEvent(new Event("input", { bubbles: true }));
    input.dispatchEvent(new Event("change", { bubbles: true }));
    return input.value;
  }, String(value));
  if (found === undefined) throw new Error(`no input ${selector}`);
}

/** The RGBA pixels of a <canvas>, as a plain array (for exact comparisons). */
export async function canvasPixels(page: Page, selector: string): Promise<{ width: number; height: number; data: number[] }> {
  return await page.$eval(selector, (node) => {
    const canvas = node as HTMLCanvasElement;
    const ctx = canvas.getContext("2d")!;
    const image = ctx.getImageData(0, 0, canvas.width, canvas.height);
    return { width: canvas.width, height: canvas.height, data: Array.from(image.data) };
  });
}
