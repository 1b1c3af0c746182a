/// <reference lib="dom" />
/**
 * Shared pieces of the browser demos (demos/*.html): WebGPU detection with a message a user can act
 * on, cancellable tasks with a progress bar, chunked work, uPlot line plots, number formatting,
 * query parameters, and the `window.__demo` record the puppeteer tests read.
 *
 * The test contract (test/support/demoPage.ts): every page sets `window.__demo` as soon as this
 * module loads (`ready: false`); `publish(numbers)` sets `ready: true`, stores the numbers the page
 * shows and bumps `version`; `publishError(e)` stores the message in `error`. A page that is
 * recomputing calls `markBusy()` first, so a test can wait for the next version after an input.
 *
 * Exports are kept stable: other demo pages import them.
 */
import uPlot from "uplot";
import uplotCss from "uplot/dist/uPlot.min.css" with { type: "text" };
import { type Backend, openBackend, type OpenBackendOptions } from "../src/backend/mod.ts";
import { formatNumber as format } from "../src/format.ts";
import type { EpochRecord } from "../src/train/trainer.ts";
import { trainModel, type TrainModelResult } from "../src/train/trainModel.ts";
import { DEFAULT_PROBLEM, type DemoProblem, type PreparedProblem } from "./problem.ts";

export { CLI_SPLIT_STREAM, cliCommands, DEFAULT_PROBLEM, type DemoProblem, prepareProblem, type PreparedProblem } from "./problem.ts";

// ---------------------------------------------------------------------------------------------
// The record the tests read
// ---------------------------------------------------------------------------------------------

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

/** True for the error a cancelled task throws (see createTask). */
export function isAbortError(error: unknown): boolean {
  return (error instanceof DOMException || error instanceof Error) && error.name === "AbortError";
}

// ---------------------------------------------------------------------------------------------
// Errors shown in the page, never a blank page
// ---------------------------------------------------------------------------------------------

let errorHost: HTMLElement | null = null;

/**
 * Shows an error box at the top of `root` (or of the page) and publishes the error. Cancellation
 * (AbortError) is not an error and is ignored.
 */
export function showError(error: unknown, root?: HTMLElement): void {
  if (isAbortError(error)) return;
  const message = errorMessage(error);
  const host = root ?? errorHost ?? document.querySelector<HTMLElement>("main") ?? document.body;
  const box = el("div", { class: "demo-error", role: "alert" }, [el("strong", {}, "Something went wrong. "), el("span", {}, message)]);
  host.prepend(box);
  publishError(error);
}

/**
 * Routes uncaught errors and unhandled rejections into the page (showError) and into
 * window.__demo.error. Called once by requireWebGPU; `root` is where the boxes go.
 */
export function installErrorHandlers(root?: HTMLElement): void {
  if (root) errorHost = root;
  const w = window as Window & { __demoHandlers?: boolean };
  if (w.__demoHandlers) return;
  w.__demoHandlers = true;
  window.addEventListener("error", (event) => {
    // Browsers report a ResizeObserver that triggers another layout in the same frame as an error
    // event; it is benign (the notification is delivered next frame), so it must not alarm anyone.
    if (!event.error && /ResizeObserver loop/.test(String(event.message))) return;
    showError(event.error ?? event.message);
  });
  window.addEventListener("unhandledrejection", (event) => showError(event.reason));
}

/** Where users learn to turn WebGPU on. */
export const WEBGPU_HELP_URL = "https://github.com/gpuweb/gpuweb/wiki/Implementation-Status";

