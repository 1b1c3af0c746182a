/// <reference lib="dom" />
/**
 * Line plots (uPlot): titled, labelled, with a legend, log/asinh axes and readable ticks, resized
 * with their element; the palette and uPlot's stylesheet that the other plots share.
 */
import uPlot from "uplot";
import uplotCss from "uplot/dist/uPlot.min.css" with { type: "text" };
import { el } from "./dom.ts";
import { formatNumber } from "./format.ts";

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
