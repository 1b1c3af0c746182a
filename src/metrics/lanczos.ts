/**
 * The Lanczos three-term recurrence with full reorthogonalization, shared by the eigensolver
 * (./spectrum.ts) and stochastic Lanczos quadrature (./density.ts), plus the option checks and
 * random probes of every curvature algorithm in this folder.
 *
 * Recurrence (Golub & Van Loan, Matrix Computations, 4th ed., Algorithm 10.1.1, with complete
 * reorthogonalization as in section 10.3.1): q_0 = v / ||v||, and for j = 0, 1, ...
 *   w = A q_j - alpha_j q_j - beta_{j-1} q_{j-1},   alpha_j = q_j^T A q_j,
 *   w <- w - Q (Q^T w) twice (classical Gram-Schmidt against every stored q_i: "twice is enough",
 *        Giraud, Langou, Rozloznik 2005), alpha_j += the q_j coefficients removed,
 *   beta_j = ||w||,   q_{j+1} = w / beta_j,
 * so that A Q_m = Q_m T_m + beta_{m-1} q_m e_m^T with T_m = tridiag(beta, alpha, beta).
 * Vectors stay in op.space (the GPU for the GPU engine); only dot products come back.
 *
 * Breakdown (beta_j <= 1e-10 * ||T||, estimated by the largest Gershgorin row of T): span(Q) is
 * invariant. "restart" continues with a random vector orthogonalized (twice) against Q and a zero
 * coupling in T (T becomes block diagonal; the new block finds further copies of repeated
 * eigenvalues); "stop" ends the run (SLQ: the quadrature is then exact). The run also ends when
 * Q spans the whole space.
 */
import { InputError } from "../errors.ts";
import type { VectorSpace } from "../objective.ts";
import type { Rng } from "../random.ts";
import type { SymmetricOperator } from "./operator.ts";

/** Relative size of beta_j below which the Krylov space counts as invariant. */
export const BREAKDOWN_TOLERANCE = 1e-10;

/**
 * Relative size below which a vector left after Gram-Schmidt is rounding noise, not a new
 * direction: 1e-10 in float64, 1e3 eps of the space's storage where that is larger (1.2e-4 for f32,
 * where an exhausted Krylov space or a dependent sketch column leaves ~1e-7..1e-5, not 0).
 */
export function dependenceTolerance(space: VectorSpace<unknown>): number {
  return Math.max(BREAKDOWN_TOLERANCE, 1e3 * (space.epsilon ?? 0));
}

export interface LanczosTridiagonal {
  /** Diagonal of T, one entry per step. */
  alpha: number[];
  /**
   * beta[j] couples q_j and q_{j+1} (0 at a restart); beta.length = alpha.length, the last entry
   * is the norm of the residual beta_m of A Q_m - Q_m T_m (Ritz residuals |beta_m s_{m,i}|).
   */
  beta: number[];
  /** Step where the current block of T starts (0 unless the run restarted after a breakdown). */
  blockStart: number;
  /** Whether the last step broke down (its beta is ~0: the current block is invariant). */
  breakdown: boolean;
}

export interface LanczosRecurrenceOptions {
  maxSteps: number;
  /** Draws restart vectors after a breakdown. */
  rng: Rng;
  onBreakdown: "restart" | "stop";
  /**
   * Called after every step but the last (in "restart" mode also at a breakdown, before the
   * restart); returning true ends the run there.
   */
  shouldStop?: (t: LanczosTridiagonal) => boolean;
  onStep?: (steps: number) => void;
}

export interface LanczosRecurrenceResult<V> extends LanczosTridiagonal {
  /** The orthonormal Lanczos vectors q_0 .. q_{m-1}, in op.space: the caller disposes them. */
  basis: V[];
  /** Breakdowns met (restarts done, or 1 when a "stop" run ended at one). */
  breakdowns: number;
}

/** Two passes of classical Gram-Schmidt of w against `basis`; returns the summed coefficients. */
export async function orthogonalizeTwice<V>(space: VectorSpace<V>, basis: V[], w: V): Promise<number[]> {
  const total = new Array<number>(basis.length).fill(0);
  for (let pass = 0; pass < 2; pass++) {
    const c = await space.dots(basis, w);
    c.forEach((ci, i) => {
      space.axpy(-ci, basis[i], w);
      total[i] += ci;
    });
  }
  return total;
}

