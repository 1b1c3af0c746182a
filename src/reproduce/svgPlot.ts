/**
 * Inline SVG plots for the `flatness reproduce` report: line / scatter plots on linear or log10
 * axes and grouped bar charts, as one self-contained `<svg>` string (no scripts, no external
 * fonts or styles), so the report is a single HTML file that opens offline and prints.
 *
 * Robustness rules: non-finite values are skipped (and counted in a note under the plot), so are
 * non-positive values on a log axis; an empty plot, a single point and a constant series all get a
 * sensible domain; every coordinate written is finite (no "NaN" ever reaches the SVG); every piece
 * of text is XML-escaped.
 */
import { escapeXml, formatNumber, formatTick, REPORT_FORMAT } from "../format.ts";

/** One plotted series; `x` and `y` are paired by index. */
export interface PlotSeries {
  /** Legend name. */
  name: string;
  /** x coordinates (category indices for a bar plot). */
  x: number[];
  /** y coordinates, paired with x by index. */
  y: number[];
  /** draw points only (no line) */
  points?: boolean;
}

/** One plot (of a claim, in the report). */
export interface PlotSpec {
  /** Identifier of the plot, unique within the report. */
  id: string;
  /** Title above the plot. */
  title: string;
  /** x-axis label. */
  xLabel: string;
  /** y-axis label. */
  yLabel: string;
  /** log10 x axis (non-positive values are skipped, with a note under the plot) */
  xLog?: boolean;
  /** log10 y axis (non-positive values are skipped, with a note under the plot) */
  yLog?: boolean;
  /** bar: x are category indices, `categories` names them */
  kind?: "line" | "bar";
  /** Bar plots: the category names, by x index. */
  categories?: string[];
  /** The series plotted. */
  series: PlotSeries[];
  /** Caption under the plot. */
  caption?: string;
}

/**
 * Okabe & Ito's colour-blind-safe palette, reordered for a white background (the yellow, which is
 * hard to see on white, comes last). Series beyond eight cycle, with a different marker shape.
 */
export const PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"];

/** Marker shapes, cycled with the colours so series stay apart in greyscale prints too. */
const SHAPES = ["circle", "square", "triangle", "diamond", "triangle-down", "cross"] as const;
type Shape = typeof SHAPES[number];

const FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', Arial, sans-serif";
const FONT_SIZE = 13;
/** Above this many points a line series is drawn without markers (a marker per point would blur). */
const MARKER_LIMIT = 150;

/**
 * The map from data to pixels: `domain` [d0, d1] onto `range` [r0, r1], linearly or in log10
 * (then both domain ends must be positive). A degenerate domain maps everything to the middle of
 * the range, so the result is always finite for finite (and, on log axes, positive) input.
 */
export function axisScale(domain: readonly [number, number], range: readonly [number, number], log = false): (v: number) => number {
  const t = log ? Math.log10 : (v: number) => v;
  const a = t(domain[0]);
  const b = t(domain[1]);
  const [r0, r1] = range;
  if (!(Number.isFinite(a) && Number.isFinite(b)) || a === b) return () => (r0 + r1) / 2;
  return (v: number) => r0 + ((t(v) - a) / (b - a)) * (r1 - r0);
}

/** Linear axis ticks: a domain widened to whole steps of 1, 2 or 5 times a power of ten. */
export interface LinearTicks { domain: [number, number]; ticks: number[]; step: number }

/** "Nice" linear ticks covering [min, max] with about `count` intervals; min === max is widened. */
export function niceTicks(min: number, max: number, count = 5): LinearTicks {
  if (!(Number.isFinite(min) && Number.isFinite(max))) return { domain: [0, 1], ticks: [0, 0.5, 1], step: 0.5 };
  if (min > max) [min, max] = [max, min];
  if (min === max) {
    const pad = min === 0 ? 1 : Math.abs(min) * 0.1;
    min -= pad;
    max += pad;
  }
  const raw = (max - min) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  const step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  const lo = Math.floor(min / step + 1e-9) * step;
  const hi = Math.ceil(max / step - 1e-9) * step;
  const n = Math.round((hi - lo) / step);
  const ticks: number[] = [];
  // toPrecision(12) removes float noise (0.30000000000000004); `+ 0` turns -0 into 0.
  for (let i = 0; i <= n; i++) ticks.push(Number((lo + i * step).toPrecision(12)) + 0);
  return { domain: [ticks[0], ticks[ticks.length - 1]], ticks, step };
}

