/// <reference lib="dom" />
/**
 * Page 5, audit your model: a model file (safetensors, ONNX or JSON) and a dataset (.npy or CSV)
 * dropped or chosen in the page go through the invariance audit of src/audit/audit.ts on WebGPU
 * (or the WebAssembly engine: ?backend=wasm, or where WebGPU is missing):
 * each metric before and after each function-preserving transform or reparametrization, with
 * the function check beside it, as a verdict table, a dot plot of log10(after / before), the
 * toolkit's own heat map, and the report as JSON (the object `flatness audit --json` prints).
 */
import { audit, type AuditReport } from "../../src/audit/audit.ts";
import { auditSvg } from "../../src/audit/report.ts";
import { type AuditBase, AUDIT_TRANSFORM_NAMES, AUDIT_TRANSFORMS, type AuditTransformName } from "../../src/audit/transforms.ts";
import type { Backend } from "../../src/backend/mod.ts";
import type { LoadedModel } from "../../src/io/modelFile.ts";
import { METRIC_NAMES, METRICS, type MetricName } from "../../src/metrics/suite.ts";
import { type Activation, type Conv2dLayerSpec, inputWidth, isMlp, layerUnits, type LossKind, type ModelSpec } from "../../src/model.ts";
import type { Objective } from "../../src/objective.ts";
import { byId, el } from "../shared/dom.ts";
import { isAbortError, showError } from "../shared/errors.ts";
import { formatNumber } from "../shared/format.ts";
import { numberParam, queryParams } from "../shared/params.ts";
import { PALETTE } from "../shared/plots.ts";
import { markBusy, publish } from "../shared/record.ts";
import { runTask } from "../shared/tasks.ts";
import { backendAdapter, backendLabel, backendLine, requireBackend } from "../shared/webgpu.ts";
import { type XYPlot, xyPlot } from "../shared/xyPlot.ts";
import { formatArchitecture } from "../../src/architecture.ts";
import {
  auditOptions,
  type AuditSettings,
  builtinDigits,
  cliAuditCommand,
  CNN_EXAMPLE,
  cnnExampleModel,
  exampleFiles,
  type InputFile,
  isArchitectureFile,
  loadDatasetFiles,
  loadModelFile,
} from "./files.ts";

const f = formatNumber;

interface Inputs {
  model: InputFile | null;
  data: InputFile | null;
  labels: InputFile | null;
  /** A JSON architecture for a safetensors state dict without one. */
  architecture: InputFile | null;
  /** Which example is loaded (its note is shown), or null for the user's files. */
  example: "mixture" | "cnn" | null;
}

const inputs: Inputs = { model: null, data: null, labels: null, architecture: null, example: null };
let running = false;
let last: Record<string, unknown> | null = null;
let dotPlot: XYPlot | null = null;
const downloads: string[] = [];

function listParam<T extends string>(name: string, allowed: readonly T[], fallback: readonly T[]): T[] {
  const raw = queryParams().get(name);
  if (!raw) return [...fallback];
  const items = raw.split(",").map((s) => s.trim()).filter(Boolean);
  for (const item of items) if (!(allowed as readonly string[]).includes(item)) throw new RangeError(`query parameter ${name}: '${item}' is not one of ${allowed.join(", ")}`);
  return items as T[];
}

// ---------------------------------------------------------------------------------------------
// Inputs

function showInputs(): void {
  const name = (file: InputFile | null, none: string) => (file ? `${file.name} (${f(file.bytes.length)} bytes)` : none);
  byId("model-name").textContent = name(inputs.model, "none yet");
  byId("data-name").textContent = name(inputs.data, "none yet");
  byId("labels-name").textContent = name(inputs.labels, "none (CSV label column)");
  byId("architecture-name").textContent = name(inputs.architecture, "none (from the model file)");
  const note = byId("example-note");
  note.hidden = inputs.example === null;
  note.textContent = inputs.example === "cnn"
    ? `Loaded: the CNN example, ${CNN_EXAMPLE} (He initialisation, seed 1, untrained), on the 520 built-in MNIST digits.`
    : "Loaded: the example, a [2, 16, 16, 3] ReLU net (seed 1) on a 96-point, 3-class Gaussian mixture.";
}

