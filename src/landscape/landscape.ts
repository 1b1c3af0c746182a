/**
 * computeLandscape: choose the directions (src/landscape/directions.ts), evaluate the 1-D or 2-D
 * slice in one batched call (src/landscape/slice.ts) and summarise it. Engine-neutral: the
 * evaluator is GpuBatchLoss or the float64 SequentialBatchLoss, and eigen directions take any
 * Objective (GPU or reference) for their Hessian-vector products.
 */
import { InputError } from "../errors.ts";
import type { ModelSpec } from "../model.ts";
import type { Objective } from "../objective.ts";
import type { BatchLoss } from "./batchLoss.ts";
import {
  alphaOrbit,
  type BiasPolicy,
  type DirectionKind,
  eigenDirections,
  filterDirection,
  norm,
  randomDirection,
} from "./directions.ts";
import { type Axis, type LandscapeSlice, lossSlice, sliceExtremes } from "./slice.ts";

/** Options of computeLandscape. */
export interface LandscapeOptions {
  /** Which directions d1 (and d2) span the slice. */
  directions: DirectionKind;
  /** 1-D slice L(theta + a d1) or 2-D slice L(theta + a d1 + b d2). */
  dims: 1 | 2;
  /** One axis per dimension. */
  axes: Axis[];
  /** Seed of random / filter directions (d2 uses seed + 1) and of the Lanczos start vector. */
  seed?: number;
  /** Biases in random and filter directions (default "ignore": zero). */
  bias?: BiasPolicy;
  /** T_alpha: the layer scaled up and the one scaled down (default first and last). */
  alphaLayers?: [number, number];
}

/** One direction of a landscape. */
export interface DirectionInfo {
  /** How it was made. */
  kind: "random" | "filter" | "eigen" | "alpha";
  /** Its Euclidean norm ||d||. */
  norm: number;
  /** Eigen directions: the Hessian eigenvalue (Lanczos Ritz value). */
  eigenvalue?: number;
  /** Eigen directions: the true residual ||H v - lambda v||. */
  residual?: number;
  /** Eigen directions: whether Lanczos converged on it. */
  converged?: boolean;
}

/** A loss-landscape slice along random, filter-normalized (Li et al. 2018), Hessian-eigenvector or T_alpha-orbit (Dinh et al. 2017 Definition 5) directions, with its directions and extremes. */
export interface LandscapeResult extends LandscapeSlice {
  /** The direction kind. */
  directions: DirectionKind;
  /** What the directions gave the biases; null when it does not apply (eigen, 1-D alpha). */
  bias: BiasPolicy | null;
  /** Seed of the directions. */
  seed: number;
  /** Parameter count n. */
  parameters: number;
  /** ||theta||_2. */
  thetaNorm: number;
  /** One entry per direction (d1, then d2). */
  directionInfo: DirectionInfo[];
  /** The grid point of lowest loss (b = 0 in 1-D). */
  min: { a: number; b: number; loss: number };
  /** The grid point of highest loss (b = 0 in 1-D). */
  max: { a: number; b: number; loss: number };
  /** T_alpha: the layers, and how far the loss strays from L(theta) along the orbit and along the straight tangent line. */
  orbit?: { up: number; down: number; orbitMaxDeviation: number | null; lineMaxDeviation: number };
  /** Hessian-vector products spent on eigen directions. */
  hvps: number;
}

/** Computes the slice; `objective` is needed for eigen directions only. */
export async function computeLandscape<V>(
  evaluator: BatchLoss,
  spec: ModelSpec,
  theta: Float64Array,
  options: LandscapeOptions,
  objective?: Objective<V>,
): Promise<LandscapeResult> {
  const { dims, directions: kind } = options;
  if (dims !== 1 && dims !== 2) throw new InputError(`dims must be 1 or 2, got ${dims}`);
  const seed = options.seed ?? 0;
  const bias = options.bias ?? "ignore";
  const info: DirectionInfo[] = [];
  const dirs: Float64Array[] = [];
  let orbit: ReturnType<typeof alphaOrbit> | undefined;
  let hvps = 0;
  const randomLike = (i: number, k: "random" | "filter") => {
    const d = k === "random" ? randomDirection(spec, seed + i, bias) : filterDirection(spec, theta, seed + i, bias);
    dirs.push(d);
    info.push({ kind: k, norm: norm(d) });
  };
  switch (kind) {
    case "random":
    case "filter":
      for (let i = 0; i < dims; i++) randomLike(i, kind);
      break;
    case "eigen": {
      if (!objective) throw new InputError("eigen directions need an objective for Hessian-vector products");
      const e = await eigenDirections(objective, theta, dims, { seed });
      hvps = e.hvps;
      if (e.vectors.length < dims) throw new InputError(`Lanczos found ${e.vectors.length} eigenvectors, ${dims} were asked for`);
      e.vectors.forEach((v, i) => {
        dirs.push(v);
        info.push({ kind: "eigen", norm: norm(v), eigenvalue: e.eigenvalues[i], residual: e.residuals[i], converged: e.converged[i] });
      });
      break;
    }
    case "alpha": {
      const [up, down] = options.alphaLayers ?? [0, spec.layers.length - 1];
      orbit = alphaOrbit(spec, theta, up, down);
      dirs.push(orbit.tangent);
      info.push({ kind: "alpha", norm: norm(orbit.tangent) });
      if (dims === 2) randomLike(1, "filter");
      break;
    }
    default:
      throw new InputError(`unknown direction kind '${kind}': use random, filter, eigen or alpha`);
  }
  if (info.some((d) => !(d.norm > 0))) {
    throw new InputError(`a ${kind} direction is zero (theta is zero on the parameters it moves?): nothing to plot`);
  }
  const slice = await lossSlice(evaluator, theta, dirs, options.axes.slice(0, dims), dims === 1 ? orbit : undefined);
  const { min, max } = sliceExtremes(slice);
  const result: LandscapeResult = {
    ...slice,
    directions: kind,
    bias: kind === "random" || kind === "filter" || (kind === "alpha" && dims === 2) ? bias : null,
    seed,
    parameters: theta.length,
    thetaNorm: norm(theta),
    directionInfo: info,
    min,
    max,
    hvps,
  };
  if (orbit) {
    const dev = (values: number[]) => values.reduce((m, v) => Math.max(m, Math.abs(v - slice.center)), 0);
    const line = dims === 1 ? slice.values : slice.values.filter((_, i) => slice.b![Math.floor(i / slice.a.length)] === 0);
    result.orbit = {
      up: orbit.up,
      down: orbit.down,
      orbitMaxDeviation: slice.orbitValues ? dev(slice.orbitValues) : null,
      lineMaxDeviation: dev(line.length ? line : slice.values),
    };
  }
  return result;
}
