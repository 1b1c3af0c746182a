/// <reference lib="dom" />
/**
 * Page 3, "Hessian spectrum, before and after" (demos/spectrum/): trains the demos' seeded
 * model on WebGPU (or the WebAssembly engine: ?backend=wasm, or where WebGPU is missing), then measures the top-k eigenvalues (Lanczos) and the SLQ spectral density of
 * its exact Hessian before and after a function-preserving transform (transforms.ts),
 * with one measureMetrics call per model, as `flatness measure --metrics spectrum,density`.
 * Changing the transform re-measures the "after" model (the running measurement is cancelled).
 *
 * Query parameters: the problem's (shared/params.ts problemFromQuery), k, runs, steps, and
 * transform=alpha|theorem5|neuron with p=<log10 of its parameter>.
 */
import type { Backend } from "../../src/backend/mod.ts";
import type { Objective } from "../../src/objective.ts";
import { densityMoments } from "../../src/metrics/density.ts";
import { measureMetrics } from "../../src/metrics/suite.ts";
import type { TrainModelResult } from "../../src/train/trainModel.ts";
import { byId, el, metricTable } from "../shared/dom.ts";
import { isAbortError, showError } from "../shared/errors.ts";
import { formatNumber } from "../shared/format.ts";
import { choiceParam, numberParam, problemFromQuery } from "../shared/params.ts";
import { linePlot, type PlotSeries } from "../shared/plots.ts";
import { cliCommands, type PreparedProblem, prepareProblem } from "../shared/problem.ts";
import { publish } from "../shared/record.ts";
import { createTask, liveRunner, type Task } from "../shared/tasks.ts";
import { trainProblem } from "../shared/train.ts";
import { backendAdapter, backendLine, requireBackend } from "../shared/webgpu.ts";
import {
  applySpectrumTransform,
  DEFAULT_SPECTRUM_SETTINGS,
  spectrumCliArgs,
  spectrumMeasureOptions,
  type SpectrumSettings,
  type SpectrumTransform,
  type SpectrumTransformKind,
  TRANSFORM_INFO,
  transformAlphas,
  transformCommand,
  transformFactors,
} from "./transforms.ts";

interface SpectrumResult {
  eigenvalues: number[];
  residuals: number[];
  converged: boolean[];
  density: { grid: number[]; density: number[]; nodes: number[][]; weights: number[][]; sigma: number; matvecs: number };
  /** SLQ estimates of tr(H)/n and tr(H²)/n. */
  moments: [number, number];
  loss: number;
  hvps: number;
  wallMs: number;
}

const app = byId("app");
const tasks = byId("tasks");
const status = byId("status");
const kindSelect = byId<HTMLSelectElement>("transform-kind");
const slider = byId<HTMLInputElement>("transform-parameter");

let backend: Backend;
let prepared: PreparedProblem;
let objective: Objective<unknown>;
let trained: TrainModelResult;
let settings: SpectrumSettings;
let before: SpectrumResult;
let after: SpectrumResult | null = null;
let transform: SpectrumTransform;

const updateTable = metricTable(byId("table"), ["", "before", "after", "after ÷ before"]);
const topPlot = linePlot(byId("plot-top"), {
  title: "Top eigenvalues of the Hessian",
  xLabel: "i (eigenvalue rank)",
  yLabel: "λ_i (log scale)",
  yLog: true,
  xIntegers: true,
  series: [],
});
const densityPlot = linePlot(byId("plot-density"), {
  title: "Spectral density (stochastic Lanczos quadrature)",
  xLabel: "eigenvalue λ (asinh scale)",
  yLabel: "density (log scale)",
  yLog: true,
  xAsinh: 0.01,
  height: 300,
  series: [],
});