function webgpuMissingBox(reason: string): HTMLElement {
  const link = (href: string, text: string) => el("a", { href, target: "_blank", rel: "noopener" }, text);
  return el("div", { class: "demo-error webgpu-missing", role: "alert" }, [
    el("h2", {}, "This page needs WebGPU"),
    el("p", {}, reason),
    el("ul", {}, [
      el("li", {}, "Chrome and Edge 113 or newer on Windows, macOS and ChromeOS: on by default (check that hardware acceleration is on)."),
      el("li", {}, [
        "Chrome / Chromium on Linux: open ",
        el("code", {}, "chrome://flags/#enable-unsafe-webgpu"),
        ", enable it and restart, or start the browser with ",
        el("code", {}, "--enable-unsafe-webgpu --enable-features=Vulkan"),
        ". Without a GPU, Chromium falls back to SwiftShader (slow but correct).",
      ]),
      el("li", {}, "Safari 26 or newer (macOS, iOS); Firefox 141 or newer on Windows (elsewhere: dom.webgpu.enabled in about:config)."),
      el("li", {}, "The page must come from http://localhost / 127.0.0.1 or https (WebGPU needs a secure context): run npm run demos."),
    ]),
    el("p", {}, ["Browser support, up to date: ", link(WEBGPU_HELP_URL, "WebGPU implementation status"), "."]),
  ]);
}

/**
 * Opens the page's WebGPU backend (src/backend/), or shows why there is none. Installs the error handlers. Without
 * navigator.gpu, or when no adapter comes (requestAdapter is tried twice, as SwiftShader rarely
 * returns null the first time), it puts a message with the way to enable WebGPU at the top of
 * `root`, publishes the error and returns null. A lost device later shows a message too.
 */
export async function requireWebGPU(root: HTMLElement, options: OpenBackendOptions = {}): Promise<Backend | null> {
  installErrorHandlers(root);
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  if (!gpu) {
    const reason = window.isSecureContext
      ? "This browser does not expose WebGPU (navigator.gpu is missing)."
      : "This page was not opened from a secure origin (http://localhost, 127.0.0.1 or https), so the browser hides WebGPU.";
    root.prepend(webgpuMissingBox(reason));
    publishError(`WebGPU unavailable: ${reason}`);
    return null;
  }
  let adapter: GPUAdapter | null = options.adapter ?? null;
  for (let attempt = 0; !adapter && attempt < 2; attempt++) {
    try {
      adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference ?? "high-performance" });
    } catch {
      adapter = null;
    }
  }
  if (!adapter) {
    const reason = "navigator.gpu is there but requestAdapter() returned no adapter: WebGPU is disabled or blocked for this GPU or driver.";
    root.prepend(webgpuMissingBox(reason));
    publishError(`WebGPU unavailable: ${reason}`);
    return null;
  }
  try {
    const backend = await openBackend("webgpu", { ...options, adapter, gpu });
    backend.gpu!.device.lost.then((info) => {
      if (info.reason !== "destroyed") showError(new Error(`the GPU device was lost (${info.message || info.reason}); reload the page`));
    });
    return backend;
  } catch (e) {
    root.prepend(webgpuMissingBox(`The WebGPU device could not be created: ${errorMessage(e)}`));
    publishError(e);
    return null;
  }
}

/** One line naming the adapter, and "(software)" on SwiftShader / lavapipe. */
export function describeAdapter(backend: Backend): string {
  return `${backend.gpu?.describe() ?? backend.describe()}${backend.isSoftware ? " (software WebGPU: slow but exact; a real GPU is much faster)" : ""}`;
}

// ---------------------------------------------------------------------------------------------
// Tasks: progress, cancel, chunks
// ---------------------------------------------------------------------------------------------

export interface Task {
  /** Aborted when the user presses Cancel (or cancel() is called). */
  readonly signal: AbortSignal;
  /**
   * Updates the bar (fraction in [0, 1]) and message. Throws the AbortError when the task was
   * cancelled, so passing it as a library's onProgress callback stops the library's loop at its
   * next report (the library disposes what it made in its finally blocks).
   */
  progress(fraction: number, message?: string): void;
  /** Throws the AbortError when cancelled. */
  throwIfCancelled(): void;
  /** Cancels (as the button does). */
  cancel(): void;
  /** Marks the task finished: the bar fills, the button goes; the row is removed after a moment unless `keep`. */
  done(message?: string, keep?: boolean): void;
  /** Removes the row now. */
  remove(): void;
  /** The row: label, bar, message, Cancel button. */
  readonly element: HTMLElement;
}

