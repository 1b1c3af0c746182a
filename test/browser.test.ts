/**
 * The GPU suite in headless Chromium (SwiftShader WebGPU without a GPU): the same cases as under
 * Deno, so both runtimes are held to the float64 reference. Fails, never skips, when the page has
 * no WebGPU.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser } from "puppeteer-core";
import type { Server } from "node:http";
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { bundleBrowser } from "../build.mjs";
import { launchChromium, serveDirectory } from "./support/chromium.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

describe("GPU engine in headless Chromium", () => {
  let browser: Browser;
  let server: Server;
  let url: string;

  beforeAll(async () => {
    await bundleBrowser();
    ({ server, url } = await serveDirectory(root));
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    server?.close();
  });

  it("runs every GPU case against the float64 reference", async () => {
    const page = await browser.newPage();
    const consoleErrors: string[] = [];
    page.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text()));
    page.on("pageerror", (e) => consoleErrors.push(String(e)));
    await page.goto(`${url}/test/browser/gpu.html`);
    await page.waitForFunction(() => (window as { __gpuResults?: unknown }).__gpuResults !== undefined, { timeout: 600_000, polling: 500 });
    const report = (await page.evaluate(() => (window as { __gpuResults?: unknown }).__gpuResults)) as {
      adapter: string;
      results: { name: string; ok: boolean; error?: string; ms: number }[];
      fatal?: string;
    };
    mkdirSync(join(root, "test-artifacts"), { recursive: true });
    await page.screenshot({ path: join(root, "test-artifacts/browser-gpu-suite.png"), fullPage: true });
    expect(report.fatal, "WebGPU must be available in headless Chromium").toBeUndefined();
    console.log(`Chromium adapter: ${report.adapter}; ${report.results.length} cases`);
    const failures = report.results.filter((r) => !r.ok).map((r) => `${r.name}: ${r.error}`);
    expect(failures).toEqual([]);
    expect(report.results.length).toBeGreaterThan(20);
    expect(consoleErrors).toEqual([]);
  });
});

describe("the WebAssembly engine in headless Chromium", () => {
  let browser: Browser;
  const servers: Server[] = [];

  beforeAll(async () => {
    await bundleBrowser();
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    for (const s of servers) s.close();
  });

  for (const isolated of [false, true]) {
    it(`${isolated ? "a cross-origin isolated page (COOP/COEP): worker threads" : "a page that is not cross-origin isolated: one thread"}; loss, gradient, HVP and block HVP of an MLP and a CNN equal the float64 reference`, async () => {
      const served = await serveDirectory(root, { isolated });
      servers.push(served.server);
      const page = await browser.newPage();
      const consoleErrors: string[] = [];
      page.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text()));
      page.on("pageerror", (e) => consoleErrors.push(String(e)));
      await page.goto(`${served.url}/test/browser/wasm.html`);
      await page.waitForFunction(() => (window as { __wasmResults?: unknown }).__wasmResults !== undefined, { timeout: 120_000, polling: 200 });
      const report = (await page.evaluate(() => (window as { __wasmResults?: unknown }).__wasmResults)) as {
        isolated: boolean;
        backend: string;
        results: { name: string; worst: number }[];
        fatal?: string;
      };
      console.log(`Chromium wasm (${isolated ? "isolated" : "not isolated"}): ${report.backend}; ${report.results.map((r) => `${r.name} ${r.worst.toExponential(2)}`).join(", ")}`);
      expect(report.fatal).toBeUndefined();
      expect(report.isolated).toBe(isolated);
      expect(report.backend).toMatch(isolated ? /[2-9] threads/ : /1 thread/);
      expect(report.results).toHaveLength(2);
      for (const r of report.results) expect(r.worst, r.name).toBeLessThan(1e-4);
      expect(consoleErrors).toEqual([]);
    });
  }
});