async function measure(theta: Float64Array, task: Task): Promise<SpectrumResult> {
  const t = objective.space.fromArray(theta);
  const t0 = performance.now();
  const hvps0 = objective.counters.hvp + objective.counters.blockHvpDirections;
  try {
    const report = await measureMetrics(objective, t, theta, prepared.train, {
      ...spectrumMeasureOptions(settings),
      onProgress: (metric, fraction, message) => task.progress((metric === "spectrum" ? 0 : 0.3) + (metric === "spectrum" ? 0.3 : 0.7) * Math.min(1, fraction), `${metric}: ${message}`),
    });
    const spectrum = report.spectrum as { eigenvalues: number[]; residuals: number[]; converged: boolean[] };
    const density = report.density as SpectrumResult["density"];
    return {
      eigenvalues: spectrum.eigenvalues,
      residuals: spectrum.residuals,
      converged: spectrum.converged,
      density: { grid: density.grid, density: density.density, nodes: density.nodes, weights: density.weights, sigma: density.sigma, matvecs: density.matvecs },
      moments: [densityMoments(density.nodes, density.weights, 1), densityMoments(density.nodes, density.weights, 2)],
      loss: report.loss,
      hvps: objective.counters.hvp + objective.counters.blockHvpDirections - hvps0,
      wallMs: performance.now() - t0,
    };
  } finally {
    objective.space.dispose(t);
  }
}

function densitySeries(name: string, r: SpectrumResult, color: string, dash = false): PlotSeries {
  // Clip the smoothed density's far tails (exp(-x²/2) underflow) so the log axis stays readable.
  const max = Math.max(...r.density.density);
  return { name, x: r.density.grid, y: r.density.density.map((d) => (d > 1e-6 * max ? d : NaN)), color, dash, gaps: true };
}

function render(): void {
  const rows: { name: string; values: (number | string)[] }[] = before.eigenvalues.map((l, i) => ({
    name: `λ${i + 1}`,
    values: [l, after ? after.eigenvalues[i] : "…", after ? after.eigenvalues[i] / l : "…"],
  }));
  rows.push({ name: "tr(H)/n (SLQ)", values: [before.moments[0], after ? after.moments[0] : "…", after ? after.moments[0] / before.moments[0] : "…"] });
  rows.push({ name: "loss", values: [before.loss, after ? after.loss : "…", after ? after.loss / before.loss : "…"] });
  updateTable(rows);
  const idx = before.eigenvalues.map((_, i) => i + 1);
  const top: PlotSeries[] = [{ name: "before", x: idx, y: before.eigenvalues, style: "both", color: "#0072B2" }];
  const dens: PlotSeries[] = [densitySeries("before", before, "#0072B2")];
  if (after) {
    top.push({ name: "after", x: idx, y: after.eigenvalues, style: "both", color: "#D55E00" });
    dens.push(densitySeries("after", after, "#D55E00"));
  }
  topPlot.update(top);
  densityPlot.update(dens);
}

function publishNumbers(): void {
  const strip = (r: SpectrumResult) => ({
    eigenvalues: r.eigenvalues,
    residuals: r.residuals,
    converged: r.converged,
    moments: r.moments,
    nodes: r.density.nodes,
    weights: r.density.weights,
    sigma: r.density.sigma,
    loss: r.loss,
    hvps: r.hvps,
    wallMs: r.wallMs,
  });
  publish({
    problem: prepared.problem,
    parameters: prepared.parameters,
    adapter: backendAdapter(backend),
    backend: backend.name,
    settings,
    trainedTheta: Array.from(trained.theta),
    transform: { ...transform, alphas: transformAlphas(prepared.spec, transform), factors: transformFactors(prepared.spec, transform) },
    transformedTheta: Array.from(applySpectrumTransform(prepared.spec, trained.theta, transform)),
    before: strip(before),
    after: after ? strip(after) : null,
  });
}

function showTransform(): void {
  const info = TRANSFORM_INFO[transform.kind];
  byId("parameter-label").textContent = info.parameter;
  byId("parameter-value").textContent = `${info.parameter} = ${formatNumber(10 ** transform.log10, 3)}`;
  const alphas = transformAlphas(prepared.spec, transform);
  const factors = transformFactors(prepared.spec, transform);
  byId("transform-detail").textContent = alphas
    ? `α = (${alphas.map((a) => formatNumber(a, 3)).join(", ")}): weights of layer k times α_k, biases times α_1⋯α_k.`
    : factors
    ? `c_j from ${formatNumber(Math.min(...factors), 3)} to ${formatNumber(Math.max(...factors), 3)} over the ${factors.length} units of hidden layer 1.`
    : "s = 1: no rescaling.";
  const p = prepared.problem;
  byId("cli").textContent = [
    ...cliCommands(p, spectrumCliArgs(settings)),
    transformCommand(prepared.spec, transform),
    `npx flatness measure --model after.json --data data/x_train.npy --labels data/y_train.npy --loss ce ${spectrumCliArgs(settings)}`,
  ].join("\n\n");
  byId("problem").textContent =
    `${prepared.description}; ${prepared.train.n} training points (the metrics use them); net [${p.widths.join(", ")}], ReLU, ` +
    `${prepared.parameters} parameters; ${p.epochs} epochs, seed ${p.seed}. Page options: ?k=&runs=&steps=&transform=alpha|theorem5|neuron&p=&epochs=&samples=`;
}