/**
 * A task row appended to `container`: a label, a progress bar, a message and a Cancel button that
 * aborts `signal`. Cancelled tasks show "cancelled" and stay until removed.
 */
export function createTask(container: HTMLElement, label: string): Task {
  const controller = new AbortController();
  const bar = el("progress", { max: "1", value: "0" }) as HTMLProgressElement;
  const message = el("span", { class: "task-message" }, "starting…");
  const button = el("button", { type: "button", class: "task-cancel" }, "Cancel") as HTMLButtonElement;
  const element = el("div", { class: "task", role: "status", "aria-live": "polite" }, [el("span", { class: "task-label" }, label), bar, message, button]);
  container.append(element);
  const abortError = () => new DOMException(`${label}: cancelled`, "AbortError");
  const cancel = () => {
    if (controller.signal.aborted) return;
    controller.abort(abortError());
    message.textContent = "cancelled";
    button.disabled = true;
    element.classList.add("task-cancelled");
  };
  button.addEventListener("click", cancel);
  const throwIfCancelled = () => {
    if (controller.signal.aborted) throw controller.signal.reason ?? abortError();
  };
  return {
    signal: controller.signal,
    element,
    cancel,
    throwIfCancelled,
    progress(fraction: number, text?: string) {
      throwIfCancelled();
      if (Number.isFinite(fraction)) bar.value = Math.min(1, Math.max(0, fraction));
      if (text !== undefined) message.textContent = text;
    },
    done(text?: string, keep = false) {
      bar.value = 1;
      message.textContent = text ?? "done";
      button.remove();
      element.classList.add("task-done");
      if (!keep) setTimeout(() => element.remove(), 1500);
    },
    remove() {
      element.remove();
    },
  };
}

/**
 * Runs `work` as a task in `container`: returns its result, or null when it was cancelled; any
 * other error is shown in the page (showError) and rethrown.
 */
export async function runTask<T>(container: HTMLElement, label: string, work: (task: Task) => Promise<T>, options: { keep?: boolean } = {}): Promise<T | null> {
  const task = createTask(container, label);
  try {
    const result = await work(task);
    task.done(undefined, options.keep);
    return result;
  } catch (e) {
    if (isAbortError(e)) return null;
    task.remove();
    throw e;
  }
}

export interface LiveRunner {
  /**
   * Asks for a (re)computation with the page's current inputs: a run in progress is cancelled
   * (superseded), and a new one starts once the inputs have been still for `debounceMs`.
   */
  request(): void;
  /** Cancels a pending or running run without starting another; resolves once nothing runs. */
  stop(): Promise<void>;
  /** True while a run is pending or in progress. */
  readonly active: boolean;
}

/**
 * Keeps one computation in step with inputs that change while it runs (sliders): each request()
 * supersedes the run in progress; only the latest inputs are computed. `work(task, isCurrent)`
 * runs as a task in `container`; it should apply its results only while isCurrent() is true.
 * A run the user cancels (the task's button) is not restarted: `onCancel` is called and the page
 * is marked idle. Errors other than cancellation are shown in the page (showError).
 */
