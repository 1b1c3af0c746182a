/**
 * The browser demos (index, page 1 "same function", page 3 "spectrum") in headless Chromium
 * (SwiftShader WebGPU without a GPU), each with a small problem passed in the query string:
 * no console errors, the computation finishes, the numbers the page shows are those of the command
 * line (`flatness train / transform / measure --cpu`, run in-process on the page's own model), the
 * decision boundary is pixel-identical after T_alpha and neuron-wise rescaling, and a screenshot of
 * each page lands in test-artifacts/.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFile } from "node:child_process";
import { SPLIT_STREAM } from "../src/cli/train.ts";
import { readModel, writeModel } from "../src/io/modelFile.ts";
import { npyToFloat32, parseNpy } from "../src/io/npy.ts";
import type { MeasureReport } from "../src/metrics/suite.ts";
import { homogeneousAlphaScale } from "../src/transforms/alphaScale.ts";
import { CLI_SPLIT_STREAM, cliCommands, type DemoProblem, prepareProblem } from "../demos/shared/problem.ts";
import { SAME_FUNCTION_CLI_ARGS, summarize } from "../demos/same-function/metrics.ts";
import { applySpectrumTransform, spectrumCliArgs, type SpectrumSettings, transformCommand } from "../demos/spectrum/transforms.ts";
import { canvasPixels, type DemoSession, openDemo, repoRoot, setInput, startDemos } from "./support/demoPage.ts";

/** Worst relative difference page vs command line seen by expectClose in the current test. */
let worst = { relative: 0, what: "" };
function reportWorst(test: string): void {
  console.log(`${test}: largest relative difference page vs command line ${worst.relative.toExponential(2)} (${worst.what})`);
  worst = { relative: 0, what: "" };
}

/** |got - want| <= rtol |want| + atol, with the key named on failure. */
function expectClose(got: number, want: number, what: string, rtol = 1e-3, atol = 1e-9): void {
  const relative = Math.abs(got - want) / Math.max(Math.abs(want), 1e-300);
  if (relative > worst.relative) worst = { relative, what };
  const ok = Math.abs(got - want) <= rtol * Math.abs(want) + atol;
  expect(ok, `${what}: page ${got}, command line ${want} (relative ${Math.abs(got - want) / Math.abs(want)})`).toBe(true);
}

