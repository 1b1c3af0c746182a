/// <reference lib="dom" />
/**
 * Page 1, "Same function, different sharpness" (demos/same-function/): trains a small ReLU net
 * on WebGPU (or the WebAssembly engine: ?backend=wasm, or where WebGPU is missing), then lets the user move T_alpha (one alpha per layer, product 1) and a neuron-wise
 * rescaling. The decision boundary is drawn from the live parameters (float64 forward pass on a
 * grid, boundary.ts) and stays pixel-identical; the metrics of metrics.ts are recomputed on the
 * same backend after each change, with their history.
 *
 * Query parameters (tests use them for speed): dataset, samples, hidden, epochs, batch, lr, seed
 * (shared/params.ts problemFromQuery) and cells (boundary grid resolution, default 200).
 */
import type { Backend } from "../../src/backend/mod.ts";
import { layerUnits } from "../../src/model.ts";
import type { Objective } from "../../src/objective.ts";
import { measureMetrics } from "../../src/metrics/suite.ts";
import { homogeneousAlphaScale } from "../../src/transforms/alphaScale.ts";
import { neuronScale, randomNeuronFactors } from "../../src/transforms/neuronScale.ts";
import type { TrainModelResult } from "../../src/train/trainModel.ts";
import { byId, el, metricTable } from "../shared/dom.ts";
import { isAbortError, showError } from "../shared/errors.ts";
import { formatNumber } from "../shared/format.ts";
import { numberParam, problemFromQuery } from "../shared/params.ts";
import { linePlot, type LinePlot, type PlotSeries } from "../shared/plots.ts";
import { cliCommands, type PreparedProblem, prepareProblem } from "../shared/problem.ts";
import { markBusy, publish } from "../shared/record.ts";
import { coalesce, createTask, liveRunner, type Task } from "../shared/tasks.ts";
import { trainProblem } from "../shared/train.ts";
import { backendAdapter, backendLabel, backendLine, requireBackend } from "../shared/webgpu.ts";
import { boundaryGrid, type BoundaryGrid, drawBoundary, gridOutputs, maxAbsDifference } from "./boundary.ts";
import { costs, METRIC_ROWS, relativeChange, SAME_FUNCTION_CLI_ARGS, SAME_FUNCTION_METRICS, SAME_FUNCTION_OPTIONS, summarize, verdict } from "./metrics.ts";

/** Seed of the neuron-rescaling factors' directions (the spread slider scales them). */
const NEURON_SEED = 7;

interface Transform {
  /** log10 of alpha_1 .. alpha_{K-1}; alpha_K makes the product 1. */
  logAlphas: number[];
  /** Hidden layer rescaled (0-based Linear index). */
  neuronLayer: number;
  /** log10 of the spread s: factors log-uniform in [1/s, s], seeded; 0 = no rescaling. */
  logSpread: number;
}

interface Measurement {
  index: number;
  transform: Transform;
  alphas: number[];
  values: Record<string, number>;
  costs: ReturnType<typeof costs>;
}

const app = byId("app");
const tasks = byId("tasks");
const adapterLine = byId("adapter");
const canvas = byId<HTMLCanvasElement>("boundary");
const functionCheck = byId("function-check");
const controls = byId("controls");
const resetButton = byId<HTMLButtonElement>("reset");
const sharpenButton = byId<HTMLButtonElement>("sharpen");
const retrainButton = byId<HTMLButtonElement>("retrain");
const measureStatus = byId("measure-status");

let backend: Backend;
let prepared: PreparedProblem;
let objective: Objective<unknown> | null = null;
let trained: TrainModelResult | null = null;
let grid: BoundaryGrid;
let trainedOutputs: Float64Array;
let liveOutputs: Float64Array;
let baseline: Record<string, number> | null = null;
let history: Measurement[] = [];
let transform: Transform = { logAlphas: [], neuronLayer: 0, logSpread: 0 };
let sliders: HTMLInputElement[] = [];
let spreadSlider: HTMLInputElement;
let layerSelect: HTMLSelectElement;

// ---- derived parameters -------------------------------------------------------------------

function alphasOf(t: Transform): number[] {
  const head = t.logAlphas.map((l) => 10 ** l);
  return [...head, 10 ** -t.logAlphas.reduce((s, l) => s + l, 0)];
}

function factorsOf(t: Transform): number[] | null {
  if (t.logSpread <= 0) return null;
  const width = layerUnits(prepared.spec.layers[t.neuronLayer]);
  return randomNeuronFactors(width, NEURON_SEED, 10 ** t.logSpread);
}