function setSliderRange(kind: SpectrumTransformKind, value?: number): void {
  const info = TRANSFORM_INFO[kind];
  slider.min = String(info.min);
  slider.max = String(info.max);
  slider.value = String(value ?? info.initial);
}

// ---- the "after" measurement: restarted on every change ---------------------------------------

const live = liveRunner(
  tasks,
  "Spectrum after the transform",
  async (task, isCurrent) => {
    const t = { ...transform };
    const result = await measure(applySpectrumTransform(prepared.spec, trained.theta, t), task);
    if (!isCurrent()) return;
    after = result;
    render();
    status.textContent = `Before: ${before.hvps} HVPs, ${formatNumber(before.wallMs / 1000, 3)} s; after: ${result.hvps} HVPs, ${formatNumber(result.wallMs / 1000, 3)} s.`;
    publishNumbers();
  },
  { onCancel: () => (status.textContent = "Cancelled: change the transform to measure again.") },
);

function onTransformInput(): void {
  transform = { kind: kindSelect.value as SpectrumTransformKind, log10: Number(slider.value) };
  showTransform();
  after = null;
  render();
  live.request();
}

async function main(): Promise<void> {
  const context = await requireBackend(app);
  if (!context) {
    // Only the explanation and the message stay: empty panels would look like a broken page.
    document.querySelector(".grid")?.setAttribute("hidden", "");
    byId("adapter").textContent = "No compute engine: nothing can be computed here.";
    status.textContent = "";
    return;
  }
  backend = context;
  byId("adapter").textContent = backendLine(backend);
  prepared = prepareProblem(problemFromQuery());
  settings = {
    k: numberParam("k", DEFAULT_SPECTRUM_SETTINGS.k, { min: 1, max: 50, integer: true }),
    runs: numberParam("runs", DEFAULT_SPECTRUM_SETTINGS.runs, { min: 1, max: 100, integer: true }),
    steps: numberParam("steps", DEFAULT_SPECTRUM_SETTINGS.steps, { min: 2, max: 500, integer: true }),
    seed: DEFAULT_SPECTRUM_SETTINGS.seed,
  };
  const kind = choiceParam("transform", "alpha", ["alpha", "theorem5", "neuron"] as const);
  for (const [k, info] of Object.entries(TRANSFORM_INFO)) kindSelect.append(el("option", { value: k }, info.label));
  kindSelect.value = kind;
  const info = TRANSFORM_INFO[kind];
  setSliderRange(kind, numberParam("p", info.initial, { min: info.min, max: info.max }));
  transform = { kind, log10: Number(slider.value) };
  kindSelect.disabled = true;
  slider.disabled = true;
  showTransform();

  const trainTask = createTask(tasks, "Training");
  try {
    trained = await trainProblem(backend, prepared, trainTask);
  } catch (e) {
    if (isAbortError(e)) {
      status.textContent = "Training cancelled: reload the page to start again.";
      return;
    }
    throw e;
  }
  trainTask.done(`${trained.steps} steps, train accuracy ${formatNumber(100 * (trained.finalTrainAccuracy ?? NaN), 3)}%`);
  objective = await backend.objective(prepared.spec, prepared.train, prepared.loss);

  status.textContent = "Measuring the trained model…";
  const beforeTask = createTask(tasks, "Spectrum of the trained model");
  try {
    before = await measure(trained.theta, beforeTask);
  } catch (e) {
    if (isAbortError(e)) {
      status.textContent = "Cancelled: reload the page to start again.";
      return;
    }
    throw e;
  }
  beforeTask.done(`${before.hvps} HVPs in ${formatNumber(before.wallMs / 1000, 3)} s`);
  render();
  kindSelect.disabled = false;
  slider.disabled = false;
  kindSelect.addEventListener("change", () => {
    setSliderRange(kindSelect.value as SpectrumTransformKind);
    onTransformInput();
  });
  slider.addEventListener("input", () => onTransformInput());
  live.request();
}

main().catch((e) => showError(e));