/** Runs the recurrence from `start` (a host vector, normalized here). */
export async function lanczosRecurrence<V>(
  op: SymmetricOperator<V>,
  start: ArrayLike<number>,
  o: LanczosRecurrenceOptions,
): Promise<LanczosRecurrenceResult<V>> {
  const s = op.space;
  const basis: V[] = [];
  const alpha: number[] = [];
  const beta: number[] = [];
  let blockStart = 0;
  let breakdowns = 0;
  let w: V | null = null;
  try {
    const q0 = s.fromArray(start);
    basis.push(q0);
    const n0 = Math.sqrt(await s.dot(q0, q0));
    if (!(n0 > 0) || !Number.isFinite(n0)) throw new InputError(`Lanczos start vector has norm ${n0}`);
    s.scale(1 / n0, q0);
    w = s.zeros();
    let tNorm = 0;
    for (let j = 0; j < o.maxSteps; j++) {
      const q = basis[j];
      await op.apply(q, w);
      let a = await s.dot(q, w);
      s.axpy(-a, q, w);
      if (j > blockStart) s.axpy(-beta[j - 1], basis[j - 1], w);
      a += (await orthogonalizeTwice(s, basis, w))[j];
      const b = Math.sqrt(await s.dot(w, w));
      if (!Number.isFinite(a) || !Number.isFinite(b)) throw new InputError(`Lanczos step ${j + 1}: the operator returned non-finite values`);
      alpha.push(a);
      beta.push(b);
      tNorm = Math.max(tNorm, Math.abs(a) + b + (j > blockStart ? beta[j - 1] : 0));
      o.onStep?.(j + 1);
      if (basis.length >= op.dim || j + 1 >= o.maxSteps) break;
      const breakdown = b <= dependenceTolerance(s) * tNorm;
      if (breakdown) {
        breakdowns++;
        if (o.onBreakdown === "stop" || o.shouldStop?.({ alpha, beta, blockStart, breakdown })) break;
        const r = s.fromArray(o.rng.normals(op.dim));
        basis.push(r);
        const before = Math.sqrt(await s.dot(r, r));
        await orthogonalizeTwice(s, basis.slice(0, -1), r);
        const after = Math.sqrt(await s.dot(r, r));
        if (!(after > 1e-8 * before)) {
          // Numerically the whole space is spanned already.
          basis.pop();
          s.dispose(r);
          break;
        }
        s.scale(1 / after, r);
        beta[j] = 0;
        blockStart = j + 1;
        continue;
      }
      if (o.shouldStop?.({ alpha, beta, blockStart, breakdown })) break;
      s.scale(1 / b, w);
      basis.push(w);
      w = s.zeros();
    }
    return { alpha, beta, blockStart, breakdown: breakdowns > 0 && beta[beta.length - 1] === 0, basis, breakdowns };
  } catch (e) {
    for (const v of basis) s.dispose(v);
    throw e;
  } finally {
    if (w !== null) s.dispose(w);
  }
}

// ---------------------------------------------------------------------------------------------
// Option checks and probes shared by spectrum.ts, trace.ts and density.ts.

/** Distribution of random probe vectors: Rademacher (+-1 entries) or standard Gaussian. */
export type ProbeDistribution = "rademacher" | "gaussian";

/** A positive integer option, or its default when undefined. */
export function countOption(where: string, name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
    throw new InputError(`${where}: ${name} must be a positive integer, got ${value}`);
  }
  return value;
}

/** A positive finite number option, or its default when undefined. */
export function positiveOption(where: string, name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !(value > 0) || !Number.isFinite(value)) {
    throw new InputError(`${where}: ${name} must be a positive finite number, got ${value}`);
  }
  return value;
}

export function seedOption(where: string, value: number | undefined): number {
  if (value === undefined) return 0;
  if (typeof value !== "number" || !Number.isInteger(value)) throw new InputError(`${where}: seed must be an integer, got ${value}`);
  return value;
}

export function choiceOption<T extends string>(where: string, name: string, value: T | undefined, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (!allowed.includes(value)) throw new InputError(`${where}: ${name} must be one of ${allowed.map((a) => `"${a}"`).join(", ")}, got ${JSON.stringify(value)}`);
  return value;
}

export function distributionOption(where: string, value: ProbeDistribution | undefined): ProbeDistribution {
  return choiceOption(where, "distribution", value, ["rademacher", "gaussian"] as const, "rademacher");
}

/** A host probe with E[z z^T] = I: Rademacher signs or standard normals, drawn from `rng` in order. */
export function drawProbe(rng: Rng, n: number, distribution: ProbeDistribution): Float64Array {
  if (distribution === "gaussian") return rng.normals(n);
  const z = new Float64Array(n);
  for (let i = 0; i < n; i++) z[i] = rng.sign();
  return z;
}

/** Sample mean and standard error (sample std / sqrt(count); NaN for one sample). */
export function meanAndStderr(values: ArrayLike<number>): { mean: number; stderr: number } {
  const n = values.length;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += values[i];
  mean /= n;
  if (n < 2) return { mean, stderr: NaN };
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (values[i] - mean) ** 2;
  return { mean, stderr: Math.sqrt(ss / (n - 1) / n) };
}
