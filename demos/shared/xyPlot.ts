/// <reference lib="dom" />
/**
 * x-y plots (geometry and audit pages), where curves are not functions of x (level curves,
 * circles, deformed grid lines, vertical markers): uPlot in its x-y mode (mode 2: each series its
 * own x and y arrays; a NaN starts a new piece of the polyline), with fixed ranges so a slider moves
 * the curves and not the axes, and an equal-aspect option for pictures of the plane.
 */
import uPlot from "uplot";
import { el } from "./dom.ts";
import { formatNumber } from "./format.ts";
import { injectPlotCss, PALETTE } from "./plots.ts";

export interface XYSeries {
  name: string;
  x: ArrayLike<number>;
  y: ArrayLike<number>;
  color?: string;
  /** Line width in CSS pixels (0: markers only). Default 2. */
  width?: number;
  dash?: boolean;
  /** Marker diameter in CSS pixels (default: none). */
  points?: number;
  /** Left out of the legend (helper lines). */
  hideInLegend?: boolean;
}

export interface XYPlotOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  xRange: [number, number];
  yRange: [number, number];
  series: XYSeries[];
  /** Height in CSS pixels (default: the width, capped at 460, for equalAspect; else 300). */
  height?: number;
  /** One unit on x as long as one unit on y (pictures of the plane). */
  equalAspect?: boolean;
  /** Logarithmic axes (values <= 0 are dropped). */
  xLog?: boolean;
  yLog?: boolean;
  /** Categories on the y axis: ticks at `values` labelled `labels` (and the axis this wide, px). */
  yCategories?: { values: number[]; labels: string[]; width: number };
}

export interface XYPlot {
  /** New data, same series (names, colours, count); optionally new ranges. */
  update(series: XYSeries[], ranges?: { x?: [number, number]; y?: [number, number] }): void;
  readonly chart: uPlot;
  readonly element: HTMLElement;
  destroy(): void;
}

// Room taken by the y axis (left) and the x axis (below) around the plotting area, CSS pixels.
const Y_AXIS = 64 + 24;
const X_AXIS = 50 + 24;
const TITLE = 30;

function toData(series: XYSeries[], xLog: boolean, yLog: boolean): uPlot.AlignedData {
  const data: unknown[] = [null];
  for (const s of series) {
    const n = Math.min(s.x.length, s.y.length);
    const xs: (number | null)[] = [];
    const ys: (number | null)[] = [];
    for (let i = 0; i < n; i++) {
      const ok = Number.isFinite(s.x[i]) && Number.isFinite(s.y[i]) && (!xLog || s.x[i] > 0) && (!yLog || s.y[i] > 0);
      xs.push(ok ? s.x[i] : null);
      ys.push(ok ? s.y[i] : null);
    }
    data.push([xs, ys]);
  }
  return data as uPlot.AlignedData;
}

/**
 * Polylines in data order, a null ending a piece. uPlot's own linear path builder decimates long
 * series on the assumption that x is sorted, which level curves and grid lines are not.
 */
const polyline: uPlot.Series.PathBuilder = (u, seriesIdx) => {
  const [xs, ys] = u.data[seriesIdx] as unknown as [(number | null)[], (number | null)[]];
  const stroke = new Path2D();
  let pen = false;
  for (let i = 0; i < xs.length; i++) {
    const x = xs[i];
    const y = ys[i];
    if (x === null || y === null) {
      pen = false;
      continue;
    }
    const px = u.valToPos(x, "x", true);
    const py = u.valToPos(y, "y", true);
    if (pen) stroke.lineTo(px, py);
    else stroke.moveTo(px, py);
    pen = true;
  }
  return { stroke, fill: null, clip: null, band: null, gaps: null, flags: 0 } as unknown as uPlot.Series.Paths;
};

/** Every point of the series (in mode 2 uPlot would otherwise use the x-window of mode 1). */
const allPoints = (u: uPlot, seriesIdx: number) => {
  const xs = (u.data[seriesIdx] as unknown as number[][])[0];
  return Array.from({ length: xs.length }, (_, i) => i);
};