/** theta = N_c(T_alpha(theta_trained)): both diagonal, so the order does not matter. */
function thetaOf(t: Transform): Float64Array {
  let theta = homogeneousAlphaScale(prepared.spec, trained!.theta, alphasOf(t));
  const factors = factorsOf(t);
  if (factors) theta = neuronScale(prepared.spec, theta, t.neuronLayer, factors);
  return theta;
}

// ---- the boundary -------------------------------------------------------------------------

function redrawBoundary(): void {
  if (!trained) return;
  liveOutputs = gridOutputs(prepared.spec, thetaOf(transform), grid);
  drawBoundary(canvas, grid, liveOutputs, prepared.classes, prepared.train, prepared.test);
  const diff = maxAbsDifference(liveOutputs, trainedOutputs);
  functionCheck.textContent =
    `Outputs on the ${grid.cells}×${grid.cells} grid vs the trained parameters: largest difference ${formatNumber(diff, 2)} ` +
    `(float64 rounding). Filled dots: training points; rings: held-out points. ` +
    `Train accuracy ${formatNumber(100 * (trained.finalTrainAccuracy ?? NaN), 3)}%, test ${formatNumber(100 * (trained.finalTestAccuracy ?? NaN), 3)}%.`;
}
const scheduleRedraw = coalesce(redrawBoundary);

// ---- controls -----------------------------------------------------------------------------

function buildControls(): void {
  const K = prepared.spec.layers.length;
  controls.replaceChildren();
  sliders = [];
  for (let k = 0; k < K - 1; k++) {
    const input = el("input", { type: "range", id: `alpha-${k + 1}`, min: "-2", max: "2", step: "0.01", value: "0", "aria-label": `log10 alpha ${k + 1}` });
    const out = el("output", { id: `alpha-${k + 1}-value`, for: `alpha-${k + 1}` }, "1");
    controls.append(el("label", { for: `alpha-${k + 1}` }, `α${sub(k + 1)} (layer ${k + 1})`), input, out);
    input.addEventListener("input", () => onTransformInput());
    sliders.push(input);
  }
  controls.append(el("label", {}, `α${sub(K)} = 1 / ∏ (layer ${K})`), el("span", { class: "hint" }, "keeps the product at 1"), el("output", { id: `alpha-${K}-value` }, "1"));
  layerSelect = el("select", { id: "neuron-layer" });
  for (let k = 0; k < K - 1; k++) layerSelect.append(el("option", { value: String(k) }, `hidden layer ${k + 1} (${layerUnits(prepared.spec.layers[k])} units)`));
  layerSelect.addEventListener("change", () => onTransformInput());
  spreadSlider = el("input", { type: "range", id: "neuron-spread", min: "0", max: "2", step: "0.01", value: "0", "aria-label": "log10 spread of the neuron factors" });
  spreadSlider.addEventListener("input", () => onTransformInput());
  controls.append(
    el("label", { for: "neuron-layer" }, "neuron rescaling of"),
    layerSelect,
    el("span"),
    el("label", { for: "neuron-spread" }, "factors c_j in [1/s, s]"),
    spreadSlider,
    el("output", { id: "neuron-spread-value", for: "neuron-spread" }, "s = 1"),
  );
}

function sub(n: number): string {
  return String(n).replace(/\d/g, (d) => "₀₁₂₃₄₅₆₇₈₉"[Number(d)]);
}

function readControls(): Transform {
  return {
    logAlphas: sliders.map((s) => Number(s.value)),
    neuronLayer: Number(layerSelect.value),
    logSpread: Number(spreadSlider.value),
  };
}

function showControlValues(t: Transform): void {
  alphasOf(t).forEach((a, k) => (byId(`alpha-${k + 1}-value`).textContent = formatNumber(a, 3)));
  byId("neuron-spread-value").textContent = `s = ${formatNumber(10 ** t.logSpread, 3)}`;
}

function setControlsEnabled(enabled: boolean): void {
  for (const s of [...sliders, spreadSlider, layerSelect, resetButton, sharpenButton]) s.disabled = !enabled;
}

function onTransformInput(): void {
  transform = readControls();
  showControlValues(transform);
  scheduleRedraw();
  // The boundary follows at once; the metrics once the slider rests (a run in progress is superseded).
  live.request();
}

function setControls(t: Transform): void {
  sliders.forEach((s, k) => (s.value = String(t.logAlphas[k] ?? 0)));
  layerSelect.value = String(t.neuronLayer);
  spreadSlider.value = String(t.logSpread);
  onTransformInput();
}