export function liveRunner(
  container: HTMLElement,
  label: string,
  work: (task: Task, isCurrent: () => boolean) => Promise<void>,
  options: { debounceMs?: number; onCancel?: () => void } = {},
): LiveRunner {
  const debounceMs = options.debounceMs ?? 150;
  let generation = 0;
  let done = 0;
  let lastRequest = 0;
  let looping = false;
  let current: Task | null = null;
  let finished: Promise<void> = Promise.resolve();
  const loop = async () => {
    looping = true;
    try {
      while (done < generation) {
        for (let wait = lastRequest + debounceMs - performance.now(); wait > 0; wait = lastRequest + debounceMs - performance.now()) {
          await new Promise((r) => setTimeout(r, wait));
        }
        const gen = generation;
        const task = createTask(container, label);
        current = task;
        try {
          await work(task, () => gen === generation);
          task.done();
          if (gen === generation) done = gen;
        } catch (e) {
          task.remove();
          if (!isAbortError(e)) throw e;
          if (gen === generation) {
            // Cancelled by the user, not superseded: stay idle until the next request.
            done = gen;
            options.onCancel?.();
            markIdle();
          }
        } finally {
          current = null;
        }
      }
    } finally {
      looping = false;
    }
  };
  return {
    request() {
      generation++;
      lastRequest = performance.now();
      markBusy();
      current?.cancel();
      if (!looping) finished = loop().catch((e) => showError(e));
    },
    async stop() {
      generation++;
      done = generation;
      current?.cancel();
      await finished;
    },
    get active() {
      return looping;
    },
  };
}

/**
 * Lets the browser paint and handle input between chunks of work: a macrotask (MessageChannel,
 * not clamped like setTimeout), or scheduler.yield() where the browser has it.
 */
export function yieldToBrowser(): Promise<void> {
  const scheduler = (globalThis as { scheduler?: { yield?: () => Promise<void> } }).scheduler;
  if (scheduler?.yield) return scheduler.yield();
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      channel.port1.close();
      resolve();
    };
    channel.port2.postMessage(null);
  });
}

/** Calls `fn` at most once per animation frame with the latest arguments (for slider input). */
export function coalesce<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void {
  let pending: A | null = null;
  return (...args: A) => {
    const first = pending === null;
    pending = args;
    if (first) {
      requestAnimationFrame(() => {
        const a = pending!;
        pending = null;
        fn(...a);
      });
    }
  };
}

// ---------------------------------------------------------------------------------------------
// Plots (uPlot)
// ---------------------------------------------------------------------------------------------

export interface PlotSeries {
  name: string;
  x: ArrayLike<number>;
  y: ArrayLike<number>;
  /** CSS colour (default: the palette, by position). */
  color?: string;
  /** "line" (default), "points" or "both". */
  style?: "line" | "points" | "both";
  /** Dashed line. */
  dash?: boolean;
  /** Break the line where y is NaN (default: join across). */
  gaps?: boolean;
}

export interface LinePlotOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: PlotSeries[];
  /** Logarithmic x axis (non-positive values are dropped). */
  xLog?: boolean;
  /** Logarithmic y axis (non-positive values are dropped). */
  yLog?: boolean;
  /**
   * asinh x axis (linear within ±`xAsinh` of 0, logarithmic beyond): spectra with values of both
   * signs spanning decades. Ignored with xLog.
   */
  xAsinh?: number;
  /** Integer ticks on the x axis (epochs, measurement numbers). */
  xIntegers?: boolean;
  /** Height in CSS pixels of the plotting area with axes (default 260). */
  height?: number;
}

export interface LinePlot {
  /** Replaces the series (same count or not) and redraws. */
  update(series: PlotSeries[]): void;
  destroy(): void;
  /** The element holding the chart. */
  readonly element: HTMLElement;
  /** The uPlot instance (current one: update() rebuilds it when the series change). */
  readonly chart: uPlot;
}

/** Colour-blind-safe palette (Okabe-Ito), in the order series get them. */
export const PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"];

let cssInjected = false;
/** uPlot's stylesheet, once per page (every plot helper calls it before drawing). */
export function injectPlotCss(): void {
  if (cssInjected) return;
  cssInjected = true;
  const style = document.createElement("style");
  style.textContent = uplotCss;
  document.head.prepend(style);
}