/** Log axis ticks: whole decades 10^k (`labelled` ones carry a label) and minor ticks 2..9 x 10^k. */
export interface LogTicks { domain: [number, number]; decades: number[]; labelled: number[]; minor: number[] }

/**
 * Ticks for a log10 axis covering [min, max] (both > 0): the domain is widened to whole decades;
 * with many decades only every k-th one is labelled and minor ticks are left out.
 */
export function logTicks(min: number, max: number): LogTicks {
  if (!(min > 0 && max > 0 && Number.isFinite(min) && Number.isFinite(max))) min = max = 1;
  if (min > max) [min, max] = [max, min];
  let a = Math.floor(Math.log10(min) + 1e-12);
  let b = Math.ceil(Math.log10(max) - 1e-12);
  if (a === b) {
    a -= 1;
    b += 1;
  } else if (a > b) [a, b] = [b, a];
  const span = b - a;
  const stride = Math.ceil(span / 8);
  const decades: number[] = [];
  const labelled: number[] = [];
  const minor: number[] = [];
  for (let k = a; k <= b; k++) {
    decades.push(k);
    if ((k - a) % stride === 0) labelled.push(k);
    if (k < b && span <= 6) for (let m = 2; m <= 9; m++) minor.push(m * 10 ** k);
  }
  return { domain: [10 ** a, 10 ** b], decades, labelled, minor };
}

const SUPERSCRIPT: Record<string, string> = {
  "0": "⁰", "1": "¹", "2": "²", "3": "³", "4": "⁴", "5": "⁵", "6": "⁶", "7": "⁷", "8": "⁸", "9": "⁹", "-": "⁻",
};

/** A decade label: plain numbers (0.001 ... 1000) when every decade shown is small, else 10^k. */
function decadeLabel(k: number, plain: boolean): string {
  if (plain) return k >= 0 ? String(10 ** k) : (10 ** k).toFixed(-k);
  return "10" + String(k).split("").map((c) => SUPERSCRIPT[c]).join("");
}

/** Estimated text width in pixels (no layout engine here; good enough for margins and legends). */
function textWidth(s: string, size = FONT_SIZE): number {
  return s.length * size * 0.58;
}

/** Splits text into at most `maxLines` lines of about `width` pixels, the last one shortened with an ellipsis. */
function wrap(text: string, width: number, size: number, maxLines = 3): string[] {
  const words = text.split(/\s+/).filter((w) => w.length > 0);
  const lines: string[] = [];
  let line = "";
  for (const w of words) {
    const next = line ? `${line} ${w}` : w;
    if (line && textWidth(next, size) > width) {
      lines.push(line);
      line = w;
    } else line = next;
  }
  if (line) lines.push(line);
  if (lines.length > maxLines) {
    const kept = lines.slice(0, maxLines);
    kept[maxLines - 1] += "…";
    return kept;
  }
  return lines;
}

/** A coordinate as short text; callers only pass finite numbers, and this keeps it that way. */
function n(v: number): string {
  if (!Number.isFinite(v)) throw new Error(`svgPlot: non-finite coordinate ${v}`);
  return String(Math.round(v * 100) / 100 + 0);
}

/** A number for a tooltip: 4 significant digits, as in the report's tables but with JavaScript's exponent form ("1.235e+6"). */
function tip(v: number): string {
  return formatNumber(v, { ...REPORT_FORMAT, pretty: false });
}

