/**
 * Loss slices on a grid: L(theta + a d1) for a in a 1-D grid, or L(theta + a d1 + b d2) on a 2-D
 * grid (Li et al. 2018's plots), every point through one BatchLoss call so the GPU evaluates them
 * many per data pass; for the T_alpha direction also the loss along the orbit itself,
 * L(D(a) theta), in the same call (src/landscape/directions.ts).
 */
import { InputError } from "../errors.ts";
import type { BatchLoss, PerturbationBatch } from "./batchLoss.ts";
import type { AlphaOrbit } from "./directions.ts";

/** One grid axis: `steps` evenly spaced values from `from` to `to` inclusive. */
export interface Axis {
  /** First value. */
  from: number;
  /** Last value (> from). */
  to: number;
  /** Number of values (>= 2). */
  steps: number;
}

export function axisValues(axis: Axis): number[] {
  const { from, to, steps } = axis;
  if (steps === 1) return [from];
  // (from (m - i) + to i) / m: both ends exact, symmetric ranges symmetric, 0 exactly 0 when on the grid.
  const m = steps - 1;
  return Array.from({ length: steps }, (_, i) => (from * (m - i) + to * i) / m);
}

export function checkAxis(axis: Axis, name: string): void {
  if (!Number.isFinite(axis.from) || !Number.isFinite(axis.to)) throw new InputError(`${name}: the range must be finite numbers, got ${axis.from}:${axis.to}`);
  if (!(axis.to > axis.from)) throw new InputError(`${name}: the range ${axis.from}:${axis.to} must go from a smaller to a larger value`);
  if (!Number.isInteger(axis.steps) || axis.steps < 2) throw new InputError(`${name}: steps must be an integer >= 2, got ${axis.steps}`);
}

/** Loss values on a 1-D or 2-D grid of theta + a d1 (+ b d2). */
export interface LandscapeSlice {
  /** 1-D or 2-D. */
  dims: 1 | 2;
  /** Grid values along d1 (a) and, in 2-D, along d2 (b). */
  a: number[];
  /** Grid values along d2 (2-D); null in 1-D. */
  b: number[] | null;
  /** L at every grid point: 1-D [a_i]; 2-D row-major [b_j][a_i]. */
  values: number[];
  /** 1-D T_alpha slices: L(D(a_i) theta) along the orbit. */
  orbitValues?: number[];
  /** L(theta), evaluated in the same batch as the grid. */
  center: number;
  /** Points evaluated (grid, orbit and center) and the wall time of the evaluation. */
  points: number;
  /** Wall-clock time of the evaluation in milliseconds. */
  wallMs: number;
}

/**
 * Evaluates the slice of `directions` (one or two) over the axes (one per direction) around theta;
 * with `orbit` (1-D only) also the loss along the T_alpha orbit at the same a.
 */
export async function lossSlice(
  evaluator: BatchLoss,
  theta: Float64Array,
  directions: Float64Array[],
  axes: Axis[],
  orbit?: AlphaOrbit,
): Promise<LandscapeSlice> {
  const dims = directions.length;
  if (dims !== 1 && dims !== 2) throw new InputError(`a loss slice needs one or two directions, got ${dims}`);
  if (axes.length !== dims) throw new InputError(`${dims} directions need ${dims} axes, got ${axes.length}`);
  axes.forEach((axis, i) => checkAxis(axis, `axis ${i === 0 ? "a" : "b"}`));
  if (orbit && dims !== 1) throw new InputError("the T_alpha orbit is evaluated in 1-D slices only");
  const a = axisValues(axes[0]);
  const b = dims === 2 ? axisValues(axes[1]) : null;
  // Basis: the directions, then (orbit) u+ and u-; coefficients row per point; the center last.
  const basis = [...directions, ...(orbit ? [orbit.plus, orbit.minus] : [])];
  const J = basis.length;
  const rows: number[][] = [];
  const pad = (c: number[]) => [...c, ...Array(J - c.length).fill(0)];
  if (b) for (const bj of b) for (const ai of a) rows.push(pad([ai, bj]));
  else for (const ai of a) rows.push(pad([ai]));
  if (orbit) for (const t of a) rows.push([0, Math.expm1(t), Math.expm1(-t)]);
  rows.push(pad([]));
  const batch: PerturbationBatch = { base: theta, basis, coefficients: Float64Array.from(rows.flat()) };
  const t0 = performance.now();
  const losses = await evaluator.losses(batch);
  const wallMs = performance.now() - t0;
  const grid = a.length * (b?.length ?? 1);
  const slice: LandscapeSlice = {
    dims: dims as 1 | 2,
    a,
    b,
    values: Array.from(losses.subarray(0, grid)),
    center: losses[losses.length - 1],
    points: losses.length,
    wallMs,
  };
  if (orbit) slice.orbitValues = Array.from(losses.subarray(grid, grid + a.length));
  return slice;
}

/** The slice as CSV: a header, then one row per grid point (a, b, loss[, orbit_loss]); b is 0 in 1-D. */
export function sliceCsv(slice: LandscapeSlice): string {
  const lines = [slice.orbitValues ? "a,b,loss,orbit_loss" : "a,b,loss"];
  const a = slice.a;
  if (slice.b) {
    slice.b.forEach((bj, j) => a.forEach((ai, i) => lines.push(`${ai},${bj},${slice.values[j * a.length + i]}`)));
  } else {
    a.forEach((ai, i) => lines.push(`${ai},0,${slice.values[i]}${slice.orbitValues ? `,${slice.orbitValues[i]}` : ""}`));
  }
  return lines.join("\n") + "\n";
}

/** Minimum and maximum of the grid values, with where they are. */
export function sliceExtremes(slice: LandscapeSlice) {
  let min = 0;
  let max = 0;
  slice.values.forEach((v, i) => {
    if (v < slice.values[min]) min = i;
    if (v > slice.values[max]) max = i;
  });
  const at = (i: number) => {
    const n = slice.a.length;
    return { a: slice.a[i % n], b: slice.b ? slice.b[Math.floor(i / n)] : 0, loss: slice.values[i] };
  };
  return { min: at(min), max: at(max) };
}