// ---- measuring ----------------------------------------------------------------------------

async function measureAt(theta: Float64Array, task: Task) {
  const t = objective!.space.fromArray(theta);
  try {
    return await measureMetrics(objective!, t, theta, prepared.train, {
      ...SAME_FUNCTION_OPTIONS,
      onProgress: (metric, fraction, message) => {
        const i = Math.max(0, SAME_FUNCTION_METRICS.indexOf(metric as never));
        task.progress((i + Math.min(1, fraction)) / SAME_FUNCTION_METRICS.length, `${metric}: ${message}`);
      },
    });
  } finally {
    objective!.space.dispose(t);
  }
}

const live = liveRunner(
  tasks,
  "Measuring the live parameters",
  async (task, isCurrent) => {
    const t = structuredClone(transform);
    const report = await measureAt(thetaOf(t), task);
    if (isCurrent()) record(t, summarize(report), costs(report));
  },
  { onCancel: () => (measureStatus.textContent = "Measurement cancelled: the table shows the last one finished; move a slider to measure again.") },
);

// ---- table, plots, publish ----------------------------------------------------------------

const updateTable = metricTable(byId("table"), ["measure", "now", "trained θ", "ratio", "verdict"]);
const hessianPlot = linePlot(byId("plot-hessian"), {
  title: "Hessian-based measures, ratio to the trained θ",
  xLabel: "measurement",
  yLabel: "ratio (log scale)",
  yLog: true,
  xIntegers: true,
  series: [],
});
const invariantPlot = linePlot(byId("plot-invariant"), {
  title: "Measures built to be invariant, ratio to the trained θ",
  xLabel: "measurement",
  yLabel: "ratio",
  xIntegers: true,
  series: [],
});
/** Made in main(), once the backend its title names is open. */
let trainingPlot: LinePlot;
const makeTrainingPlot = (b: Backend) =>
  linePlot(byId("plot-training"), {
    title: `Training on ${backendLabel(b)}`,
    xLabel: "epoch",
    yLabel: "loss (log scale)",
    yLog: true,
    xIntegers: true,
    series: [],
  });

function record(t: Transform, values: Record<string, number>, cost: ReturnType<typeof costs>): void {
  if (!baseline) baseline = values;
  measureStatus.textContent = "";
  history.push({ index: history.length + 1, transform: t, alphas: alphasOf(t), values, costs: cost });
  renderMeasurements();
  publishNumbers();
}

function renderMeasurements(): void {
  const now = history.at(-1)!.values;
  const base = baseline!;
  updateTable([
    { name: "loss", values: [now.loss, base.loss, now.loss / base.loss, verdict(now.loss, base.loss)], className: verdict(now.loss, base.loss) },
    ...METRIC_ROWS.map((row) => {
      const v = verdict(now[row.key], base[row.key]);
      return { name: row.label, values: [now[row.key], base[row.key], now[row.key] / base[row.key], v], className: v };
    }),
  ]);
  document.querySelectorAll("table.metrics tbody tr td:last-child").forEach((td) => td.classList.add("verdict"));
  const xs = history.map((m) => m.index);
  const series = (kind: "hessian" | "invariant"): PlotSeries[] =>
    METRIC_ROWS.filter((r) => r.kind === kind).map((r) => ({
      name: r.label,
      x: xs,
      y: history.map((m) => m.values[r.key] / base[r.key]),
      style: "both",
    }));
  hessianPlot.update(series("hessian"));
  invariantPlot.update(series("invariant"));
}

function publishNumbers(): void {
  const last = history.at(-1)!;
  const factors = factorsOf(last.transform);
  publish({
    problem: prepared.problem,
    parameters: prepared.parameters,
    adapter: backendAdapter(backend),
    backend: backend.name,
    training: {
      finalTrainLoss: trained!.finalTrainLoss,
      finalTrainAccuracy: trained!.finalTrainAccuracy,
      finalTestAccuracy: trained!.finalTestAccuracy,
      steps: trained!.steps,
      ms: trained!.ms,
    },
    trainedTheta: Array.from(trained!.theta),
    theta: Array.from(thetaOf(last.transform)),
    alphas: last.alphas,
    neuron: { layer: last.transform.neuronLayer, spread: 10 ** last.transform.logSpread, factors },
    trained: baseline,
    now: last.values,
    ratios: Object.fromEntries(Object.keys(last.values).map((k) => [k, last.values[k] / baseline![k]])),
    relativeChanges: Object.fromEntries(Object.keys(last.values).map((k) => [k, relativeChange(last.values[k], baseline![k])])),
    functionCheck: maxAbsDifference(liveOutputs, trainedOutputs),
    costs: last.costs,
    measurements: history.length,
    gridCells: grid.cells,
  });
}

