/**
 * Spectral density of a symmetric operator by stochastic Lanczos quadrature (SLQ: Lin, Saad, Yang
 * 2016, section 3.2; Ghorbani, Krishnan, Xiao 2019, section 2 and Appendix A). For each run, m
 * Lanczos steps from a normalized Rademacher vector v = z / sqrt(n) (full reorthogonalization,
 * ./lanczos.ts) give T_m = S diag(theta) S^T; the Gauss quadrature nodes theta_i and weights
 * w_i = S_{1i}^2 (summing to 1) satisfy sum_i w_i f(theta_i) = v^T f(A) v exactly for polynomials
 * f of degree <= 2m - 1, and E[v^T f(A) v] = (1/n) tr f(A). The density is
 *   phi(t) = (1/runs) sum_runs sum_i w_i g_sigma(t - theta_i),
 *   g_sigma(x) = exp(-x^2 / (2 sigma^2)) / (sigma sqrt(2 pi)),
 * on a uniform grid over [min theta - pad, max theta + pad], pad = max(gridPadding * spread,
 * 3 sigma) so the Gaussian tails stay on the grid; sigma defaults to spread / steps (spread =
 * max theta - min theta over all runs), as hessian-eigenthings v1. phi integrates to ~1 whenever
 * the grid spacing resolves sigma. A run that breaks down (invariant Krylov space: A has fewer
 * distinct eigenvalues seen from v than steps) ends early with its quadrature exact.
 * Seeded: run r's start vector is drawn after runs 0..r-1 from `new Rng(seed)`.
 */
import { InputError } from "../errors.ts";
import { Rng } from "../random.ts";
import type { Progress } from "./cost.ts";
import { countOption, drawProbe, lanczosRecurrence, positiveOption, seedOption } from "./lanczos.ts";
import type { SymmetricOperator } from "./operator.ts";
import { tridiagonalEigen } from "./tridiagonal.ts";

/** Options of spectralDensity (stochastic Lanczos quadrature). */
export interface SpectralDensityOptions {
  /** Independent start vectors (default 10). */
  runs?: number;
  /** Lanczos steps per run (default 80, capped by dim). */
  steps?: number;
  /** Grid points (default 1000, at least 2). */
  gridPoints?: number;
  /** Gaussian kernel width (default spread / steps). */
  sigma?: number;
  /** Grid margin on each side as a fraction of the spread (default 0.1; >= 0). */
  gridPadding?: number;
  /** Seed of the start vectors (default 0). */
  seed?: number;
  /** Progress callback. */
  onProgress?: Progress;
}

/** A spectral density by stochastic Lanczos quadrature (Lin, Saad, Yang 2016; Ghorbani et al. 2019): per-run Gauss quadrature nodes and weights, and their Gaussian-smoothed density. */
export interface SpectralDensityResult {
  /** Per run, the Ritz values (ascending). */
  nodes: number[][];
  /** Per run, the squared first components of T's eigenvectors (each run sums to 1). */
  weights: number[][];
  /** The uniform grid of eigenvalues t the density is evaluated on. */
  grid: number[];
  /** Smoothed density on the grid, averaged over runs. */
  density: number[];
  /** The Gaussian kernel width used. */
  sigma: number;
  /** Runs done. */
  runs: number;
  /** Steps per run asked for (capped by dim); a run that broke down has fewer nodes. */
  steps: number;
  /** Operator products used. */
  matvecs: number;
  /** Wall-clock time in milliseconds. */
  wallMs: number;
}