/** Runs the command line (`node bin/flatness.mjs`, under Deno) and returns stdout. */
function cli(argv: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [join(repoRoot, "bin/flatness.mjs"), ...argv], { cwd: repoRoot, maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`flatness ${argv.join(" ")} failed (${error.code}):\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** The argv of a printed `npx flatness <command> ...` line, file paths moved into `dir`, plus `extra`. */
function argvOf(line: string, dir: string, extra: string[]): string[] {
  const words = line.trim().split(/\s+/).slice(2); // drop "npx flatness"
  const paths = new Set(["--out", "--model", "--data", "--labels", "--save-data"]);
  return [...words.map((w, i) => (i > 0 && paths.has(words[i - 1]) ? join(dir, w) : w)), ...extra];
}

/**
 * Trains with the page's printed `flatness train` command (--cpu: float64), writes the page's own
 * trained parameters as `page.json` in the same format, and returns the directory.
 */
async function commandLineModel(problem: DemoProblem, pageTheta: number[], measureArgs: string): Promise<{ dir: string; cpuTheta: Float64Array; lines: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), "flatness-demo-"));
  const lines = cliCommands(problem, measureArgs);
  await cli(argvOf(lines[0], dir, ["--cpu", "--quiet"]));
  const trained = readModel(readFileSync(join(dir, "model.json")), "model.json");
  writeFileSync(join(dir, "page.json"), writeModel(trained, Float64Array.from(pageTheta)));
  return { dir, cpuTheta: trained.model.theta, lines };
}

async function measureWithCli(dir: string, model: string, measureLine: string): Promise<MeasureReport> {
  const argv = argvOf(measureLine, dir, ["--cpu", "--json", "--quiet"]);
  argv[argv.indexOf("--model") + 1] = join(dir, model);
  return JSON.parse(await cli(argv)) as MeasureReport;
}

describe("browser demos", () => {
  let demos: DemoSession;

  beforeAll(async () => {
    demos = await startDemos();
  }, 180_000);

  afterAll(async () => {
    await demos?.close();
  });

  it("the page's problem is the command line's: same split stream, same data", async () => {
    expect(CLI_SPLIT_STREAM).toBe(SPLIT_STREAM);
    const problem: DemoProblem = { dataset: "spirals", samples: 60, widths: [2, 8, 2], optimizer: "adam", lr: 0.01, batchSize: 16, epochs: 1, seed: 3, testFraction: 0.2 };
    const dir = mkdtempSync(join(tmpdir(), "flatness-demo-"));
    await cli(argvOf(cliCommands(problem)[0], dir, ["--cpu", "--quiet"]));
    const x = npyToFloat32(parseNpy(readFileSync(join(dir, "data/x_train.npy")), "x_train.npy"), "x_train.npy", "x");
    expect(Array.from(x)).toEqual(Array.from(prepareProblem(problem).train.x));
  });

  it("index: links every demo, says whether WebGPU is there, no console errors", async () => {
    const p = await openDemo(demos, "demos/index.html");
    try {
      const state = await p.waitReady(60_000);
      expect(state.numbers).toMatchObject({ webgpu: true });
      const links = await p.page.$$eval(".card h2 a", (as) => as.map((a) => (a as HTMLAnchorElement).getAttribute("href")));
      expect(links).toEqual(["same-function/", "landscape/", "spectrum/", "geometry/", "audit/"]);
      // One folder per page: a static server (npm run demos) answers a folder with its index.html,
      // the test server serves files only. Each page's own links (back to the index, to its
      // neighbour), stylesheet and bundle must resolve from its folder.
      const broken = await p.page.evaluate(async (hrefs) => {
        const bad: string[] = [];
        for (const h of hrefs) {
          const page = new URL(`${h}index.html`, location.href);
          const response = await fetch(page);
          if (response.status !== 200) {
            bad.push(`${page.pathname}: ${response.status}`);
            continue;
          }
          const doc = new DOMParser().parseFromString(await response.text(), "text/html");
          const refs = [...doc.querySelectorAll("nav a[href], link[rel=stylesheet], script[src]")].map((e) => e.getAttribute("href") ?? e.getAttribute("src") ?? "");
          for (const ref of refs) {
            const url = new URL(ref, page);
            if (url.origin !== location.origin) continue;
            if (url.pathname.endsWith("/")) url.pathname += "index.html";
            const status = (await fetch(url)).status;
            if (status !== 200) bad.push(`${page.pathname} -> ${ref}: ${status}`);
          }
        }
        return bad;
      }, links as string[]);
      expect(broken).toEqual([]);
      const explanations = await p.page.$$eval(".card", (cards) => cards.map((c) => c.textContent ?? ""));
      for (const text of explanations) expect(text).toMatch(/[Ss]ection/);
      await p.screenshot("demos-index");
      expect(p.errors).toEqual([]);
    } finally {
      await p.close();
    }
  });

  it("without WebGPU pages 1 and 3 run on the WebAssembly engine with a note on enabling it; ?backend=webgpu explains instead", async () => {
    for (const path of ["demos/same-function/index.html", "demos/spectrum/index.html"]) {
      const p = await openDemo(demos, path, { epochs: 5, samples: 60, k: 2, runs: 1, steps: 10 }, { withoutWebGPU: true });
      try {
        const state = await p.waitReady(60_000);
        expect(state.error).toBeNull();
        expect((state.numbers as Record<string, unknown>).backend).toBe("wasm");
        expect(await p.page.$eval("#adapter", (e) => e.textContent)).toMatch(/^Engine: WebAssembly CPU engine \((relaxed )?SIMD, 1 thread\)/);
        const note = await p.page.$eval(".demo-note.webgpu-missing", (e) => e.textContent ?? "");
        expect(note).toMatch(/runs on the WebAssembly engine/);
        expect(note).toMatch(/navigator\.gpu is missing/);
        expect(note).toMatch(/enable-unsafe-webgpu/);
        expect(note).toMatch(/chrome:\/\/flags/);
        expect(await p.page.$eval(".webgpu-missing a", (a) => (a as HTMLAnchorElement).href)).toMatch(/^https:\/\//);
        if (path.includes("same-function")) {
          expect(await p.page.$eval("#plot-training", (e) => e.textContent)).toContain("Training on the WebAssembly engine");
          await p.screenshot("demos-no-webgpu-wasm");
        }
        expect(p.errors).toEqual([]);
      } finally {
        await p.close();
      }
    }
    // Asking for WebGPU where there is none: the explanation, as before.
    const p = await openDemo(demos, "demos/same-function/index.html", { backend: "webgpu" }, { withoutWebGPU: true });
    try {
      await p.page.waitForFunction("window.__demo && window.__demo.error !== null", { timeout: 30_000 });
      expect((await p.state()).error).toMatch(/WebGPU unavailable/);
      const box = await p.page.$eval(".demo-error.webgpu-missing", (e) => (e as HTMLElement).innerText);
      expect(box).toMatch(/This page needs WebGPU/);
      expect(box).toMatch(/enable-unsafe-webgpu/);
      expect(box).toMatch(/chrome:\/\/flags/);
      expect(await p.page.$eval(".webgpu-missing a", (a) => (a as HTMLAnchorElement).href)).toMatch(/^https:\/\//);
      await p.screenshot("demos-no-webgpu");
      expect(p.errors).toEqual([]);
    } finally {
      await p.close();
    }
  });

  it("1. same function: Cancel stops training and the page says so", async () => {
    const p = await openDemo(demos, "demos/same-function/index.html", { epochs: 5000, samples: 100 });
    try {
      await p.page.waitForSelector(".task .task-cancel", { timeout: 60_000 });
      await p.page.waitForFunction(() => /epoch [1-9]/.test(document.querySelector(".task-message")?.textContent ?? ""), { timeout: 60_000, polling: 100 });
      await p.page.click(".task .task-cancel");
      await p.page.waitForFunction(() => /cancelled/.test(document.getElementById("function-check")?.textContent ?? ""), { timeout: 60_000, polling: 100 });
      expect((await p.state()).error).toBeNull();
      expect(await p.page.$eval("#retrain", (b) => (b as HTMLButtonElement).disabled)).toBe(false);
      expect(p.errors).toEqual([]);
    } finally {
      await p.close();
    }
  });

  it("1. same function: boundary pixel-identical under T_alpha and neuron rescaling; numbers equal the command line's", async () => {
    const t0 = performance.now();
    const p = await openDemo(demos, "demos/same-function/index.html", { epochs: 20, samples: 100, cells: 120 });
    try {
      const first = await p.waitReady();
      const n = first.numbers as Record<string, any>;
      console.log(`same-function: ready after ${((performance.now() - t0) / 1000).toFixed(1)} s on ${n.adapter}`);
      expect(n.problem).toMatchObject({ dataset: "spirals", samples: 100, widths: [2, 16, 16, 2], epochs: 20, seed: 0 });
      expect(n.alphas).toEqual([1, 1, 1]);

      // Same model: the printed `flatness train` (float64 CPU) reaches the page's WebGPU-trained θ up to float32 drift.
      const { dir, cpuTheta, lines } = await commandLineModel(n.problem, n.trainedTheta, SAME_FUNCTION_CLI_ARGS);
      const drift = Math.max(...n.trainedTheta.map((v: number, i: number) => Math.abs(v - cpuTheta[i])));
      expect(drift, "WebGPU training vs `flatness train --cpu`").toBeLessThan(1e-3);
      console.log(`same-function: θ trained on WebGPU vs \`flatness train --cpu\`: largest difference ${drift.toExponential(2)}`);

      // Same numbers: `flatness measure` (float64 reference) on the page's own θ.
      const atTrained = summarize(await measureWithCli(dir, "page.json", lines[1]));
      for (const [key, want] of Object.entries(atTrained)) expectClose(n.trained[key], want, `trained θ: ${key}`, 1e-3, 1e-7);

      // What the page shows is what it published (4 significant digits).
      const shown = await p.page.$$eval("table.metrics tbody tr", (rows) => rows.map((r) => Array.from(r.children).map((c) => c.textContent ?? "")));
      const lambdaRow = shown.find((r) => r[0].startsWith("λ_max"))!;
      expect(Math.abs(Number(lambdaRow[1]) - n.now.topEigenvalue) / n.now.topEigenvalue, `λ_max shown: ${lambdaRow[1]}`).toBeLessThan(5e-4);

      // T_alpha: α1 = 0.1 (the slider is log10 α1), α3 = 10.
      const interactive = await p.now();
      const before = await canvasPixels(p.page, "#boundary");
      expect(new Set(before.data.filter((_, i) => i % 4 === 0)).size, "the boundary image has content").toBeGreaterThan(10);
      await setInput(p.page, "#alpha-1", -1);
      const second = await p.waitForVersion(first.version);
      const m = second.numbers as Record<string, any>;
      expect(m.alphas[0]).toBeCloseTo(0.1, 12);
      expect(m.alphas[2]).toBeCloseTo(10, 10);
      const afterAlpha = await canvasPixels(p.page, "#boundary");
      expect(afterAlpha.data.length).toBe(before.data.length);
      expect(afterAlpha.data.every((v, i) => v === before.data[i]), "boundary pixels identical after T_alpha").toBe(true);
      expect(m.functionCheck).toBeLessThan(1e-9);
      const spec = prepareProblem(n.problem).spec;
      expect(m.theta).toEqual(Array.from(homogeneousAlphaScale(spec, Float64Array.from(n.trainedTheta), m.alphas)));

      // The Hessian-based measures moved, the invariant ones did not; each equals the command line's at the live θ.
      expect(m.ratios.topEigenvalue).toBeGreaterThan(5);
      expect(m.ratios.trace).toBeGreaterThan(5);
      for (const key of ["adaptiveSharpness", "fisherRao", "pathNorm", "relativeFlatness", "normalizedSharpness", "loss"]) {
        expect(m.relativeChanges[key], `${key} is invariant under T_alpha`).toBeLessThan(1e-3);
      }
      const trained = readModel(readFileSync(join(dir, "model.json")), "model.json");
      writeFileSync(join(dir, "live.json"), writeModel(trained, Float64Array.from(m.theta)));
      const atLive = summarize(await measureWithCli(dir, "live.json", lines[1]));
      for (const key of ["topEigenvalue", "trace", "epsilonSharpness", "adaptiveSharpness", "fisherRao", "pathNorm"]) {
        expectClose(m.now[key], atLive[key], `T_alpha θ: ${key}`, 1e-3, 1e-7);
      }

      // Neuron-wise rescaling on top (s = 10): still the same pixels.
      await setInput(p.page, "#neuron-spread", 1);
      const third = await p.waitForVersion(second.version);
      const r = third.numbers as Record<string, any>;
      expect(r.neuron.factors).toHaveLength(16);
      const afterNeuron = await canvasPixels(p.page, "#boundary");
      expect(afterNeuron.data.every((v, i) => v === before.data[i]), "boundary pixels identical after neuron rescaling").toBe(true);
      for (const key of ["adaptiveSharpness", "fisherRao", "pathNorm", "normalizedSharpness"]) {
        expect(r.relativeChanges[key], `${key} is invariant under neuron rescaling`).toBeLessThan(1e-3);
      }
      expect(r.measurements).toBe(3);
      // Responsive while the sliders move and the GPU measures: no main-thread task of 250 ms or more.
      const long = await p.longTasks(interactive);
      console.log(`same-function: main-thread tasks over 50 ms while interacting: ${JSON.stringify(long.map(([, ms]) => Math.round(ms)))}`);
      expect(long.filter(([, ms]) => ms >= 250)).toEqual([]);

      await p.screenshot("demos-same-function");

      // Cancel on a live measurement: it stops, is not restarted, and the page is idle again.
      await setInput(p.page, "#alpha-2", 0.5);
      await p.page.waitForSelector(".task:not(.task-done) .task-cancel", { timeout: 30_000 });
      await p.page.click(".task:not(.task-done) .task-cancel");
      await p.page.waitForFunction(() => /cancelled/.test(document.getElementById("measure-status")?.textContent ?? ""), { timeout: 30_000, polling: 100 });
      const cancelled = await p.state();
      expect(cancelled.busy).toBe(false);
      expect(cancelled.version).toBe(third.version);
      expect(p.errors).toEqual([]);
      reportWorst("same-function");
      console.log(`same-function: done after ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    } finally {
      await p.close();
    }
  });

  // The page on WebGPU (the default here), and on the WebAssembly engine: the same checks.
  for (const backend of ["webgpu", "wasm"] as const) {
    const on = backend === "wasm" ? " on the WebAssembly engine (?backend=wasm, one thread: not cross-origin isolated)" : "";
    it(`3. spectrum${on}: top-k eigenvalues and SLQ before and after equal the command line's`, async () => {
      const t0 = performance.now();
      const settings: SpectrumSettings = { k: 3, runs: 2, steps: 20, seed: 0 };
      const query = { epochs: 20, samples: 100, k: settings.k, runs: settings.runs, steps: settings.steps, ...(backend === "wasm" ? { backend } : {}) };
      const p = await openDemo(demos, "demos/spectrum/index.html", query);
      try {
        const first = await p.waitReady();
        const n = first.numbers as Record<string, any>;
        console.log(`spectrum${on}: ready after ${((performance.now() - t0) / 1000).toFixed(1)} s on ${n.adapter}`);
        expect(n.backend).toBe(backend);
        const adapterLine = await p.page.$eval("#adapter", (e) => e.textContent ?? "");
        if (backend === "wasm") {
          // Served without COOP/COEP: no SharedArrayBuffer, so the engine runs on the page's thread.
          expect(adapterLine).toMatch(/^Engine: WebAssembly CPU engine \((relaxed )?SIMD, 1 thread\)/);
          expect(await p.page.evaluate(() => crossOriginIsolated)).toBe(false);
        } else expect(adapterLine).toMatch(/^WebGPU adapter: /);
        expect(n.settings).toEqual(settings);
        expect(n.transform).toMatchObject({ kind: "alpha", alphas: [0.1, 1, 10] });
        const spec = prepareProblem(n.problem).spec;
        expect(n.transformedTheta).toEqual(Array.from(applySpectrumTransform(spec, Float64Array.from(n.trainedTheta), n.transform)));

        const { dir, lines } = await commandLineModel(n.problem, n.trainedTheta, spectrumCliArgs(settings));
        const check = async (side: "before" | "after", model: string, got: Record<string, any>) => {
          const want = await measureWithCli(dir, model, lines[1]);
          const eig = want.topEigenvalues as number[];
          expect(got.eigenvalues).toHaveLength(settings.k);
          got.eigenvalues.forEach((v: number, i: number) => expectClose(v, eig[i], `${side}: λ${i + 1}`));
          expect(got.converged.every(Boolean), `${side}: Lanczos converged`).toBe(true);
          const density = want.density as { nodes: number[][]; weights: number[][] };
          const moment = (nodes: number[][], weights: number[][], p: number) =>
            nodes.reduce((s, run, r) => s + run.reduce((t, x, i) => t + weights[r][i] * x ** p, 0), 0) / nodes.length;
          expectClose(got.moments[0], moment(density.nodes, density.weights, 1), `${side}: SLQ tr(H)/n`);
          expectClose(got.moments[1], moment(density.nodes, density.weights, 2), `${side}: SLQ tr(H²)/n`);
          // The extreme Ritz values of each SLQ run (well separated) agree too.
          got.nodes.forEach((run: number[], r: number) => expectClose(run.at(-1)!, density.nodes[r].at(-1)!, `${side}: SLQ run ${r} largest node`));
        };
        await check("before", "page.json", n.before);
        // The transformed model exactly as the printed `flatness transform` writes it.
        const transformLine = transformCommand(spec, n.transform).replace("model.json", "page.json");
        await cli(argvOf(transformLine, dir, []));
        await check("after", "after.json", n.after);
        expect(n.after.eigenvalues[0] / n.before.eigenvalues[0]).toBeGreaterThan(5);

        // Another transform: neuron-wise rescaling, re-measured live.
        await p.page.select("#transform-kind", "neuron");
        const second = await p.waitForVersion(first.version);
        const m = second.numbers as Record<string, any>;
        expect(m.transform.kind).toBe("neuron");
        writeFileSync(join(dir, "neuron.json"), writeModel(readModel(readFileSync(join(dir, "page.json")), "page.json"), Float64Array.from(m.transformedTheta)));
        const want = (await measureWithCli(dir, "neuron.json", lines[1])).topEigenvalues as number[];
        m.after.eigenvalues.forEach((v: number, i: number) => expectClose(v, want[i], `neuron: λ${i + 1}`));
        expect(m.before).toEqual(n.before);

        await p.screenshot(backend === "wasm" ? "demos-spectrum-wasm" : "demos-spectrum");
        expect(p.errors).toEqual([]);
        reportWorst(`spectrum${on}`);
        console.log(`spectrum${on}: done after ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      } finally {
        await p.close();
      }
    });
  }
});