// ---- training -----------------------------------------------------------------------------

async function train(): Promise<void> {
  markBusy();
  setControlsEnabled(false);
  retrainButton.disabled = true;
  await live.stop();
  trained = null;
  baseline = null;
  history = [];
  const epochs: number[] = [];
  const trainLoss: number[] = [];
  const testLoss: number[] = [];
  const showTraining = coalesce(() =>
    trainingPlot.update([
      { name: "training loss", x: epochs, y: trainLoss },
      { name: "test loss", x: epochs, y: testLoss, dash: true },
    ])
  );
  const { problem } = prepared;
  functionCheck.textContent = `Training [${problem.widths.join(", ")}] (${prepared.parameters} parameters) on ${prepared.train.n} points…`;
  const task = createTask(tasks, "Training");
  try {
    trained = await trainProblem(backend, prepared, task, (r) => {
      epochs.push(r.epoch);
      trainLoss.push(r.trainLoss);
      testLoss.push(r.testLoss ?? NaN);
      showTraining();
    });
    task.done(`${trained.steps} steps in ${formatNumber(trained.ms / 1000, 3)} s`);
  } catch (e) {
    if (!isAbortError(e)) throw e;
    functionCheck.textContent = "Training cancelled: press “New seed, train again”.";
    retrainButton.disabled = false;
    return;
  } finally {
    retrainButton.disabled = false;
  }
  objective?.dispose();
  objective = await backend.objective(prepared.spec, prepared.train, prepared.loss);
  grid = boundaryGrid(prepared.all, numberParam("cells", 200, { min: 10, max: 800, integer: true }));
  trainedOutputs = gridOutputs(prepared.spec, trained.theta, grid);
  transform = { logAlphas: sliders.map(() => 0), neuronLayer: 0, logSpread: 0 };
  sliders.forEach((s) => (s.value = "0"));
  spreadSlider.value = "0";
  layerSelect.value = "0";
  showControlValues(transform);
  redrawBoundary();

  // The trained parameters' measurement is the baseline of every ratio: not cancelled by sliders.
  const measureTask = createTask(tasks, "Measuring the trained model");
  try {
    const report = await measureAt(trained.theta, measureTask);
    measureTask.done();
    record(structuredClone(transform), summarize(report), costs(report));
    setControlsEnabled(true);
  } catch (e) {
    if (!isAbortError(e)) throw e;
    functionCheck.textContent = "Measurement cancelled: press “New seed, train again”.";
  }
}

function showProblem(): void {
  const p = prepared.problem;
  byId("cli").textContent = cliCommands(p, SAME_FUNCTION_CLI_ARGS).join("\n\n");
  byId("problem").textContent =
    `${prepared.description}; ${prepared.train.n} training / ${prepared.test?.n ?? 0} held-out points; ` +
    `net [${p.widths.join(", ")}], ReLU, ${prepared.parameters} parameters; ${p.optimizer} lr ${p.lr}, batch ${p.batchSize}, ` +
    `${p.epochs} epochs, seed ${p.seed}. Page options: ?dataset=spirals|mixture&samples=&hidden=16,16&epochs=&seed=`;
}

async function main(): Promise<void> {
  const context = await requireBackend(app);
  if (!context) {
    // Only the explanation and the message stay: empty panels would look like a broken page.
    document.querySelector(".grid")?.setAttribute("hidden", "");
    adapterLine.textContent = "No compute engine: nothing can be computed here.";
    functionCheck.textContent = "";
    return;
  }
  backend = context;
  adapterLine.textContent = backendLine(backend);
  trainingPlot = makeTrainingPlot(backend);
  prepared = prepareProblem(problemFromQuery());
  buildControls();
  setControlsEnabled(false);
  showProblem();
  resetButton.addEventListener("click", () => setControls({ logAlphas: sliders.map(() => 0), neuronLayer: 0, logSpread: 0 }));
  sharpenButton.addEventListener("click", () => setControls({ logAlphas: sliders.map((_, k) => (k === 0 ? -1 : 0)), neuronLayer: Number(layerSelect.value), logSpread: 0 }));
  retrainButton.addEventListener("click", () => {
    prepared = prepareProblem({ ...prepared.problem, seed: prepared.problem.seed + 1 });
    showProblem();
    void train().catch((e) => showError(e));
  });
  await train();
}

main().catch((e) => showError(e));
