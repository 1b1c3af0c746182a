/// <reference lib="dom" />
/**
 * Demo pages 2 (loss landscape), 4 (geometry of reparametrization) and 5 (audit your model) in
 * headless Chromium (SwiftShader WebGPU without a GPU): no console errors, the computation
 * finishes, the numbers the page shows equal the engine's on the float64 reference for the same
 * seed (computeLandscape, audit(), the reparametrizations, recomputed here in Node), controls
 * change what is drawn, and a screenshot of each page lands in test-artifacts/. Pages 2 and 5 also
 * run on the WebAssembly engine (?backend=wasm, or without WebGPU) with the same numbers.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ElementHandle, Page } from "puppeteer-core";
import { audit, type AuditReport } from "../src/audit/audit.ts";
import { type Backend, cpuBackend } from "../src/backend/mod.ts";
import type { Dataset } from "../src/data.ts";
import { gaussianMixture } from "../src/datasets.ts";
import { initParameters } from "../src/init.ts";
import { writeModel } from "../src/io/modelFile.ts";
import { parseNpy, writeNpy } from "../src/io/npy.ts";
import { parseArchitecture } from "../src/architecture.ts";
import { SequentialBatchLoss } from "../src/landscape/batchLoss.ts";
import { computeLandscape, type LandscapeResult } from "../src/landscape/landscape.ts";
import { type LossKind, mlpSpec, type ModelSpec, parameterLayout } from "../src/model.ts";
import { ReferenceObjective } from "../src/reference/engine.ts";
import { auditOptions, type AuditSettings, CNN_EXAMPLE } from "../demos/audit/files.ts";
import { FIG2_INPUTS, FIG5_PROBES, fig5Loss, fig5Minima, RADIAL_PROBES } from "../demos/geometry/model.ts";
import { cliCommand, DEFAULT_SETTINGS, landscapeOptions, landscapeProblem, type LandscapeSettings, problemFiles } from "../demos/landscape/problem.ts";
import { type DemoPage, type DemoSession, openDemo, repoRoot, setInput, startDemos } from "./support/demoPage.ts";

/** |got - want| <= rtol |want| + atol, naming the value on failure. */
function expectClose(got: number, want: number, what: string, rtol: number, atol = 0): void {
  expect(Math.abs(got - want) <= rtol * Math.abs(want) + atol, `${what}: page ${got}, reference ${want}`).toBe(true);
}

function expectAllClose(got: number[], want: number[], what: string, rtol: number, atol = 0): number {
  expect(got.length, `${what}: length`).toBe(want.length);
  let worst = 0;
  got.forEach((g, i) => {
    expectClose(g, want[i], `${what}[${i}]`, rtol, atol);
    worst = Math.max(worst, Math.abs(g - want[i]) / Math.max(Math.abs(want[i]), 1e-300));
  });
  return worst;
}

async function withPage<T>(
  session: DemoSession,
  path: string,
  query: Record<string, string | number>,
  work: (p: DemoPage) => Promise<T>,
  options: { withoutWebGPU?: boolean; isolated?: boolean } = {},
): Promise<T> {
  const p = await openDemo(session, path, query, options);
  try {
    return await work(p);
  } finally {
    await p.close();
  }
}

/** Clicks `selector` and waits for the page's next publish. */
async function clickAndWait(p: DemoPage, selector: string, timeoutMs = 120_000) {
  const { version } = await p.state();
  await p.page.click(selector);
  return await p.waitForVersion(version, timeoutMs);
}