/** The spectral density phi(t) of a symmetric operator by stochastic Lanczos quadrature (Lin, Saad, Yang 2016, section 3.2; Ghorbani, Krishnan, Xiao 2019, section 2): see the module comment. */
export async function spectralDensity<V>(op: SymmetricOperator<V>, options: SpectralDensityOptions = {}): Promise<SpectralDensityResult> {
  const where = "spectral density";
  const t0 = performance.now();
  const n = op.dim;
  const runs = countOption(where, "runs", options.runs, 10);
  const steps = Math.min(n, countOption(where, "steps", options.steps, 80));
  const gridPoints = countOption(where, "gridPoints", options.gridPoints, 1000);
  if (gridPoints < 2) throw new InputError(`${where}: gridPoints must be at least 2, got ${gridPoints}`);
  const userSigma = options.sigma === undefined ? undefined : positiveOption(where, "sigma", options.sigma, 1);
  const padding = options.gridPadding ?? 0.1;
  if (typeof padding !== "number" || !(padding >= 0) || !Number.isFinite(padding)) {
    throw new InputError(`${where}: gridPadding must be a finite number >= 0, got ${padding}`);
  }
  const rng = new Rng(seedOption(where, options.seed));
  const matvecs0 = op.matvecs;
  const nodes: number[][] = [];
  const weights: number[][] = [];
  for (let r = 0; r < runs; r++) {
    const start = drawProbe(rng, n, "rademacher");
    const run = await lanczosRecurrence(op, start, {
      maxSteps: steps,
      rng,
      onBreakdown: "stop",
      onStep: (m) => options.onProgress?.((r + m / steps) / runs, `SLQ run ${r + 1}/${runs}, step ${m}/${steps}`),
    });
    for (const q of run.basis) op.space.dispose(q);
    const m = run.alpha.length;
    const e = tridiagonalEigen(run.alpha, run.beta.slice(0, m - 1), { vectors: false });
    nodes.push(Array.from(e.values));
    weights.push(Array.from(e.first, (x) => x * x));
  }

  let lo = Infinity;
  let hi = -Infinity;
  for (const run of nodes) for (const t of run) {
    lo = Math.min(lo, t);
    hi = Math.max(hi, t);
  }
  const spread = hi - lo;
  const sigma = userSigma ?? (spread > 0 ? spread / steps : 1e-3 * Math.max(Math.abs(hi), 1));
  const pad = Math.max(padding * spread, 3 * sigma);
  const a = lo - pad;
  const h = (hi + pad - a) / (gridPoints - 1);
  const grid = Array.from({ length: gridPoints }, (_, i) => a + i * h);
  const density = new Array<number>(gridPoints).fill(0);
  const norm = 1 / (sigma * Math.sqrt(2 * Math.PI) * runs);
  nodes.forEach((run, r) => {
    run.forEach((t, i) => {
      const w = weights[r][i] * norm;
      if (w === 0) return;
      // Only grid points within 8 sigma contribute (exp(-32) ~ 1e-14).
      const from = Math.max(0, Math.floor((t - 8 * sigma - a) / h));
      const to = Math.min(gridPoints - 1, Math.ceil((t + 8 * sigma - a) / h));
      for (let g = from; g <= to; g++) {
        const x = (grid[g] - t) / sigma;
        density[g] += w * Math.exp(-0.5 * x * x);
      }
    });
  });
  return { nodes, weights, grid, density, sigma, runs, steps, matvecs: op.matvecs - matvecs0, wallMs: performance.now() - t0 };
}

/**
 * SLQ estimate of (1/n) tr(A^p): the mean over runs of sum_i w_i theta_i^p (exact per run for
 * p <= 2m - 1 given the start vector; unbiased over Rademacher starts).
 */
export function densityMoments(nodes: number[][], weights: number[][], p: number): number {
  if (!Number.isInteger(p) || p < 0) throw new InputError(`density moments: p must be a non-negative integer, got ${p}`);
  if (nodes.length === 0 || nodes.length !== weights.length) {
    throw new InputError(`density moments: ${nodes.length} node runs and ${weights.length} weight runs`);
  }
  return runMoments(nodes, weights, p).reduce((s, x) => s + x, 0) / nodes.length;
}

/** Per run, sum_i w_i theta_i^p (its spread gives the sampling error of densityMoments). */
export function runMoments(nodes: number[][], weights: number[][], p: number): number[] {
  return nodes.map((run, r) => {
    if (run.length !== weights[r].length) throw new InputError(`density moments: run ${r} has ${run.length} nodes and ${weights[r].length} weights`);
    return run.reduce((s, t, i) => s + weights[r][i] * t ** p, 0);
  });
}