/** The path of a marker of `shape` centred on (x, y), of about radius r. */
function markerPath(shape: Shape, x: number, y: number, r: number): string {
  switch (shape) {
    case "circle":
      return `M${n(x - r)},${n(y)}a${n(r)},${n(r)} 0 1,0 ${n(2 * r)},0a${n(r)},${n(r)} 0 1,0 ${n(-2 * r)},0Z`;
    case "square": {
      const s = r * 0.9;
      return `M${n(x - s)},${n(y - s)}h${n(2 * s)}v${n(2 * s)}h${n(-2 * s)}Z`;
    }
    case "triangle":
      return `M${n(x)},${n(y - r * 1.15)}L${n(x + r)},${n(y + r * 0.7)}L${n(x - r)},${n(y + r * 0.7)}Z`;
    case "triangle-down":
      return `M${n(x)},${n(y + r * 1.15)}L${n(x + r)},${n(y - r * 0.7)}L${n(x - r)},${n(y - r * 0.7)}Z`;
    case "diamond":
      return `M${n(x)},${n(y - r * 1.2)}L${n(x + r)},${n(y)}L${n(x)},${n(y + r * 1.2)}L${n(x - r)},${n(y)}Z`;
    case "cross": {
      const s = r * 0.35;
      return `M${n(x - s)},${n(y - r)}h${n(2 * s)}v${n(r - s)}h${n(r - s)}v${n(2 * s)}h${n(s - r)}v${n(r - s)}h${n(-2 * s)}v${n(s - r)}h${n(s - r)}v${n(-2 * s)}h${n(r - s)}Z`;
    }
  }
}

/** One series after filtering: runs of consecutive usable points (a skipped value breaks the line). */
interface CleanSeries { series: PlotSeries; index: number; runs: Array<Array<[number, number]>>; count: number }

interface Skipped { nonFinite: number; nonPositiveX: number; nonPositiveY: number }

function clean(spec: PlotSpec, skipped: Skipped): CleanSeries[] {
  return spec.series.map((series, index) => {
    const runs: Array<Array<[number, number]>> = [];
    let run: Array<[number, number]> = [];
    let count = 0;
    const len = Math.min(series.x?.length ?? 0, series.y?.length ?? 0);
    for (let i = 0; i < len; i++) {
      const x = series.x[i];
      const y = series.y[i];
      let ok = true;
      if (typeof x !== "number" || typeof y !== "number" || !Number.isFinite(x) || !Number.isFinite(y)) {
        skipped.nonFinite++;
        ok = false;
      } else {
        if (spec.xLog && spec.kind !== "bar" && x <= 0) {
          skipped.nonPositiveX++;
          ok = false;
        }
        if (spec.yLog && y <= 0) {
          skipped.nonPositiveY++;
          ok = false;
        }
      }
      if (ok) {
        run.push([x, y]);
        count++;
      } else if (run.length > 0) {
        runs.push(run);
        run = [];
      }
    }
    if (run.length > 0) runs.push(run);
    return { series, index, runs, count };
  });
}

function plural(k: number, word: string): string {
  return `${k} ${word}${k === 1 ? "" : "s"}`;
}

/** One axis: its pixel map, tick marks and grid lines already decided. */
interface Axis {
  scale: (v: number) => number;
  major: Array<{ v: number; label: string }>;
  minor: number[];
  /** A linear axis through zero draws a darker zero line. */
  zero: boolean;
}

function makeAxis(values: number[], log: boolean, range: [number, number], count: number, includeZero = false): Axis {
  if (log) {
    const pos = values.filter((v) => v > 0);
    const t = pos.length ? logTicks(Math.min(...pos), Math.max(...pos)) : logTicks(1, 10);
    const plain = t.decades.every((k) => k >= -3 && k <= 3);
    return {
      scale: axisScale(t.domain, range, true),
      major: t.decades.map((k) => ({ v: 10 ** k, label: t.labelled.includes(k) ? decadeLabel(k, plain) : "" })),
      minor: t.minor,
      zero: false,
    };
  }
  let lo = values.length ? Math.min(...values) : 0;
  let hi = values.length ? Math.max(...values) : 1;
  if (includeZero) {
    lo = Math.min(lo, 0);
    hi = Math.max(hi, 0);
    if (lo === 0 && hi === 0) hi = 1;
  }
  const t = niceTicks(lo, hi, count);
  return {
    scale: axisScale(t.domain, range, false),
    major: t.ticks.map((v) => ({ v, label: formatTick(v, t.step) })),
    minor: [],
    zero: t.domain[0] < 0 && t.domain[1] > 0,
  };
}

/**
 * One plot as an `<svg>` element string: title, legend (two or more series), axes with ticks,
 * tick labels and grid lines, axis labels, the data (lines with markers, points, or grouped bars)
 * and, under the plot, a note on whatever was skipped. Sized `width` x `height` (default 580 x 380)
 * with a viewBox, so CSS can scale it.
 */