async function readFile(file: File): Promise<InputFile> {
  return { name: file.name, bytes: new Uint8Array(await file.arrayBuffer()) };
}

/** Sorts dropped or chosen files into model, architecture, data and labels by their names (and a JSON file by its content). */
async function takeFiles(files: File[], slot?: "model" | "data" | "labels" | "architecture"): Promise<void> {
  for (const file of files) {
    const input = await readFile(file);
    const kind = slot ?? (isArchitectureFile(input)
      ? "architecture"
      : /\.(safetensors|onnx|json)$/i.test(file.name)
      ? "model"
      : /(^|[_\-.])(y|labels?|targets?)([_\-.]|\.npy$)/i.test(file.name)
      ? "labels"
      : "data");
    if (inputs.example) {
      inputs.model = inputs.data = inputs.labels = inputs.architecture = null;
      inputs.example = null;
    }
    inputs[kind] = input;
  }
  showInputs();
}

function useExample(): void {
  const ex = exampleFiles();
  Object.assign(inputs, { model: ex.model, data: ex.data, labels: ex.labels, architecture: null, example: "mixture" });
  byId<HTMLSelectElement>("loss").value = ex.loss;
  showInputs();
}

/** ?digits=N: how many of the 520 built-in digits to use (all by default). */
function digitCount(): number | undefined {
  return queryParams().has("digits") ? numberParam("digits", 520, { min: 1, max: 520, integer: true }) : undefined;
}

/** The built-in MNIST digits as the data (the model stays, unless it was the mixture example's). */
async function useDigits(): Promise<void> {
  const digits = await builtinDigits(digitCount());
  if (inputs.example === "mixture") Object.assign(inputs, { model: null, architecture: null });
  Object.assign(inputs, { data: digits.data, labels: digits.labels, example: null });
  byId<HTMLSelectElement>("loss").value = "ce";
  showInputs();
}

/** The CNN example on the built-in digits. */
async function useCnnExample(): Promise<void> {
  const digits = await builtinDigits(digitCount());
  Object.assign(inputs, { model: cnnExampleModel(), data: digits.data, labels: digits.labels, architecture: null, example: "cnn" });
  byId<HTMLSelectElement>("loss").value = "ce";
  showInputs();
}

function activation(): Activation | undefined {
  const kind = byId<HTMLSelectElement>("activation").value;
  if (kind === "relu") return { kind: "relu" };
  if (kind === "leaky_relu") return { kind: "leaky_relu", slope: Number(byId<HTMLInputElement>("slope").value) };
  return undefined;
}

function readSettings(): AuditSettings {
  const checked = (name: string) => [...document.querySelectorAll<HTMLInputElement>(`input[name=${name}]:checked`)].map((i) => i.value);
  const num = (id: string) => Number(byId<HTMLInputElement>(id).value);
  const s: AuditSettings = {
    transforms: checked("transform") as AuditTransformName[],
    metrics: checked("metric") as MetricName[],
    factor: num("factor"),
    tolerance: num("tolerance"),
    seed: num("seed"),
    topK: num("top-k"),
    traceSamples: num("trace-samples"),
  };
  if (s.transforms.length === 0) throw new RangeError("choose at least one transform");
  if (s.metrics.length === 0) throw new RangeError("choose at least one metric");
  if (!Number.isInteger(s.seed) || s.seed < 0) throw new RangeError(`the seed must be a non-negative integer, got ${s.seed}`);
  if (!Number.isInteger(s.topK) || s.topK < 1) throw new RangeError(`top-k must be a positive integer, got ${s.topK}`);
  if (!Number.isInteger(s.traceSamples) || s.traceSamples < 3) throw new RangeError(`trace samples must be an integer >= 3, got ${s.traceSamples}`);
  return s;
}

/**
 * The page's first selection: light enough for software WebGPU (about 12 s on SwiftShader), where
 * `flatness audit` defaults to DEFAULT_AUDIT_TRANSFORMS x DEFAULT_AUDIT_METRICS with top-k 3 and
 * 99 trace samples (about a minute there; seconds on a GPU).
 */