/** Aligns the series on one sorted x column (uPlot.join), dropping non-positive values on log axes. */
function alignedData(series: PlotSeries[], xLog: boolean, yLog: boolean): uPlot.AlignedData {
  const tables = series.map((s) => {
    const pairs: [number, number][] = [];
    const n = Math.min(s.x.length, s.y.length);
    for (let i = 0; i < n; i++) {
      const x = s.x[i];
      const y = s.y[i];
      if (!Number.isFinite(x) || (xLog && !(x > 0))) continue;
      pairs.push([x, Number.isFinite(y) && (!yLog || y > 0) ? y : NaN]);
    }
    pairs.sort((a, b) => a[0] - b[0]);
    const xs: number[] = [];
    const ys: (number | null)[] = [];
    for (const [x, y] of pairs) {
      if (xs.length > 0 && xs[xs.length - 1] === x) continue; // one y per x within a series
      xs.push(x);
      ys.push(Number.isNaN(y) ? null : y);
    }
    return [xs, ys] as uPlot.AlignedData;
  });
  if (tables.length === 0) return [[]];
  if (tables.length === 1) return tables[0];
  // Explicit gaps are kept where asked (Expand: also over the other series' x values).
  return uPlot.join(tables, series.map((s) => [0, s.gaps ? 2 : 0]) as uPlot.JoinNullMode[][]);
}

/**
 * Range of a linear scale: 5% padding, and at least 2% of the magnitude (or 1e-12), so nearly
 * constant data (an invariant measure: all ratios 1 ± 1e-8) gets readable ticks.
 */
function linearRange(_u: uPlot, min: number | null, max: number | null): uPlot.Range.MinMax {
  if (min === null || max === null || !Number.isFinite(min) || !Number.isFinite(max)) return [0, 1];
  const mid = (min + max) / 2;
  const span = max - min;
  const minSpan = Math.max(Math.abs(mid) * 0.02, 1e-12);
  const half = span < minSpan ? minSpan / 2 : span / 2 + span * 0.05;
  return [mid - half, mid + half];
}

/** Tick labels with as many digits as the tick spacing needs (1, 1.005, 1.01; 2e-5, 2.5e-5). */
function tickFormat(log: boolean) {
  return (_u: uPlot, splits: number[], _axis: number, _space: number, increment: number): string[] => {
    if (log || !(increment > 0)) return splits.map((v) => (v === null || v === undefined ? "" : formatNumber(v, 3)));
    const magnitude = Math.max(...splits.map((v) => Math.abs(v ?? 0)));
    if (magnitude >= 1e5 || (magnitude > 0 && magnitude < 1e-3)) {
      const digits = Math.min(15, Math.max(1, Math.ceil(Math.log10(magnitude / increment)) + 1));
      return splits.map((v) => (v === null || v === undefined ? "" : formatNumber(v, digits)));
    }
    const decimals = Math.min(12, Math.max(0, -Math.floor(Math.log10(increment) + 1e-9)));
    return splits.map((v) => (v === null || v === undefined ? "" : v.toFixed(decimals)));
  };
}

const INTEGER_INCREMENTS = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000];

/**
 * A uPlot line chart with a title, axis labels and a legend, sized to `el`'s width (and resized
 * with it). Series may have different x values (they are joined on one axis, gaps spanned).
 */
