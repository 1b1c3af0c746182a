/// <reference lib="dom" />
/**
 * The decision boundary of page 1, drawn from the live parameters: the net is evaluated in float64
 * (mlpForward, src/datasets.ts) on a grid over the data's bounding box, each cell coloured by its
 * predicted class (deeper where the softmax is more confident), cells whose class differs from a
 * neighbour's drawn dark (the boundary), and the data on top. T_alpha and neuron-wise rescaling
 * keep every output up to float64 rounding, so the picture is pixel-identical.
 */
import type { Dataset } from "../../src/data.ts";
import { mlpForward } from "../../src/datasets.ts";
import type { ModelSpec } from "../../src/model.ts";

/** Class colours (Okabe-Ito blue, vermillion, green, ...), as RGB. */
export const CLASS_RGB: [number, number, number][] = [
  [0, 114, 178],
  [213, 94, 0],
  [0, 158, 115],
  [204, 121, 167],
  [230, 159, 0],
];

export interface BoundaryGrid {
  /** Cells per side. */
  cells: number;
  xMin: number;
  xMax: number;
  yMin: number;
  yMax: number;
  /** Cell centres, row-major from the top row, [cells², 2]. */
  points: Float64Array;
}

/** A square grid covering the data with a 10% margin. */
export function boundaryGrid(data: Dataset, cells: number): BoundaryGrid {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < data.n * 2; i++) {
    lo = Math.min(lo, data.x[i]);
    hi = Math.max(hi, data.x[i]);
  }
  const pad = 0.1 * (hi - lo);
  const xMin = lo - pad, xMax = hi + pad, yMin = lo - pad, yMax = hi + pad;
  const points = new Float64Array(cells * cells * 2);
  for (let r = 0; r < cells; r++) {
    for (let c = 0; c < cells; c++) {
      const i = r * cells + c;
      points[2 * i] = xMin + ((c + 0.5) / cells) * (xMax - xMin);
      points[2 * i + 1] = yMax - ((r + 0.5) / cells) * (yMax - yMin);
    }
  }
  return { cells, xMin, xMax, yMin, yMax, points };
}

/** The net's outputs on the grid, [cells², classes], float64. */
export function gridOutputs(spec: ModelSpec, theta: Float64Array, grid: BoundaryGrid): Float64Array {
  return mlpForward(spec, theta, grid.points, grid.cells * grid.cells);
}

/** Largest |difference| between two output arrays (the function check). */
export function maxAbsDifference(a: Float64Array, b: Float64Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/**
 * Paints the grid's classes and confidences, the boundary and the data (train: filled dots,
 * test: rings) onto `canvas` (2-D context, its own width x height).
 */
export function drawBoundary(
  canvas: HTMLCanvasElement,
  grid: BoundaryGrid,
  outputs: Float64Array,
  classes: number,
  train: Dataset,
  test?: Dataset,
): void {
  const ctx = canvas.getContext("2d", { willReadFrequently: true })!;
  const { cells } = grid;
  const label = new Int32Array(cells * cells);
  const strength = new Float64Array(cells * cells);
  for (let i = 0; i < cells * cells; i++) {
    let best = 0;
    let max = -Infinity;
    for (let k = 0; k < classes; k++) {
      const v = outputs[i * classes + k];
      if (v > max) {
        max = v;
        best = k;
      }
    }
    let sum = 0;
    for (let k = 0; k < classes; k++) sum += Math.exp(outputs[i * classes + k] - max);
    const p = 1 / sum; // softmax probability of the predicted class
    label[i] = best;
    strength[i] = (p - 1 / classes) / (1 - 1 / classes);
  }
  const w = canvas.width;
  const h = canvas.height;
  const image = ctx.createImageData(w, h);
  for (let py = 0; py < h; py++) {
    const r = Math.min(cells - 1, Math.floor((py / h) * cells));
    for (let px = 0; px < w; px++) {
      const c = Math.min(cells - 1, Math.floor((px / w) * cells));
      const i = r * cells + c;
      const k = label[i];
      const edge = (c + 1 < cells && label[i + 1] !== k) || (r + 1 < cells && label[i + cells] !== k);
      const o = 4 * (py * w + px);
      if (edge) {
        image.data[o] = 40;
        image.data[o + 1] = 40;
        image.data[o + 2] = 48;
      } else {
        const t = 0.12 + 0.38 * strength[i];
        const [cr, cg, cb] = CLASS_RGB[k % CLASS_RGB.length];
        image.data[o] = Math.round(255 + (cr - 255) * t);
        image.data[o + 1] = Math.round(255 + (cg - 255) * t);
        image.data[o + 2] = Math.round(255 + (cb - 255) * t);
      }
      image.data[o + 3] = 255;
    }
  }
  ctx.putImageData(image, 0, 0);
  const toPx = (x: number, y: number): [number, number] => [
    ((x - grid.xMin) / (grid.xMax - grid.xMin)) * w,
    ((grid.yMax - y) / (grid.yMax - grid.yMin)) * h,
  ];
  const dots = (data: Dataset, filled: boolean) => {
    for (let s = 0; s < data.n; s++) {
      const [x, y] = toPx(data.x[2 * s], data.x[2 * s + 1]);
      const [cr, cg, cb] = CLASS_RGB[(data.labels?.[s] ?? 0) % CLASS_RGB.length];
      ctx.beginPath();
      ctx.arc(x, y, filled ? 3.2 : 3.6, 0, 2 * Math.PI);
      if (filled) {
        ctx.fillStyle = `rgb(${cr},${cg},${cb})`;
        ctx.fill();
        ctx.strokeStyle = "#ffffff";
        ctx.lineWidth = 0.8;
        ctx.stroke();
      } else {
        ctx.strokeStyle = `rgb(${cr},${cg},${cb})`;
        ctx.lineWidth = 1.6;
        ctx.stroke();
      }
    }
  };
  dots(train, true);
  if (test) dots(test, false);
}