const PAGE_TRANSFORMS: AuditTransformName[] = ["alpha", "neuron", "weight-norm"];
const PAGE_METRICS: MetricName[] = ["spectrum", "trace", "epsilon-sharpness", "adaptive", "fisher-rao", "path-norm"];

function buildChoices(): void {
  const transforms = listParam("transforms", AUDIT_TRANSFORM_NAMES, PAGE_TRANSFORMS);
  const metrics = listParam("metrics", METRIC_NAMES, PAGE_METRICS);
  const box = (name: string, value: string, title: string, on: boolean) => {
    const input = el("input", { type: "checkbox", name, value, id: `${name}-${value}` });
    input.checked = on;
    return el("label", { class: "check", title, for: `${name}-${value}` }, [input, ` ${value}`]);
  };
  byId("transforms").replaceChildren(...AUDIT_TRANSFORM_NAMES.map((t) => box("transform", t, AUDIT_TRANSFORMS[t], transforms.includes(t))));
  byId("metrics").replaceChildren(...METRIC_NAMES.map((m) => box("metric", m, METRICS[m].about, metrics.includes(m))));
  const set = (id: string, v: number) => (byId<HTMLInputElement>(id).value = String(v));
  set("factor", numberParam("factor", 4, { min: 1e-6 }));
  set("tolerance", numberParam("tolerance", 1e-3, { min: 1e-12, max: 0.5 }));
  set("seed", numberParam("seed", 0, { min: 0, integer: true }));
  set("top-k", numberParam("topK", 1, { min: 1, integer: true }));
  set("trace-samples", numberParam("traceSamples", 30, { min: 3, integer: true }));
}

// ---------------------------------------------------------------------------------------------
// Running