export function linePlot(host: HTMLElement, options: LinePlotOptions): LinePlot {
  injectPlotCss();
  const element = el("div", { class: "plot" });
  host.append(element);
  const xLog = Boolean(options.xLog);
  const yLog = Boolean(options.yLog);
  const xAsinh = xLog ? undefined : options.xAsinh;
  const height = options.height ?? 260;
  const width = () => Math.max(240, Math.floor(element.clientWidth || host.clientWidth || 480));
  let signature = "";
  let chart: uPlot;

  const build = (series: PlotSeries[]) => {
    const opts: uPlot.Options = {
      title: options.title,
      width: width(),
      height,
      scales: {
        x: xLog ? { time: false, distr: 3 } : xAsinh ? { time: false, distr: 4, asinh: xAsinh } : { time: false, range: linearRange },
        y: yLog ? { distr: 3 } : { range: linearRange },
      },
      axes: [
        {
          label: options.xLabel,
          values: tickFormat(xLog || Boolean(xAsinh)),
          incrs: options.xIntegers ? INTEGER_INCREMENTS : undefined,
          labelSize: 24,
          font: "12px system-ui, sans-serif",
          labelFont: "bold 13px system-ui, sans-serif",
        },
        { label: options.yLabel, values: tickFormat(yLog), size: 64, labelSize: 24, font: "12px system-ui, sans-serif", labelFont: "bold 13px system-ui, sans-serif" },
      ],
      legend: { live: false },
      cursor: { drag: { x: true, y: false } },
      series: [
        { label: options.xLabel, value: (_u, v) => (v === null || v === undefined ? "–" : formatNumber(v)) },
        ...series.map((s, i): uPlot.Series => {
          const color = s.color ?? PALETTE[i % PALETTE.length];
          const style = s.style ?? "line";
          return {
            label: s.name,
            stroke: color,
            width: style === "points" ? 0 : 2,
            dash: s.dash ? [6, 4] : undefined,
            spanGaps: !s.gaps,
            points: { show: style !== "line", size: 7, fill: color, stroke: color },
            paths: style === "points" ? () => null : undefined,
            value: (_u, v) => (v === null || v === undefined ? "–" : formatNumber(v)),
          };
        }),
      ],
    };
    chart?.destroy();
    chart = new uPlot(opts, alignedData(series, xLog, yLog), element);
    signature = JSON.stringify(series.map((s) => [s.name, s.color, s.style, s.dash, s.gaps]));
  };
  build(options.series);

  const observer = typeof ResizeObserver === "undefined" ? null : new ResizeObserver(() => {
    const w = width();
    if (Math.abs(w - chart.width) > 2) chart.setSize({ width: w, height });
  });
  observer?.observe(element);

  return {
    element,
    get chart() {
      return chart;
    },
    update(series: PlotSeries[]) {
      const next = JSON.stringify(series.map((s) => [s.name, s.color, s.style, s.dash, s.gaps]));
      if (next !== signature) build(series);
      else chart.setData(alignedData(series, xLog, yLog));
    },
    destroy() {
      observer?.disconnect();
      chart.destroy();
      element.remove();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Numbers, parameters, DOM
// ---------------------------------------------------------------------------------------------

/**
 * A number for display: `digits` significant digits, exponent notation outside [1e-3, 1e5),
 * "NaN", "∞", "−∞"; trailing zeros kept off ("1.5", not "1.500").
 */
export function formatNumber(x: number, digits = 4): string {
  return format(x, { digits, pretty: true, keepIntegerDigits: true });
}

/** The page's query parameters (e.g. ?epochs=5&samples=100 for fast tests). */
export function queryParams(): URLSearchParams {
  return new URLSearchParams(location.search);
}

/**
 * A number from the query string, or `fallback` when absent; a present but bad value (not a
 * number, outside [min, max], not an integer when `integer`) throws with the parameter's name.
 */
export function numberParam(name: string, fallback: number, limits: { min?: number; max?: number; integer?: boolean } = {}): number {
  const raw = queryParams().get(name);
  if (raw === null || raw === "") return fallback;
  const v = Number(raw);
  const { min = -Infinity, max = Infinity, integer = false } = limits;
  if (!Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) {
    throw new RangeError(`query parameter ${name}=${raw}: expected ${integer ? "an integer" : "a number"} in [${min}, ${max}]`);
  }
  return v;
}

/** A string from the query string, one of `allowed`, or `fallback` when absent. */
export function choiceParam<T extends string>(name: string, fallback: T, allowed: readonly T[]): T {
  const raw = queryParams().get(name);
  if (raw === null || raw === "") return fallback;
  if (!(allowed as readonly string[]).includes(raw)) throw new RangeError(`query parameter ${name}=${raw}: expected one of ${allowed.join(", ")}`);
  return raw as T;
}

type Child = Node | string | null | undefined | false;

/** Creates an element with attributes and children (strings become text nodes). */
export function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, children: Child | Child[] = []): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of Array.isArray(children) ? children : [children]) {
    if (c === null || c === undefined || c === false) continue;
    node.append(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return node;
}

/** The element with this id, or an Error naming it (a page's HTML and script out of step). */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const node = document.getElementById(id);
  if (!node) throw new Error(`the page has no element #${id}`);
  return node as T;
}

/**
 * A table of metric rows: name, value(s), and an optional note; `rows` replace the body.
 * Returns an updater. Values are formatted with formatNumber.
 */
export function metricTable(host: HTMLElement, columns: string[]): (rows: { name: string; values: (number | string)[]; note?: string; className?: string }[]) => void {
  const tbody = el("tbody");
  host.append(el("table", { class: "metrics" }, [el("thead", {}, el("tr", {}, columns.map((c) => el("th", {}, c)))), tbody]));
  return (rows) => {
    tbody.replaceChildren(
      ...rows.map((r) =>
        el("tr", r.className ? { class: r.className } : {}, [
          el("th", { scope: "row" }, r.name),
          ...r.values.map((v) => el("td", {}, typeof v === "number" ? formatNumber(v) : v)),
          ...(columns.length > r.values.length + 1 ? [el("td", { class: "note" }, r.note ?? "")] : []),
        ])
      ),
    );
  };
}

// ---------------------------------------------------------------------------------------------
// The demos' problem: a seeded built-in dataset and a small ReLU net, trained as `flatness train`
// ---------------------------------------------------------------------------------------------

/**
 * `defaults` overridden by the query string: ?dataset=spirals|mixture&samples=N&hidden=16,16
 * &epochs=E&batch=B&lr=R&seed=S (tests use it to keep runs short).
 */
export function problemFromQuery(defaults: DemoProblem = DEFAULT_PROBLEM): DemoProblem {
  const dataset = choiceParam("dataset", defaults.dataset, ["spirals", "mixture"] as const);
  const classes = dataset === "spirals" ? 2 : 3;
  const hiddenRaw = queryParams().get("hidden");
  let hidden = defaults.widths.slice(1, -1);
  if (hiddenRaw) {
    hidden = hiddenRaw.split(",").map(Number);
    if (hidden.length < 1 || !hidden.every((w) => Number.isInteger(w) && w >= 1 && w <= 512)) {
      throw new RangeError(`query parameter hidden=${hiddenRaw}: expected widths like 16,16`);
    }
  }
  return {
    dataset,
    samples: numberParam("samples", defaults.samples, { min: 10, max: 100_000, integer: true }),
    widths: [2, ...hidden, classes],
    optimizer: choiceParam("optimizer", defaults.optimizer, ["adam", "sgd"] as const),
    lr: numberParam("lr", defaults.lr, { min: 1e-6, max: 10 }),
    batchSize: numberParam("batch", defaults.batchSize, { min: 1, max: 100_000, integer: true }),
    epochs: numberParam("epochs", defaults.epochs, { min: 0, max: 100_000, integer: true }),
    seed: numberParam("seed", defaults.seed, { min: 0, max: 2 ** 31 - 1, integer: true }),
    testFraction: defaults.testFraction,
  };
}

/**
 * Trains the problem's net on the page's backend (trainModel) as a task:
 * progress per epoch, Cancel stops it at the next epoch (AbortError). `onEpoch` sees each record.
 */
export async function trainProblem(
  backend: Backend,
  prepared: PreparedProblem,
  task: Task,
  onEpoch?: (record: EpochRecord, epochs: number) => void,
): Promise<TrainModelResult> {
  const { problem, spec, loss, train, test } = prepared;
  return await trainModel({
    spec,
    data: train,
    test,
    loss,
    optimizer: problem.optimizer,
    lr: problem.lr,
    momentum: problem.optimizer === "sgd" ? 0.9 : undefined,
    batchSize: problem.batchSize,
    epochs: problem.epochs,
    seed: problem.seed,
    backend,
    onProgress: (record, epochs) => {
      onEpoch?.(record, epochs);
      task.progress(record.epoch / Math.max(1, epochs), `epoch ${record.epoch}/${epochs}, loss ${formatNumber(record.trainLoss)}`);
    },
  });
}
