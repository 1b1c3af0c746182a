/// <reference lib="dom" />
/**
 * Browser side of the GPU suite: runs every case of test/gpu/cases.ts in the page and publishes
 * the results on window.__gpuResults for test/browser.test.ts (puppeteer) to read.
 */
import { GpuContext } from "../../src/gpu/context.ts";
import { engineCases, errorCases, tiledKernelCases } from "../gpu/cases.ts";
import { metricCases } from "../gpu/metricCases.ts";
import { trainCases } from "../gpu/trainCases.ts";
import { landscapeCases } from "../gpu/landscapeCases.ts";

interface CaseResult {
  name: string;
  ok: boolean;
  error?: string;
  ms: number;
}

declare global {
  interface Window {
    __gpuResults?: { adapter: string; results: CaseResult[]; fatal?: string };
  }
}

async function main() {
  const log = document.getElementById("log")!;
  let ctx: GpuContext;
  try {
    ctx = await GpuContext.create();
  } catch (e) {
    window.__gpuResults = { adapter: "none", results: [], fatal: `${(e as Error).name}: ${(e as Error).message}` };
    log.textContent = window.__gpuResults.fatal!;
    return;
  }
  const results: CaseResult[] = [];
  for (const c of [...engineCases, ...tiledKernelCases, ...metricCases, ...trainCases, ...landscapeCases, ...errorCases]) {
    const t0 = performance.now();
    try {
      await c.run(ctx);
      results.push({ name: c.name, ok: true, ms: performance.now() - t0 });
    } catch (e) {
      results.push({ name: c.name, ok: false, error: `${(e as Error).name}: ${(e as Error).message}`, ms: performance.now() - t0 });
    }
    log.textContent += `${results.at(-1)!.ok ? "ok  " : "FAIL"} ${c.name}\n`;
  }
  window.__gpuResults = { adapter: ctx.describe(), results };
}

main();