async function run(backend: Backend): Promise<void> {
  if (running) return;
  let settings: AuditSettings;
  let model: LoadedModel;
  let loss: LossKind;
  let base: AuditBase;
  try {
    settings = readSettings();
    if (!inputs.model) throw new RangeError("choose a model file (.safetensors, .onnx or .json)");
    if (!inputs.data) throw new RangeError("choose a data file (.npy [N, features] or .csv)");
    loss = byId<HTMLSelectElement>("loss").value as LossKind;
    model = loadModelFile(inputs.model, activation(), inputs.architecture);
    const labelColumn = byId<HTMLInputElement>("label-column").value.trim() || undefined;
    const data = loadDatasetFiles(inputs.data, inputs.labels, loss, model, labelColumn);
    base = { spec: model.model.spec, theta: model.model.theta, data, loss };
    byId("cli").textContent = cliAuditCommand(settings, { model: inputs.model.name, data: inputs.data.name, labels: inputs.labels?.name ?? null, labelColumn, architecture: inputs.architecture?.name ?? null }, loss);
  } catch (e) {
    showError(e);
    return;
  }
  running = true;
  markBusy();
  const button = byId<HTMLButtonElement>("run");
  button.disabled = true;
  const net = describeNet(model.model.spec);
  try {
    const report = await runTask(byId("tasks"), `audit of ${net}, ${base.data.n} samples`, async (task) => {
      // Overall progress: one stage for the base point, one per transform and one per "before" view.
      const stages = 1 + settings.transforms.length + (settings.transforms.includes("weight-norm") ? 1 : 0);
      const seen: string[] = [];
      // The page's backend, with Cancel checked before each objective is built.
      const cancellable: Backend = {
        ...backend,
        objective: (spec, data, lossKind, options) => {
          task.throwIfCancelled();
          return backend.objective(spec, data, lossKind, options);
        },
      };
      return await audit(base, cancellable, {
        ...auditOptions(settings),
        onProgress: (stage, fraction, message) => {
          if (!seen.includes(stage)) seen.push(stage);
          const overall = (seen.indexOf(stage) + Math.min(1, Math.max(0, fraction))) / stages;
          task.progress(overall, `${stage}: ${message}`);
        },
      });
    }, { keep: true });
    if (report) show(report, settings, model, net, backend);
    else publish({ ...(last ?? {}), cancelled: true });
  } catch (e) {
    if (!isAbortError(e)) showError(e);
  } finally {
    button.disabled = false;
    running = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Results

function verdictCell(verdict: string, ratio: number | null, transform: string, metric: string, note?: string): HTMLElement {
  const label = verdict === "invariant" ? "✓ invariant" : verdict === "within noise" ? "~ within noise" : "✗ moved";
  const text = verdict === "n/a" ? "n/a" : `${label} ×${ratio === null ? "–" : f(ratio, 4)}`;
  return el("td", { class: `verdict ${verdict === "n/a" ? "na" : verdict.replace(" ", "-")}`, "data-transform": transform, "data-metric": metric, "data-verdict": verdict, title: note ?? "" }, text);
}

/** "[2, 16, 16, 3]" for an MLP; the architecture text on its input shape for a net with convolutions. */
function describeNet(spec: ModelSpec): string {
  if (isMlp(spec)) return `[${[inputWidth(spec), ...spec.layers.map(layerUnits)].join(", ")}]`;
  const first = spec.layers[0] as Conv2dLayerSpec;
  return `${first.inChannels}x${first.inHeight}x${first.inWidth} -> ${formatArchitecture(spec)}`;
}

function show(report: AuditReport, settings: AuditSettings, model: LoadedModel, net: string, backend: Backend): void {
  const json = JSON.stringify(report);
  const plain = JSON.parse(json) as AuditReport;
  const done = report.transforms.filter((t) => !t.skipped);
  byId("summary").textContent = `${net} ${model.model.spec.activation.kind} net, ${report.parameters} parameters, ${report.samples} samples, ` +
    `${report.loss} loss ${f(report.base.loss, 6)}, gradient norm ${f(report.base.gradientNorm, 4)}; strength a = ${report.factor}, ` +
    `tolerance ${report.tolerance}, seed ${report.seed}; ${f(Math.round(report.wallMs))} ms on ${backendLabel(backend)}.`;

  // Function checks.
  byId("checks").replaceChildren(
    ...report.transforms.map((t) =>
      el("tr", { class: t.skipped ? "skipped" : "" }, t.skipped
        ? [el("th", { scope: "row" }, t.transform), el("td", { colspan: "4", class: "note" }, `skipped: ${t.skipped}`)]
        : [
          el("th", { scope: "row", title: t.description }, t.transform),
          el("td", {}, t.family ?? ""),
          el("td", {}, f(t.functionCheck!.maxOutputDifference, 3)),
          el("td", {}, f(t.functionCheck!.relativeOutputDifference, 3)),
          el("td", {}, `${f(t.functionCheck!.lossBefore, 6)} → ${f(t.functionCheck!.lossAfter, 6)}`),
        ])
    ),
  );

  // Verdicts: metrics x transforms.
  const metrics = [...new Map(done.flatMap((t) => t.metrics.map((m) => [m.metric, m.label]))).entries()];
  const head = el("tr", {}, [el("th", {}, "metric"), ...done.map((t) => el("th", { title: t.description }, t.transform))]);
  const body = metrics.map(([metric, label]) =>
    el("tr", {}, [
      el("th", { scope: "row", title: METRICS[metric].about }, label),
      ...done.map((t) => {
        const m = t.metrics.find((r) => r.metric === metric);
        return m ? verdictCell(m.verdict, m.ratio, t.transform, metric, m.note) : el("td", {}, "");
      }),
    ])
  );
  byId("verdicts").replaceChildren(el("thead", {}, head), el("tbody", {}, body));

  // Before / after per transform.
  byId("details").replaceChildren(
    ...done.map((t) =>
      el("details", {}, [
        el("summary", {}, `${t.transform}: ${t.description}`),
        el("table", { class: "metrics" }, [
          el("thead", {}, el("tr", {}, ["metric", "before", "after", "ratio", "verdict"].map((h) => el("th", {}, h)))),
          el("tbody", {}, t.metrics.map((m) =>
            el("tr", { class: m.verdict }, [
              el("th", { scope: "row" }, m.label),
              el("td", {}, m.before === null ? "–" : f(m.before, 6)),
              el("td", {}, m.after === null ? "–" : f(m.after, 6)),
              el("td", {}, m.ratio === null ? "–" : f(m.ratio, 6)),
              el("td", { class: "verdict" }, m.verdict),
            ])
          )),
        ]),
      ])
    ),
  );

  // Dot plot of log10(after / before).
  const ys = metrics.map((_, i) => metrics.length - i);
  const series = done.map((t, j) => {
    const x: number[] = [];
    const y: number[] = [];
    metrics.forEach(([metric], i) => {
      const m = t.metrics.find((r) => r.metric === metric);
      if (m && m.ratio !== null && m.ratio > 0 && Number.isFinite(m.ratio)) {
        x.push(Math.log10(m.ratio));
        y.push(ys[i]);
      }
    });
    return { name: t.transform, x, y, color: PALETTE[j % PALETTE.length], width: 0, points: 10 };
  });
  const spread = Math.max(0.5, ...series.flatMap((s) => s.x.map(Math.abs)));
  const xr: [number, number] = [-1.1 * spread, 1.1 * spread];
  const yr: [number, number] = [0.4, metrics.length + 0.6];
  const plotSeries = [{ name: "no change", x: [0, 0], y: yr, color: "#888", width: 1, dash: true }, ...series];
  dotPlot?.destroy();
  dotPlot = xyPlot(byId("dotplot"), {
    title: "log₁₀(after / before) per metric and transform: 0 means invariant",
    xLabel: "log₁₀(after / before)",
    yLabel: "",
    xRange: xr,
    yRange: yr,
    series: plotSeries,
    height: Math.max(220, 90 + 30 * metrics.length),
    yCategories: { values: ys, labels: metrics.map(([, label]) => label), width: 210 },
  });

  // The toolkit's heat map (the SVG `flatness audit --plot` writes).
  const svg = auditSvg(report);
  byId("heatmap").innerHTML = svg;

  // Downloads.
  for (const url of downloads.splice(0)) URL.revokeObjectURL(url);
  const link = (id: string, text: string, type: string) => {
    const url = URL.createObjectURL(new Blob([text], { type }));
    downloads.push(url);
    const a = byId<HTMLAnchorElement>(id);
    a.href = url;
    a.removeAttribute("aria-disabled");
  };
  link("download-json", json + "\n", "application/json");
  link("download-svg", svg, "image/svg+xml");
  byId("results").hidden = false;

  const verdicts: Record<string, Record<string, string>> = {};
  for (const t of report.transforms) verdicts[t.transform] = Object.fromEntries(t.metrics.map((m) => [m.metric, m.verdict]));
  last = { settings, verdicts, report: plain, adapter: backendAdapter(backend), backend: backend.name };
  publish(last);
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const root = byId("main");
  buildChoices();
  // ?example=cnn starts with the CNN example on the built-in digits.
  if (queryParams().get("example") === "cnn") await useCnnExample();
  else useExample();
  const ctx = await requireBackend(root);
  if (!ctx) {
    byId<HTMLButtonElement>("run").disabled = true;
    return;
  }
  byId("adapter").textContent = backendLine(ctx);
  for (const [id, slot] of [["model-file", "model"], ["data-file", "data"], ["labels-file", "labels"], ["architecture-file", "architecture"]] as const) {
    byId<HTMLInputElement>(id).addEventListener("change", (e) => {
      const files = [...((e.target as HTMLInputElement).files ?? [])];
      takeFiles(files, slot).catch(showError);
    });
  }
  const drop = byId("drop");
  drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    takeFiles([...(e.dataTransfer?.files ?? [])]).catch(showError);
  });
  byId("example").addEventListener("click", useExample);
  byId("digits").addEventListener("click", () => useDigits().catch(showError));
  byId("cnn-example").addEventListener("click", () => useCnnExample().catch(showError));
  byId("run").addEventListener("click", () => void run(ctx));
  byId("activation").addEventListener("change", () => {
    const leaky = byId<HTMLSelectElement>("activation").value === "leaky_relu";
    for (const node of document.querySelectorAll<HTMLElement>(".slope")) node.hidden = !leaky;
  });
  if (queryParams().get("autorun") !== "0") await run(ctx);
  else publish({ idle: true });
}

main().catch((e) => showError(e));