export function xyPlot(host: HTMLElement, options: XYPlotOptions): XYPlot {
  injectPlotCss();
  const element = el("div", { class: "plot xy" });
  host.append(element);
  let ranges = { x: options.xRange, y: options.yRange };
  const xLog = Boolean(options.xLog);
  const yLog = Boolean(options.yLog);
  const size = () => {
    const width = Math.max(260, Math.floor(element.clientWidth || host.clientWidth || 480));
    if (options.height) return { width, height: options.height };
    if (!options.equalAspect) return { width, height: 300 };
    const aspect = (ranges.y[1] - ranges.y[0]) / (ranges.x[1] - ranges.x[0]);
    const plotW = width - Y_AXIS - 10;
    let height = Math.round(plotW * aspect + X_AXIS + TITLE);
    let w = width;
    if (height > 480) {
      // Too tall: narrow the plot instead.
      height = 480;
      w = Math.round((height - X_AXIS - TITLE) / aspect + Y_AXIS + 10);
    }
    return { width: w, height };
  };
  const tick = (_u: uPlot, vals: number[]) => vals.map((v) => (v === null || v === undefined ? "" : formatNumber(v, 3)));
  const font = "12px system-ui, sans-serif";
  const labelFont = "bold 13px system-ui, sans-serif";
  const opts: uPlot.Options = {
    mode: 2,
    title: options.title,
    ...size(),
    scales: {
      x: { time: false, auto: false, distr: xLog ? 3 : 1, range: () => ranges.x },
      y: { auto: false, distr: yLog ? 3 : 1, range: () => ranges.y },
    },
    axes: [
      { label: options.xLabel, values: tick, font, labelFont, labelSize: 24, size: 50 },
      options.yCategories
        ? {
          label: options.yLabel,
          font,
          labelFont,
          labelSize: 24,
          size: options.yCategories.width,
          splits: () => options.yCategories!.values,
          values: () => options.yCategories!.labels,
          grid: { stroke: "#eef0f3" },
        }
        : { label: options.yLabel, values: tick, font, labelFont, labelSize: 24, size: 64 },
    ],
    legend: { live: false },
    cursor: { drag: { x: false, y: false, setScale: false }, points: { show: false } },
    series: [
      {},
      ...options.series.map((s, i): uPlot.Series => {
        const color = s.color ?? PALETTE[i % PALETTE.length];
        const width = s.width ?? 2;
        return {
          label: s.name,
          stroke: color,
          width,
          dash: s.dash ? [6, 4] : undefined,
          paths: width > 0 ? polyline : () => null,
          points: s.points ? { show: true, size: s.points, fill: color, stroke: color, width: 1, filter: allPoints } : { show: false },
          facets: [{ scale: "x", auto: false }, { scale: "y", auto: false }],
        } as uPlot.Series;
      }),
    ],
  };
  const chart = new uPlot(opts, toData(options.series, xLog, yLog), element);
  // Helper series stay drawn but leave the legend.
  const hidden = new Set(options.series.filter((s) => s.hideInLegend).map((s) => s.name));
  for (const row of chart.root.querySelectorAll<HTMLElement>(".u-legend .u-series")) {
    if (hidden.has(row.querySelector(".u-label")?.textContent ?? "")) row.style.display = "none";
  }
  const observer = new ResizeObserver(() => {
    const next = size();
    if (Math.abs(next.width - chart.width) > 2) chart.setSize(next);
  });
  observer.observe(element);
  return {
    chart,
    element,
    update(series, next) {
      if (next?.x || next?.y) {
        ranges = { x: next.x ?? ranges.x, y: next.y ?? ranges.y };
        chart.setSize(size());
      }
      chart.setData(toData(series, xLog, yLog), true);
    },
    destroy() {
      observer.disconnect();
      chart.destroy();
      element.remove();
    },
  };
}