/** Sets an input and waits for the page's next publish. */
async function inputAndWait(p: DemoPage, selector: string, value: number | string, timeoutMs = 60_000) {
  const { version } = await p.state();
  await setInput(p.page, selector, value);
  return await p.waitForVersion(version, timeoutMs);
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

/** The argv of a printed `npx flatness ...` line with its file names moved into `dir`, plus `extra`. */
function argvOf(line: string, dir: string, extra: string[]): string[] {
  const words = line.trim().split(/\s+/).slice(2);
  const files = new Set(["--model", "--data", "--labels"]);
  return [...words.map((w, i) => (i > 0 && files.has(words[i - 1]) ? join(dir, w) : w)), ...extra];
}

const canvasImage = (page: Page, selector: string) => page.$eval(selector, (c) => (c as HTMLCanvasElement).toDataURL());

interface LandscapeNumbers {
  settings: LandscapeSettings;
  a: number[];
  b: number[] | null;
  values: number[];
  orbitValues: number[] | null;
  center: number;
  directionInfo: { eigenvalue?: number }[];
  surfacePixels: { covered: number; colours: number } | null;
}

describe("browser demos 2, 4 and 5", () => {
  let demos: DemoSession;
  const problem = landscapeProblem();
  const reference = new ReferenceObjective(problem.spec, problem.data, problem.loss);
  const referenceSlice = (s: LandscapeSettings): Promise<LandscapeResult> =>
    computeLandscape(new SequentialBatchLoss(reference), problem.spec, problem.theta, landscapeOptions(s), reference);

  beforeAll(async () => {
    demos = await startDemos();
  }, 180_000);

  afterAll(async () => {
    await demos?.close();
  });

  it("2. landscape: the 2-D filter slice equals computeLandscape on the float64 reference; the 3-D view and contours render", async () => {
    await withPage(demos, "demos/landscape/index.html", {}, async (p) => {
      const state = await p.waitReady(120_000);
      const n = state.numbers as unknown as LandscapeNumbers;
      expect(n.settings).toMatchObject({ directions: "filter", dims: 2, steps: 25 });
      const ref = await referenceSlice(n.settings);
      const worst = expectAllClose(n.values, ref.values, "L(theta + a d1 + b d2)", 1e-3);
      expectClose(n.center, ref.center, "L(theta)", 1e-3);
      expect(n.a).toEqual(ref.a);
      expect(n.b).toEqual(ref.b);
      console.log(`landscape 2-D: ${n.values.length} grid values, worst relative difference to the float64 reference ${worst.toExponential(2)}`);
      // The table in the page shows the same numbers (6 significant digits).
      const cells = await p.page.$$eval("#values-table tbody tr", (rows) => rows.map((r) => [...r.querySelectorAll("td")].map((td) => td.textContent ?? "")));
      expect(cells.length).toBe(25);
      for (const [j, i] of [[0, 0], [12, 12], [24, 3], [7, 19]]) expectClose(Number(cells[j][i]), n.values[j * 25 + i], `table cell b${j} a${i}`, 1e-5);
      // The WebGPU-rendered surface is there (not a blank canvas), and so is the contour plot.
      expect(n.surfacePixels!.covered).toBeGreaterThan(0.05); // blank: 0
      expect(n.surfacePixels!.colours).toBeGreaterThan(50);
      expect(await p.page.$$eval("#contour canvas", (cs) => cs.length)).toBeGreaterThan(0);
      // Dragging orbits the camera: the surface is drawn again, differently.
      const before = await canvasImage(p.page, "#surface");
      const surface = (await p.page.$("#surface"))!;
      await surface.scrollIntoView();
      const box = (await surface.boundingBox())!;
      await p.page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
      await p.page.mouse.down();
      await p.page.mouse.move(box.x + box.width / 2 + 80, box.y + box.height / 2 + 20, { steps: 4 });
      await p.page.mouse.up();
      await p.page.waitForFunction((b) => (document.querySelector("#surface") as HTMLCanvasElement).toDataURL() !== b, { timeout: 20_000 }, before);
      await p.page.click("#reset-view");
      await p.page.waitForFunction((b) => (document.querySelector("#surface") as HTMLCanvasElement).toDataURL() === b, { timeout: 20_000 }, before);
      await p.screenshot("demos-landscape");
      expect(p.errors).toEqual([]);
    });
  });

  it("2. landscape: 1-D T_alpha and eigenvector slices equal the reference; the loss is flat along the orbit", async () => {
    await withPage(demos, "demos/landscape/index.html", { dims: 1, directions: "alpha", steps: 21, from: -1.5, to: 1.5 }, async (p) => {
      let n = (await p.waitReady(120_000)).numbers as unknown as LandscapeNumbers;
      expect(n.settings).toMatchObject({ directions: "alpha", dims: 1, steps: 21 });
      let ref = await referenceSlice(n.settings);
      expectAllClose(n.values, ref.values, "L(theta + a d), d the T_alpha tangent", 1e-3);
      expectAllClose(n.orbitValues!, ref.orbitValues!, "L(T_alpha(a) theta)", 1e-3);
      // Dinh et al. Definition 5: the function, hence the loss, does not move along the orbit.
      for (const v of n.orbitValues!) expectClose(v, n.center, "orbit loss vs L(theta)", 1e-4);
      expect(Math.max(...n.values)).toBeGreaterThan(1.5 * n.center);
      await p.screenshot("demos-landscape-alpha");

      // Controls: the top Hessian eigenvector, recomputed by the page on WebGPU (Lanczos).
      await p.page.select("#directions", "eigen");
      await setInput(p.page, "#steps", 15);
      await setInput(p.page, "#from", -0.5);
      await setInput(p.page, "#to", 0.5);
      n = (await clickAndWait(p, "#compute")).numbers as unknown as LandscapeNumbers;
      expect(n.settings).toMatchObject({ directions: "eigen", dims: 1, steps: 15, from: -0.5, to: 0.5 });
      ref = await referenceSlice(n.settings);
      expectClose(n.directionInfo[0].eigenvalue!, ref.directionInfo[0].eigenvalue!, "top eigenvalue", 1e-3);
      // An eigenvector's sign is arbitrary: the page's slice is the reference's or its mirror image.
      const mirrored = [...ref.values].reverse();
      const same = n.values.every((v, i) => Math.abs(v - ref.values[i]) <= 1e-3 * Math.abs(ref.values[i]));
      expectAllClose(n.values, same ? ref.values : mirrored, "L(theta + a v1)", 1e-3);
      expect(p.errors).toEqual([]);
    });
  });

  it("2. landscape: the downloadable files and the printed command line give the page's default slice", async () => {
    const dir = mkdtempSync(join(tmpdir(), "flatness-landscape-page-"));
    for (const { name, bytes } of problemFiles(problem)) writeFileSync(join(dir, name), bytes);
    const out = JSON.parse(await cli(argvOf(cliCommand(DEFAULT_SETTINGS), dir, ["--cpu", "--quiet"]))) as LandscapeResult;
    const ref = await referenceSlice(DEFAULT_SETTINGS);
    expectAllClose(out.values, ref.values, "flatness landscape --cpu vs computeLandscape", 1e-12);
  });

  it("2. landscape: Cancel stops a long slice; the page stays usable", async () => {
    await withPage(demos, "demos/landscape/index.html", { dims: 2, steps: 81 }, async (p) => {
      await p.page.waitForSelector(".task-cancel", { timeout: 60_000 });
      await p.page.waitForFunction(() => (document.querySelector(".task progress") as HTMLProgressElement | null)?.value! > 0, { timeout: 60_000 });
      const { version } = await p.state();
      await p.page.click(".task-cancel");
      const state = await p.waitForVersion(version, 60_000);
      expect(state.numbers).toMatchObject({ cancelled: true });
      expect(await p.page.$eval(".task-message", (e) => e.textContent)).toBe("cancelled");
      // The next slice runs normally.
      await setInput(p.page, "#steps", 9);
      const n = (await clickAndWait(p, "#compute")).numbers as unknown as LandscapeNumbers;
      expect(n.values.length).toBe(81);
      expectAllClose(n.values, (await referenceSlice(n.settings)).values, "L after a cancel", 1e-3);
      expect(p.errors).toEqual([]);
    });
  });

  it("4. geometry: Figure 2, Figure 5 and the radial map equal float64 computations here; sliders and presets redraw", async () => {
    await withPage(demos, "demos/geometry/index.html", {}, async (p) => {
      type Fig2 = { alpha: number; theta: [number, number]; loss: number; eigenvalues: [number, number]; epsilon: number; epsilonSharpness: number };
      type Fig5 = { a: number; b: number; centre: number; probes: { eta: number; loss: number }[]; minima: { eta: number; curvatureEta: number; curvatureTheta: number }[]; flattestEta: number; sharpestEta: number; gridEta: number[] };
      type Radial = { delta: number; rHat: number; rho: number; probes: { r: number; psi: number }[]; hessianFactor: number };
      const numbers = (s: { numbers: Record<string, unknown> | null }) => s.numbers as { fig2: Fig2; fig5: Fig5; radial: Radial };
      let n = numbers(await p.waitReady(60_000));

      // Figure 2: f = theta2 relu(theta1 x), mse to x on x > 0: L = m (theta1 theta2 - 1)^2, m = mean(x^2),
      // so at theta1 theta2 = 1 the Hessian is 2 m (theta2, theta1)(theta2, theta1)^T.
      const m = FIG2_INPUTS.reduce((s, x) => s + x * x, 0) / FIG2_INPUTS.length;
      const loss2 = (t1: number, t2: number) => FIG2_INPUTS.reduce((s, x) => s + (t2 * Math.max(t1 * x, 0) - x) ** 2, 0) / FIG2_INPUTS.length;
      const epsSharpness = (t: [number, number], eps: number) => {
        let best = 0;
        for (let i = 1; i <= 48; i++) for (let k = 0; k < 360; k++) {
          const r = (eps * i) / 48;
          const a = (2 * Math.PI * k) / 360;
          best = Math.max(best, loss2(t[0] + r * Math.cos(a), t[1] + r * Math.sin(a)) - loss2(t[0], t[1]));
        }
        return best / (1 + loss2(t[0], t[1]));
      };
      const checkFig2 = (f: Fig2, alpha: number) => {
        expectClose(f.alpha, alpha, "alpha", 1e-12);
        expectClose(f.theta[0] * f.theta[1], 1, "theta1 theta2 (same function)", 1e-12);
        expect(f.loss).toBeLessThan(1e-15);
        expectClose(f.eigenvalues[0], 2 * m * (f.theta[0] ** 2 + f.theta[1] ** 2), "lambda_max", 1e-12);
        expect(Math.abs(f.eigenvalues[1])).toBeLessThan(1e-12);
        expectClose(f.epsilonSharpness, epsSharpness(f.theta, f.epsilon), "epsilon-sharpness", 1e-9);
      };
      checkFig2(n.fig2, 1);
      const fig2Before = await canvasImage(p.page, "#fig2-plot canvas");
      n = numbers(await inputAndWait(p, "#alpha", 0.4));
      checkFig2(n.fig2, 10 ** 0.4);
      expect(n.fig2.eigenvalues[0]).toBeGreaterThan(3 * 7.5); // sharper, same function (Theorem 4)
      expect(await canvasImage(p.page, "#fig2-plot canvas")).not.toBe(fig2Before);

      // Figure 5: Phi(eta) = centre + q(eta - centre), q the inverse of h(r) = (r^2 + b)^a r, by bisection here.
      const phi = (eta: number, a: number, b: number, c: number) => {
        const s = eta - c;
        const h = (r: number) => (r * r + b) ** a * r;
        let lo = -1e3;
        let hi = 1e3;
        for (let i = 0; i < 200; i++) {
          const mid = (lo + hi) / 2;
          if (h(mid) < s) lo = mid;
          else hi = mid;
        }
        return c + (lo + hi) / 2;
      };
      const checkFig5 = (f: Fig5) => {
        const minima = fig5Minima();
        expect(f.probes.map((q) => q.eta)).toEqual(FIG5_PROBES);
        for (const q of f.probes) expectClose(q.loss, fig5Loss(phi(q.eta, f.a, f.b, f.centre)), `L_eta(${q.eta})`, 1e-9, 1e-12);
        f.minima.forEach((mm, i) => {
          // L_eta'' at the minimum by central differences of L(Phi(eta)).
          // The step follows the curvature's own length scale (a sharpened minimum is narrow in eta).
          const h = 1e-3 * Math.min(1, 1 / Math.sqrt(Math.abs(mm.curvatureEta)));
          const L = (e: number) => fig5Loss(phi(e, f.a, f.b, f.centre));
          const fd = (L(mm.eta + h) - 2 * L(mm.eta) + L(mm.eta - h)) / (h * h);
          expectClose(mm.curvatureEta, fd, `L_eta'' at minimum ${i}`, 1e-3, 1e-6);
          expectClose(phi(mm.eta, f.a, f.b, f.centre), minima[i], `Phi(eta*) at minimum ${i}`, 1e-9, 1e-12);
        });
      };
      expect(n.fig5).toMatchObject({ a: 0.5, b: 0.05 });
      checkFig5(n.fig5);
      expect(n.fig5.sharpestEta).toBe(1); // the middle minimum, sharpened
      const fig5Before = await canvasImage(p.page, "#fig5-plot canvas");
      n = numbers(await clickAndWait(p, "#preset-flatten"));
      expect(n.fig5).toMatchObject({ a: -0.4, b: 0.01 });
      checkFig5(n.fig5);
      expect(n.fig5.flattestEta).toBe(1); // the same minimum, now the flattest
      expect(n.fig5.minima[1].curvatureTheta).toBeGreaterThan(n.fig5.minima[0].curvatureTheta); // ... though the sharpest in theta
      expect(await canvasImage(p.page, "#fig5-plot canvas")).not.toBe(fig5Before);
      n = numbers(await inputAndWait(p, "#fig5-a", 1.2));
      expect(n.fig5.a).toBe(1.2);
      checkFig5(n.fig5);

      // Appendix A: psi(r, r-hat, delta, rho), and the Hessian factor (r-hat / rho)^2 inside the inner ball.
      const psi = (r: number, rHat: number, delta: number, rho: number) =>
        r > delta ? r : r <= rHat ? (rho * r) / rHat : ((rho - delta) * (r - delta)) / (rHat - delta) + delta;
      const checkRadial = (q: Radial) => {
        expect(q.probes.map((x) => x.r / q.delta)).toEqual(RADIAL_PROBES.map((x) => expect.closeTo(x, 12)));
        for (const x of q.probes) expectClose(x.psi, psi(x.r, q.rHat, q.delta, q.rho), `psi(${x.r})`, 1e-12);
        expectClose(q.hessianFactor, (q.rHat / q.rho) ** 2, "(r-hat / rho)^2", 1e-12);
      };
      expect(n.radial).toMatchObject({ delta: 1, rHat: 0.6, rho: 0.2 });
      checkRadial(n.radial);
      const gridBefore = await canvasImage(p.page, "#grid-plot canvas");
      n = numbers(await inputAndWait(p, "#rho", 0.8));
      expectClose(n.radial.rho, 0.8, "rho", 1e-12);
      checkRadial(n.radial);
      expect(n.radial.hessianFactor).toBeLessThan(1); // rho > r-hat: flatter
      expect(await canvasImage(p.page, "#grid-plot canvas")).not.toBe(gridBefore);
      // Back to the paper's settings for the screenshot.
      await inputAndWait(p, "#rho", 0.2);
      await inputAndWait(p, "#alpha", 0);
      await clickAndWait(p, "#preset-sharpen");
      await p.screenshot("demos-geometry");
      expect(p.errors).toEqual([]);
    });
  });

  it("5. audit: uploaded safetensors + .npy give the verdicts of audit() on the float64 reference, in the table and in the JSON download", async () => {
    // A seeded model and dataset written as a user's files.
    const dir = mkdtempSync(join(tmpdir(), "flatness-audit-page-"));
    const spec: ModelSpec = mlpSpec([3, 8, 8, 3]);
    const theta = initParameters(spec, 5);
    const mixture = gaussianMixture({ samples: 64, classes: 3, dims: 3, seed: 9 });
    const data: Dataset = mixture.data;
    const loss: LossKind = "ce";
    const names = parameterLayout(spec).views.map((v) => v.name);
    writeFileSync(join(dir, "net.safetensors"), writeModel({ model: { spec, theta }, format: "safetensors", tensorNames: names, metadata: {} }));
    writeFileSync(join(dir, "x.npy"), writeNpy(data.x, [data.n, data.features]));
    writeFileSync(join(dir, "y.npy"), writeNpy(data.labels!, [data.n]));

    const query = { autorun: 0, transforms: "alpha,neuron", metrics: "spectrum,path-norm,fisher-rao", topK: 1, seed: 0 };
    await withPage(demos, "demos/audit/index.html", query, async (p) => {
      await p.waitReady(60_000);
      for (const [id, file] of [["#model-file", "net.safetensors"], ["#data-file", "x.npy"], ["#labels-file", "y.npy"]]) {
        const input = (await p.page.$(id)) as ElementHandle<HTMLInputElement>;
        await input.uploadFile(join(dir, file));
        await p.page.waitForFunction((sel, name) => document.querySelector(sel)!.textContent!.startsWith(name), { timeout: 10_000 }, id.replace("-file", "-name"), file);
      }
      const state = await clickAndWait(p, "#run", 120_000);
      const n = state.numbers as { settings: AuditSettings; verdicts: Record<string, Record<string, string>>; report: AuditReport };
      expect(n.settings).toMatchObject({ transforms: ["alpha", "neuron"], metrics: ["spectrum", "fisher-rao", "path-norm"], topK: 1 });

      // The same audit in Node on the float64 reference engine.
      const ref = await audit({ spec, theta, data, loss }, cpuBackend() as Backend, auditOptions(n.settings));
      const refVerdicts = Object.fromEntries(ref.transforms.map((t) => [t.transform, Object.fromEntries(t.metrics.map((m) => [m.metric, m.verdict]))]));
      expect(n.verdicts).toEqual(refVerdicts);
      expect(refVerdicts.alpha).toEqual({ spectrum: "moved", "fisher-rao": "invariant", "path-norm": "invariant" });
      // The values behind the verdicts agree too (f32 on the GPU against float64).
      ref.transforms.forEach((t, i) => {
        t.metrics.forEach((m, j) => {
          const got = n.report.transforms[i].metrics[j];
          expectClose(got.before!, m.before!, `${t.transform} ${m.metric} before`, 1e-3);
          expectClose(got.after!, m.after!, `${t.transform} ${m.metric} after`, 1e-3);
        });
        expect(n.report.transforms[i].functionCheck!.relativeOutputDifference).toBeLessThan(1e-5);
      });

      // The verdict table in the page.
      const cells = await p.page.$$eval("#verdicts td[data-verdict]", (tds) => tds.map((td) => [td.getAttribute("data-transform"), td.getAttribute("data-metric"), td.getAttribute("data-verdict"), td.textContent]));
      expect(cells.length).toBe(6);
      for (const [transform, metric, verdict, text] of cells) {
        expect(verdict).toBe(refVerdicts[transform!][metric!]);
        expect(text).toContain(verdict === "invariant" ? "invariant" : "moved");
      }

      // The JSON download is the report (what `flatness audit --json` prints).
      const downloaded = await p.page.evaluate(async () => {
        const a = document.querySelector("#download-json") as HTMLAnchorElement;
        return { name: a.download, text: await (await fetch(a.href)).text() };
      });
      expect(downloaded.name).toBe("audit.json");
      const json = JSON.parse(downloaded.text) as AuditReport;
      expect(json).toEqual(n.report);
      expect(json.parameters).toBe(theta.length);
      expect(json.samples).toBe(data.n);
      expect(Object.fromEntries(json.transforms.map((t) => [t.transform, Object.fromEntries(t.metrics.map((m) => [m.metric, m.verdict]))]))).toEqual(refVerdicts);
      expect(await p.page.$eval("#heatmap svg", (s) => s.querySelectorAll("rect").length)).toBeGreaterThan(6);
      expect(await p.page.$eval("#cli", (e) => e.textContent)).toContain("--model net.safetensors --data x.npy --labels y.npy --loss ce --transforms alpha,neuron");
      // The printed command line, run with --cpu on the same files, gives the same verdicts.
      const line = await p.page.$eval("#cli", (e) => e.textContent!);
      const cliReport = JSON.parse(await cli(argvOf(line, dir, ["--cpu", "--quiet"]))) as AuditReport;
      expect(Object.fromEntries(cliReport.transforms.map((t) => [t.transform, Object.fromEntries(t.metrics.map((m) => [m.metric, m.verdict]))]))).toEqual(n.verdicts);
      await p.screenshot("demos-audit");
      expect(p.errors).toEqual([]);
    });
  });

  it("5. audit: the CNN example on the built-in MNIST digits gives the verdicts of audit() on the float64 reference", async () => {
    // The page's CNN example (He initialisation, seed 1) and the first 64 built-in digits, as the
    // float64 reference sees them: the same files the build wrote.
    const spec = parseArchitecture(CNN_EXAMPLE, [1, 28, 28]);
    const theta = Float64Array.from(Float32Array.from(initParameters(spec, 1)));
    const x = parseNpy(readFileSync(join(repoRoot, "dist/demos/data/mnist-x.npy")), "mnist-x.npy");
    const y = parseNpy(readFileSync(join(repoRoot, "dist/demos/data/mnist-y.npy")), "mnist-y.npy");
    expect(x.shape).toEqual([520, 1, 28, 28]);
    expect(Array.from(y.data.subarray(0, 12))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
    const n = 64;
    const data: Dataset = { n, features: 784, x: Float32Array.from(x.data.subarray(0, n * 784)), labels: Int32Array.from(y.data.subarray(0, n)), imageShape: [1, 28, 28] };
    const query = { example: "cnn", digits: n, autorun: 0, transforms: "alpha,neuron", metrics: "spectrum,path-norm", topK: 1, seed: 0 };
    await withPage(demos, "demos/audit/index.html", query, async (p) => {
      await p.waitReady(60_000);
      expect(await p.page.$eval("#example-note", (e) => e.textContent)).toContain("CNN example");
      const state = await clickAndWait(p, "#run", 180_000);
      const got = state.numbers as { verdicts: Record<string, Record<string, string>>; report: AuditReport; settings: AuditSettings };
      expect(got.report.parameters).toBe(theta.length);
      expect(got.report.samples).toBe(n);
      const ref = await audit({ spec, theta, data, loss: "ce" }, cpuBackend() as Backend, auditOptions(got.settings));
      const refVerdicts = Object.fromEntries(ref.transforms.map((t) => [t.transform, Object.fromEntries(t.metrics.map((m) => [m.metric, m.verdict]))]));
      expect(got.verdicts).toEqual(refVerdicts);
      // T_alpha moves the spectrum of a CNN and keeps its path norm; so does channel rescaling.
      expect(refVerdicts).toEqual({ alpha: { spectrum: "moved", "path-norm": "invariant" }, neuron: { spectrum: "moved", "path-norm": "invariant" } });
      ref.transforms.forEach((t, i) => {
        t.metrics.forEach((m, j) => {
          expectClose(got.report.transforms[i].metrics[j].before!, m.before!, `${t.transform} ${m.metric} before`, 1e-3);
          expectClose(got.report.transforms[i].metrics[j].after!, m.after!, `${t.transform} ${m.metric} after`, 1e-3);
        });
      });
      expect(await p.page.$eval("#summary", (e) => e.textContent)).toContain("1x28x28 -> conv(4,3)");
      await p.screenshot("demos-audit-cnn");
      expect(p.errors).toEqual([]);
    });
  });

  it("5. audit: the example starts on its own, and Cancel stops it", async () => {
    await withPage(demos, "demos/audit/index.html", {}, async (p) => {
      await p.page.waitForFunction(() => (document.querySelector(".task progress") as HTMLProgressElement | null)?.value! > 0.05, { timeout: 60_000, polling: 50 });
      const { version } = await p.state();
      await p.page.click(".task-cancel");
      const state = await p.waitForVersion(version, 60_000);
      expect(state.numbers).toMatchObject({ cancelled: true });
      expect(await p.page.$eval(".task-message", (e) => e.textContent)).toBe("cancelled");
      expect(await p.page.$eval("#results", (e) => (e as HTMLElement).hidden)).toBe(true);
      expect(p.errors).toEqual([]);
    });
  });

  it("5. audit on the WebAssembly engine (?backend=wasm, cross-origin isolated: worker threads) gives the verdicts of audit() on the float64 reference", async () => {
    const dir = mkdtempSync(join(tmpdir(), "flatness-audit-wasm-"));
    const spec: ModelSpec = mlpSpec([3, 8, 3]);
    const theta = initParameters(spec, 7);
    const data: Dataset = gaussianMixture({ samples: 48, classes: 3, dims: 3, seed: 4 }).data;
    const names = parameterLayout(spec).views.map((v) => v.name);
    writeFileSync(join(dir, "net.safetensors"), writeModel({ model: { spec, theta }, format: "safetensors", tensorNames: names, metadata: {} }));
    writeFileSync(join(dir, "x.npy"), writeNpy(data.x, [data.n, data.features]));
    writeFileSync(join(dir, "y.npy"), writeNpy(data.labels!, [data.n]));
    const query = { backend: "wasm", autorun: 0, transforms: "alpha,neuron", metrics: "spectrum,path-norm,fisher-rao", topK: 1, seed: 0 };
    await withPage(demos, "demos/audit/index.html", query, async (p) => {
      await p.waitReady(60_000);
      // Served with COOP/COEP: SharedArrayBuffer, so the engine takes min(8, hardware threads) threads.
      const { isolated, cores } = await p.page.evaluate(() => ({ isolated: crossOriginIsolated, cores: navigator.hardwareConcurrency }));
      expect(isolated).toBe(true);
      const threads = Math.min(8, cores);
      const adapterLine = await p.page.$eval("#adapter", (e) => e.textContent ?? "");
      expect(adapterLine).toMatch(new RegExp(`^Engine: WebAssembly CPU engine \\((relaxed )?SIMD, ${threads} threads?\\)\\.$`));
      console.log(`audit on wasm: ${adapterLine}`);
      expect(await p.page.$$(".webgpu-missing")).toHaveLength(0); // chosen, not a fallback: no note
      for (const [id, file] of [["#model-file", "net.safetensors"], ["#data-file", "x.npy"], ["#labels-file", "y.npy"]]) {
        const input = (await p.page.$(id)) as ElementHandle<HTMLInputElement>;
        await input.uploadFile(join(dir, file));
        await p.page.waitForFunction((sel, name) => document.querySelector(sel)!.textContent!.startsWith(name), { timeout: 10_000 }, id.replace("-file", "-name"), file);
      }
      const state = await clickAndWait(p, "#run", 60_000);
      const n = state.numbers as { settings: AuditSettings; verdicts: Record<string, Record<string, string>>; report: AuditReport; backend: string; adapter: string };
      expect(n.backend).toBe("wasm");
      expect(n.adapter).toMatch(new RegExp(`, ${threads} threads?\\)$`));
      const ref = await audit({ spec, theta, data, loss: "ce" }, cpuBackend() as Backend, auditOptions(n.settings));
      const refVerdicts = Object.fromEntries(ref.transforms.map((t) => [t.transform, Object.fromEntries(t.metrics.map((m) => [m.metric, m.verdict]))]));
      expect(n.verdicts).toEqual(refVerdicts);
      expect(refVerdicts.alpha).toEqual({ spectrum: "moved", "fisher-rao": "invariant", "path-norm": "invariant" });
      ref.transforms.forEach((t, i) => {
        t.metrics.forEach((m, j) => {
          expectClose(n.report.transforms[i].metrics[j].before!, m.before!, `${t.transform} ${m.metric} before`, 1e-3);
          expectClose(n.report.transforms[i].metrics[j].after!, m.after!, `${t.transform} ${m.metric} after`, 1e-3);
        });
      });
      const cells = await p.page.$$eval("#verdicts td[data-verdict]", (tds) => tds.map((td) => [td.getAttribute("data-transform"), td.getAttribute("data-metric"), td.getAttribute("data-verdict")]));
      expect(cells.length).toBe(6);
      for (const [transform, metric, verdict] of cells) expect(verdict).toBe(refVerdicts[transform!][metric!]);
      expect(await p.page.$eval("#summary", (e) => e.textContent)).toMatch(/ ms on the WebAssembly engine\.$/);
      await p.screenshot("demos-audit-wasm");
      expect(p.errors).toEqual([]);
    }, { isolated: true });
  });

  it("2 and 5 without WebGPU run on the WebAssembly engine with a note on enabling it (2: no 3-D surface); 4 works without it", async () => {
    // Landscape: the default 2-D slice, as on WebGPU, with the contour map but no 3-D surface.
    await withPage(demos, "demos/landscape/index.html", {}, async (p) => {
      const n = (await p.waitReady(60_000)).numbers as unknown as LandscapeNumbers & { backend: string };
      expect(n.backend).toBe("wasm");
      expect(n.settings).toMatchObject({ directions: "filter", dims: 2, steps: 25 });
      const ref = await referenceSlice(n.settings);
      expectAllClose(n.values, ref.values, "L(theta + a d1 + b d2) on wasm", 1e-3);
      expect(n.surfacePixels).toBeNull();
      expect(await p.page.$$eval("#contour canvas", (cs) => cs.length)).toBeGreaterThan(0);
      expect(await p.page.$("#surface")).toBeNull();
      expect(await p.page.$eval("#surface-missing", (e) => e.textContent)).toMatch(/needs|WebGPU render pipeline/);
      expect(await p.page.$eval("#reset-view", (b) => (b as HTMLButtonElement).disabled)).toBe(true);
      const note = await p.page.$eval(".demo-note.webgpu-missing", (e) => e.textContent ?? "");
      expect(note).toMatch(/runs on the WebAssembly engine/);
      expect(note).toMatch(/enable-unsafe-webgpu/);
      expect(await p.page.$eval(".lede", (e) => (e as HTMLElement).innerText)).toMatch(/section/);
      await p.screenshot("demos-landscape-wasm");
      expect(p.errors).toEqual([]);
    }, { withoutWebGPU: true });
    await withPage(demos, "demos/audit/index.html", { autorun: 0 }, async (p) => {
      const state = await p.waitReady(60_000);
      expect(state.error).toBeNull();
      expect(await p.page.$eval("#adapter", (e) => e.textContent)).toMatch(/^Engine: WebAssembly CPU engine/);
      expect(await p.page.$eval(".demo-note.webgpu-missing", (e) => e.textContent)).toMatch(/enable-unsafe-webgpu/);
      expect(await p.page.$eval("#run", (b) => (b as HTMLButtonElement).disabled)).toBe(false);
      expect(p.errors).toEqual([]);
    }, { withoutWebGPU: true });
    // ?backend=webgpu where there is none: the explanation, as before.
    await withPage(demos, "demos/landscape/index.html", { backend: "webgpu" }, async (p) => {
      await p.page.waitForFunction("window.__demo && window.__demo.error !== null", { timeout: 30_000 });
      expect((await p.state()).error).toMatch(/WebGPU unavailable/);
      expect(await p.page.$eval(".demo-error.webgpu-missing", (e) => (e as HTMLElement).innerText)).toMatch(/enable-unsafe-webgpu/);
      expect(await p.page.$eval("#compute", (b) => (b as HTMLButtonElement).disabled)).toBe(true);
      expect(p.errors).toEqual([]);
    }, { withoutWebGPU: true });
    await withPage(demos, "demos/geometry/index.html", {}, async (p) => {
      const state = await p.waitReady(60_000);
      expect(state.error).toBeNull();
      expect(p.errors).toEqual([]);
    }, { withoutWebGPU: true });
  });
});