export function svgPlot(spec: PlotSpec, options: { width?: number; height?: number } = {}): string {
  const width = options.width ?? 580;
  const height = options.height ?? 380;
  const bar = spec.kind === "bar";
  const series = spec.series ?? [];
  const skipped: Skipped = { nonFinite: 0, nonPositiveX: 0, nonPositiveY: 0 };
  const data = clean(spec, skipped);
  const xs = data.flatMap((d) => d.runs.flat().map((p) => p[0]));
  const ys = data.flatMap((d) => d.runs.flat().map((p) => p[1]));
  const total = xs.length;

  // Bars: category slots 0 .. nCat-1, named by `categories` (or by index).
  const nCat = bar ? Math.max(spec.categories?.length ?? 0, ...xs.filter((x) => Number.isInteger(x) && x >= 0).map((x) => x + 1), 0) : 0;
  const catLabels = bar ? Array.from({ length: nCat }, (_, i) => spec.categories?.[i] ?? String(i)) : [];

  const notes: string[] = [];
  if (skipped.nonFinite) notes.push(`${plural(skipped.nonFinite, "non-finite value")} skipped`);
  if (skipped.nonPositiveX) notes.push(`${plural(skipped.nonPositiveX, "non-positive x value")} skipped (log x axis)`);
  if (skipped.nonPositiveY) notes.push(`${plural(skipped.nonPositiveY, "non-positive y value")} skipped (log y axis)`);
  const offCategory = bar ? xs.filter((x) => !(Number.isInteger(x) && x >= 0)).length : 0;
  if (offCategory) notes.push(`${plural(offCategory, "bar")} with a non-integer category index skipped`);
  if (total === 0) notes.push(series.length === 0 ? "no series to plot" : "no plottable data");
  const empty = data.filter((d) => d.count === 0 && series.length > 1).map((d) => d.series.name);
  if (empty.length && total > 0) notes.push(`no data for ${empty.join(", ")}`);

  // Vertical layout: title lines, legend rows, plot area, x tick labels, x label, notes.
  const title = wrap(spec.title ?? "", width - 20, 15, 2);
  const legendItems = series.length >= 2
    ? series.map((s, i) => ({ name: s.name ?? `series ${i + 1}`, i, w: 26 + textWidth(s.name ?? `series ${i + 1}`) + 18 }))
    : [];
  const legendRows: Array<typeof legendItems> = [];
  for (const item of legendItems) {
    const row = legendRows[legendRows.length - 1];
    if (row && row.reduce((s, it) => s + it.w, 0) + item.w <= width - 40) row.push(item);
    else legendRows.push([item]);
  }
  const rotate = bar && catLabels.some((c) => textWidth(c) > (width - 100) / Math.max(1, nCat) - 6);
  const catLabelDepth = rotate ? Math.min(110, 8 + 0.72 * Math.max(...catLabels.map((c) => textWidth(c)))) : 16;
  const noteLines = notes.length ? wrap(notes.join("; "), width - 20, 12, 3) : [];

  const top = 12 + title.length * 19 + legendRows.length * 18 + 10;
  const bottom = 10 + catLabelDepth + (spec.xLabel ? 20 : 0) + noteLines.length * 15 + 6;

  // y axis first (its tick labels decide the left margin).
  const plotH = Math.max(40, height - top - bottom);
  const yAxis = makeAxis(ys, !!spec.yLog, [top + plotH, top], Math.max(3, Math.round(plotH / 60)), bar);
  const yLabelW = Math.max(...yAxis.major.map((t) => textWidth(t.label)), 10);
  const left = 14 + (spec.yLabel ? 20 : 0) + yLabelW + 8;
  const right = 18;
  const plotW = Math.max(40, width - left - right);
  const x0 = left;
  const x1 = left + plotW;
  const y0 = top + plotH; // bottom of the plot area
  const xAxis = bar ? null : makeAxis(xs, !!spec.xLog, [x0, x1], Math.max(3, Math.round(plotW / 90)));

  const parts: string[] = [];
  const titleId = `plot-title-${(spec.id ?? "plot").replace(/[^A-Za-z0-9_-]/g, "_")}`;
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
      `role="img" aria-labelledby="${escapeXml(titleId)}" font-family="${FONT}" font-size="${FONT_SIZE}">`,
    `<title id="${escapeXml(titleId)}">${escapeXml(spec.title ?? "")}</title>`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
  );
  title.forEach((line, i) => {
    parts.push(`<text x="${n(width / 2)}" y="${n(12 + 15 + i * 19)}" text-anchor="middle" font-size="15" font-weight="600" fill="#111">${escapeXml(line)}</text>`);
  });

  // Legend: rows centred under the title; each entry a line (or bar swatch) with the marker.
  legendRows.forEach((row, r) => {
    const rowW = row.reduce((s, it) => s + it.w, 0) - 18;
    let x = (width - rowW) / 2;
    const y = 12 + title.length * 19 + r * 18 + 10;
    for (const it of row) {
      const colour = PALETTE[it.i % PALETTE.length];
      const shape = SHAPES[it.i % SHAPES.length];
      parts.push(`<g class="legend-item">`);
      if (bar) parts.push(`<rect x="${n(x + 5)}" y="${n(y - 6)}" width="14" height="12" fill="${colour}"/>`);
      else {
        if (!series[it.i].points) parts.push(`<line x1="${n(x)}" y1="${n(y)}" x2="${n(x + 22)}" y2="${n(y)}" stroke="${colour}" stroke-width="2"/>`);
        parts.push(`<path d="${markerPath(shape, x + 11, y, 3.5)}" fill="${colour}"/>`);
      }
      parts.push(`<text x="${n(x + 26)}" y="${n(y + 4)}" fill="#222">${escapeXml(it.name)}</text>`, `</g>`);
      x += it.w;
    }
  });

  // Grid, ticks and tick labels.
  const grid: string[] = [];
  const ticks: string[] = [];
  for (const t of yAxis.major) {
    const y = yAxis.scale(t.v);
    grid.push(`<line x1="${n(x0)}" y1="${n(y)}" x2="${n(x1)}" y2="${n(y)}" stroke="${t.v === 0 && yAxis.zero ? "#999" : "#e3e3e3"}"/>`);
    ticks.push(`<line x1="${n(x0 - 5)}" y1="${n(y)}" x2="${n(x0)}" y2="${n(y)}" stroke="#333"/>`);
    if (t.label) ticks.push(`<text x="${n(x0 - 8)}" y="${n(y + 4)}" text-anchor="end" fill="#333">${escapeXml(t.label)}</text>`);
  }
  for (const v of yAxis.minor) {
    const y = yAxis.scale(v);
    ticks.push(`<line x1="${n(x0 - 3)}" y1="${n(y)}" x2="${n(x0)}" y2="${n(y)}" stroke="#555"/>`);
  }
  if (xAxis) {
    for (const t of xAxis.major) {
      const x = xAxis.scale(t.v);
      grid.push(`<line x1="${n(x)}" y1="${n(top)}" x2="${n(x)}" y2="${n(y0)}" stroke="${t.v === 0 && xAxis.zero ? "#999" : "#e3e3e3"}"/>`);
      ticks.push(`<line x1="${n(x)}" y1="${n(y0)}" x2="${n(x)}" y2="${n(y0 + 5)}" stroke="#333"/>`);
      if (t.label) ticks.push(`<text x="${n(x)}" y="${n(y0 + 18)}" text-anchor="middle" fill="#333">${escapeXml(t.label)}</text>`);
    }
    for (const v of xAxis.minor) {
      const x = xAxis.scale(v);
      ticks.push(`<line x1="${n(x)}" y1="${n(y0)}" x2="${n(x)}" y2="${n(y0 + 3)}" stroke="#555"/>`);
    }
  } else {
    const band = plotW / Math.max(1, nCat);
    catLabels.forEach((c, i) => {
      const x = x0 + band * (i + 0.5);
      ticks.push(`<line x1="${n(x)}" y1="${n(y0)}" x2="${n(x)}" y2="${n(y0 + 5)}" stroke="#333"/>`);
      ticks.push(
        rotate
          ? `<text x="${n(x)}" y="${n(y0 + 14)}" text-anchor="end" transform="rotate(-40 ${n(x)} ${n(y0 + 14)})" fill="#333">${escapeXml(c)}</text>`
          : `<text x="${n(x)}" y="${n(y0 + 18)}" text-anchor="middle" fill="#333">${escapeXml(c)}</text>`,
      );
    });
  }
  parts.push(`<g class="grid">`, ...grid, `</g>`);

  // Data.
  parts.push(`<g class="data">`);
  if (bar) {
    const band = plotW / Math.max(1, nCat);
    const groupW = band * 0.8;
    const barW = groupW / Math.max(1, series.length);
    const base = spec.yLog ? y0 : yAxis.scale(0);
    for (const d of data) {
      const colour = PALETTE[d.index % PALETTE.length];
      for (const [x, y] of d.runs.flat()) {
        if (!(Number.isInteger(x) && x >= 0 && x < nCat)) continue;
        const bx = x0 + band * x + (band - groupW) / 2 + barW * d.index;
        const by = yAxis.scale(y);
        const label = `${d.series.name ?? ""}, ${catLabels[x]}: ${tip(y)}`;
        parts.push(
          `<rect x="${n(bx + 0.5)}" y="${n(Math.min(by, base))}" width="${n(Math.max(1, barW - 1))}" height="${n(Math.max(0.5, Math.abs(base - by)))}" fill="${colour}">` +
            `<title>${escapeXml(label)}</title></rect>`,
        );
      }
    }
  } else if (xAxis) {
    for (const d of data) {
      const colour = PALETTE[d.index % PALETTE.length];
      const shape = SHAPES[d.index % SHAPES.length];
      const pts = d.runs.map((run) => run.map(([x, y]) => [xAxis.scale(x), yAxis.scale(y), x, y] as const));
      if (!d.series.points) {
        const path = pts.filter((run) => run.length > 1).map((run) => run.map(([px, py], i) => `${i ? "L" : "M"}${n(px)},${n(py)}`).join("")).join("");
        if (path) parts.push(`<path d="${path}" fill="none" stroke="${colour}" stroke-width="2" stroke-linejoin="round" stroke-linecap="round"/>`);
      }
      if (d.series.points || d.count <= MARKER_LIMIT || pts.some((run) => run.length === 1)) {
        const r = d.count > 60 ? 2.5 : 3.5;
        for (const run of pts) {
          if (!(d.series.points || d.count <= MARKER_LIMIT) && run.length > 1) continue;
          for (const [px, py, x, y] of run) {
            parts.push(`<path d="${markerPath(shape, px, py, r)}" fill="${colour}" fill-opacity="${d.series.points ? 0.8 : 1}"><title>${escapeXml(`${d.series.name ?? ""}: (${tip(x)}, ${tip(y)})`)}</title></path>`);
          }
        }
      }
    }
  }
  if (total === 0) {
    parts.push(`<text x="${n((x0 + x1) / 2)}" y="${n((top + y0) / 2)}" text-anchor="middle" fill="#888" font-size="14">no data</text>`);
  }
  parts.push(`</g>`);

  // Frame, ticks, labels, notes.
  parts.push(`<rect x="${n(x0)}" y="${n(top)}" width="${n(plotW)}" height="${n(plotH)}" fill="none" stroke="#333"/>`);
  parts.push(`<g class="ticks">`, ...ticks, `</g>`);
  const xLabelY = y0 + catLabelDepth + 20;
  if (spec.xLabel) parts.push(`<text x="${n((x0 + x1) / 2)}" y="${n(xLabelY)}" text-anchor="middle" fill="#111">${escapeXml(spec.xLabel)}</text>`);
  if (spec.yLabel) {
    const cx = 18;
    const cy = (top + y0) / 2;
    parts.push(`<text x="${n(cx)}" y="${n(cy)}" text-anchor="middle" transform="rotate(-90 ${n(cx)} ${n(cy)})" fill="#111">${escapeXml(spec.yLabel)}</text>`);
  }
  noteLines.forEach((line, i) => {
    parts.push(`<text class="note" x="10" y="${n(height - 8 - (noteLines.length - 1 - i) * 15)}" font-size="12" font-style="italic" fill="#8a4b00">${escapeXml(line)}</text>`);
  });
  parts.push(`</svg>`);
  return parts.join("\n");
}
