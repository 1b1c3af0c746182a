/**
 * The projected-gradient-ascent engine shared by the sharpness metrics (ε-sharpness of Dinh et
 * al. 2017 Definition 2 and Keskar et al. 2017 Metric 2.1, adaptive sharpness of Kwon et al. 2021 /
 * Andriushchenko et al. 2023, SAM's m-sharpness of Foret et al. 2021).
 *
 * Every one of them maximises L(theta + delta) over a set of perturbations written as
 *   delta = M u,   ||u||_p <= rho,   p in {2, inf},
 * with a fixed linear map M: the identity (Dinh), a positive diagonal c (Keskar's box c = |theta| + 1,
 * adaptive c = |theta| + eta) or an orthonormal random basis times a diagonal (Keskar's random
 * subspace). The ascent runs in u, so the gradient is M^T grad L and the projection is the plain
 * Euclidean projection onto the l2 ball (a rescale) or the l-inf ball (a clip) in u. Note that for
 * a diagonal M the l2 set in delta is the ellipsoid ||delta ⊙ c^-1||_2 <= rho, and projecting in u
 * is not the Euclidean projection onto that ellipsoid in delta (Andriushchenko et al. bisect on a
 * Lagrange multiplier for that); it is a valid projected-gradient method in the u coordinates and
 * keeps the whole run invariant when theta and c are rescaled together.
 *
 * Schedule: Auto-PGD (Croce & Hein 2020, Algorithm 1): initial step eta = 2 rho; steepest-ascent
 * direction grad/||grad||_2 (l2) or sign(grad) (l-inf); momentum alpha = 0.75,
 *   z = P(x_k + eta dir(g_k)),   x_{k+1} = P(x_k + alpha (z - x_k) + (1 - alpha)(x_k - x_{k-1}));
 * checkpoints w_j = ceil(p_j N) with p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06);
 * at a checkpoint eta is halved and the iterate restarts from the best point found when fewer than
 * 75% of the steps since the previous checkpoint increased the loss, or when neither eta nor the
 * best loss changed since then.
 *
 * Where vectors live: u lives in `map.uSpace` (the objective's space for diagonal maps, a small
 * host space for the subspace map); delta and theta + delta in the objective's space. The l2 ball
 * runs entirely on the device (only dot products come back). The l-inf ball needs elementwise
 * sign and clip, which the VectorSpace does not offer: its steps read u and its gradient back with
 * toArray, update in float64 on the host and write u back (two reads and one write of dim(u)
 * floats per step; free when u is on the host).
 */
import { InputError } from "../errors.ts";
import type { Objective, VectorSpace } from "../objective.ts";
import { Rng } from "../random.ts";
import { HostVectorSpace } from "../hostVectorSpace.ts";
import type { Progress } from "./cost.ts";

/** The norm of a sharpness ball: Euclidean (l2) or box (linf). */
export type BallNorm = "l2" | "linf";

/** delta = M u: the linear map from the ascent variable u to the parameter perturbation. */
export interface PerturbationMap<V, U> {
  readonly uSpace: VectorSpace<U>;
  /** delta <- M u (delta is in the objective's space). */
  apply(u: U, delta: V): Promise<void>;
  /** out <- M^T g. */
  adjoint(g: V, out: U): Promise<void>;
  /** Frees what the map owns (not the vectors handed to it). */
  dispose(): void;
}

/**
 * M = diag(c) (or the identity when c is null), u in the objective's space. `c` stays owned by
 * the caller.
 */
export function diagonalMap<V>(space: VectorSpace<V>, c: V | null): PerturbationMap<V, V> {
  return {
    uSpace: space,
    apply(u, delta) {
      space.copy(u, delta);
      if (c) space.multiply(c, delta);
      return Promise.resolve();
    },
    adjoint(g, out) {
      space.copy(g, out);
      if (c) space.multiply(c, out);
      return Promise.resolve();
    },
    dispose() {},
  };
}

/**
 * M = A diag(c) with A = [a_1 .. a_p] (p vectors of the objective's space, orthonormal for
 * Keskar's subspace), u in R^p on the host. Costs p axpys per apply and p dot products per adjoint.
 * Owns the columns: dispose() frees them.
 */
export function subspaceMap<V>(space: VectorSpace<V>, columns: V[], c: Float64Array): PerturbationMap<V, Float64Array> {
  const p = columns.length;
  if (c.length !== p) throw new InputError(`subspace map: ${p} columns but ${c.length} scales`);
  return {
    uSpace: new HostVectorSpace(p),
    apply(u, delta) {
      space.linearCombination(c[0] * u[0], columns[0], 0, delta);
      for (let j = 1; j < p; j++) if (u[j] !== 0) space.axpy(c[j] * u[j], columns[j], delta);
      return Promise.resolve();
    },
    async adjoint(g, out) {
      const dots = await concurrentDots(space, columns, g);
      for (let j = 0; j < p; j++) out[j] = c[j] * dots[j];
    },
    dispose() {
      for (const a of columns) space.dispose(a);
    },
  };
}

/**
 * [<a_j, g>]_j, with the dot products issued together and awaited together. On the GPU each dot
 * submits its reduction and its readback copy before its first await, so queue order keeps them
 * apart while the map-and-read round trips overlap; on the host they are synchronous anyway.
 */
async function concurrentDots<V>(space: VectorSpace<V>, columns: V[], g: V): Promise<number[]> {
  return await Promise.all(columns.map((a) => space.dot(a, g)));
}

/**
 * p orthonormal columns spanning a random p-dimensional subspace of R^n: seeded Gaussian columns
 * (drawn on the host, uploaded one by one) orthonormalised on the device by classical Gram-Schmidt
 * applied twice ("CGS2", as stable as modified Gram-Schmidt, with its j dot products per pass
 * issued together). Memory: p vectors of n floats (p n 4 bytes on the GPU: 1000 columns of a
 * 1M-parameter net are 4 GB, so keep p moderate). With orthonormal columns A^+ = A^T.
 */
export async function randomOrthonormalColumns<V>(space: VectorSpace<V>, p: number, seed: number): Promise<V[]> {
  const n = space.dim;
  if (!Number.isInteger(p) || p < 1 || p > n) throw new InputError(`subspace dimension must be an integer in [1, ${n}], got ${p}`);
  const rng = new Rng(seed);
  const columns: V[] = [];
  try {
    for (let j = 0; j < p; j++) {
      const a = space.fromArray(rng.normals(n));
      columns.push(a);
      for (let pass = 0; pass < 2; pass++) {
        if (j === 0) break;
        const dots = await concurrentDots(space, columns.slice(0, j), a);
        for (let i = 0; i < j; i++) space.axpy(-dots[i], columns[i], a);
      }
      const norm = Math.sqrt(await space.dot(a, a));
      if (!(norm > 0)) throw new InputError(`random subspace: column ${j} became linearly dependent`);
      space.scale(1 / norm, a);
    }
  } catch (e) {
    for (const a of columns) space.dispose(a);
    throw e;
  }
  return columns;
}

/** APGD checkpoints w_j = ceil(p_j N) (Croce & Hein 2020, section 3.2), strictly inside (0, N]. */
export function apgdCheckpoints(steps: number): number[] {
  const p = [0, 0.22];
  while (p[p.length - 1] < 1) {
    const j = p.length - 1;
    // The p_j are multiples of 0.01: round them so that 0.57 * 100 does not ceil to 58.
    p.push(Math.round(100 * (p[j] + Math.max(p[j] - p[j - 1] - 0.03, 0.06))) / 100);
  }
  const w = new Set<number>();
  for (const pj of p.slice(1)) {
    const k = Math.ceil(pj * steps - 1e-9);
    if (k > 0 && k <= steps) w.add(k);
  }
  return [...w].sort((a, b) => a - b);
}

export interface AscentOptions {
  norm: BallNorm;
  /** rho: the radius of the ball in u. */
  radius: number;
  /** Ascent steps per restart (each one gradient evaluation, plus one at the start point). */
  steps: number;
  restarts: number;
  seed: number;
  /**
   * First restart: u_0 = startScale * radius * (a random point of the unit ball), so 0 starts
   * exactly at u = 0 (SAM), and a small value breaks the symmetry at a critical point where the
   * gradient vanishes. Later restarts start uniformly at random in the ball.
   */
  startScale: number;
  onProgress?: Progress;
  label?: string;
}

export interface AscentResult {
  /** max L(theta + M u) over every point evaluated, and L(theta) (u = 0 is feasible, so maxLoss >= baseLoss). */
  maxLoss: number;
  baseLoss: number;
  /** Ascent steps run over all restarts. */
  iterations: number;
  /** Index of the restart that found maxLoss (-1 when no perturbation beat u = 0). */
  bestRestart: number;
  /** Per restart, the best loss found. */
  restartLosses: number[];
}

/**
 * Maximises L(theta + M u) over ||u||_p <= radius by Auto-PGD with restarts (see the module
 * comment). Only scalars come back from the device for the l2 ball; the l-inf ball reads u and
 * its gradient back once per step (elementwise sign and clip on the host, in float64).
 */
export async function projectedAscent<V, U>(
  objective: Objective<V>,
  theta: V,
  map: PerturbationMap<V, U>,
  o: AscentOptions,
): Promise<AscentResult> {
  checkPositive("radius", o.radius);
  checkCount("steps", o.steps);
  checkCount("restarts", o.restarts);
  const space = objective.space;
  const us = map.uSpace;
  const d = us.dim;
  const rho = o.radius;
  const alpha = 0.75;
  const checkpoints = new Set(apgdCheckpoints(o.steps));
  const rng = new Rng(o.seed);

  const delta = space.zeros();
  const point = space.zeros();
  const grad = space.zeros();
  const uVectors: U[] = [];
  const uVec = () => {
    const v = us.zeros();
    uVectors.push(v);
    return v;
  };
  let x = uVec(), xPrev = uVec(), g = uVec(), z = uVec(), xBest = uVec(), gBest = uVec(), w = uVec();

  /** f(u) and g <- M^T grad L(theta + M u). */
  const evaluate = async (u: U, gOut: U): Promise<number> => {
    await map.apply(u, delta);
    space.copy(theta, point);
    space.axpy(1, delta, point);
    const loss = await objective.gradient(point, grad);
    await map.adjoint(grad, gOut);
    return loss;
  };
  const norm2 = async (v: U) => Math.sqrt(Math.max(0, await us.dot(v, v)));
  const projectL2 = async (v: U) => {
    const r = await norm2(v);
    if (r > rho) us.scale(rho / r, v);
  };
  /** out <- P(from + eta dir(grad)). */
  const ascentStep = async (from: U, gradient: U, eta: number, out: U) => {
    if (o.norm === "l2") {
      const gn = await norm2(gradient);
      us.copy(from, out);
      if (gn > 0) us.axpy(eta / gn, gradient, out);
      await projectL2(out);
    } else {
      const [xf, gf] = await Promise.all([us.toArray(from), us.toArray(gradient)]);
      for (let i = 0; i < d; i++) xf[i] = clip(xf[i] + eta * Math.sign(gf[i]), rho);
      us.write(out, xf);
    }
  };
  /** out <- P(alpha zz + (2 - 2 alpha) xx - (1 - alpha) xp): APGD's momentum step. */
  const momentumStep = async (zz: U, xx: U, xp: U, out: U) => {
    us.copy(xp, out);
    us.linearCombination(2 - 2 * alpha, xx, -(1 - alpha), out);
    us.axpy(alpha, zz, out);
    if (o.norm === "l2") await projectL2(out);
    else {
      const v = await us.toArray(out);
      for (let i = 0; i < d; i++) v[i] = clip(v[i], rho);
      us.write(out, v);
    }
  };
  const startPoint = (restart: number): Float64Array => {
    const scale = restart === 0 ? o.startScale : 1;
    if (scale === 0) return new Float64Array(d);
    if (o.norm === "linf") return Float64Array.from({ length: d }, () => scale * rho * (2 * rng.uniform() - 1));
    // Uniform in the l2 ball: Gaussian direction, radius rho U^(1/d).
    const v = rng.normals(d);
    let s = 0;
    for (const t of v) s += t * t;
    const r = (scale * rho * Math.pow(rng.uniform(), 1 / d)) / Math.sqrt(s);
    for (let i = 0; i < d; i++) v[i] *= r;
    return v;
  };

  try {
    const baseLoss = await objective.loss(theta);
    let maxLoss = baseLoss;
    let bestRestart = -1;
    let iterations = 0;
    const restartLosses: number[] = [];
    const total = o.restarts * o.steps;
    for (let r = 0; r < o.restarts; r++) {
      us.write(x, startPoint(r));
      let eta = 2 * rho;
      let fx = await evaluate(x, g);
      let fBest = fx;
      us.copy(x, xBest);
      us.copy(g, gBest);
      us.copy(x, xPrev);
      // Checkpoint bookkeeping.
      let successes = 0;
      let lastCheckpoint = 0;
      let etaAtCheckpoint = eta;
      let fBestAtCheckpoint = fBest;
      for (let k = 0; k < o.steps; k++) {
        if (k === 0) {
          await ascentStep(x, g, eta, w);
        } else {
          await ascentStep(x, g, eta, z);
          await momentumStep(z, x, xPrev, w);
        }
        // Rotate: xPrev <- x, x <- w (the old xPrev becomes scratch).
        [xPrev, x, w] = [x, w, xPrev];
        const fNew = await evaluate(x, g);
        iterations++;
        if (fNew > fx) successes++;
        fx = fNew;
        if (fNew > fBest) {
          fBest = fNew;
          us.copy(x, xBest);
          us.copy(g, gBest);
        }
        const done = k + 1;
        if (checkpoints.has(done) && done < o.steps) {
          const stalled = successes < 0.75 * (done - lastCheckpoint);
          const unchanged = etaAtCheckpoint === eta && fBestAtCheckpoint === fBest;
          if (stalled || unchanged) {
            eta /= 2;
            us.copy(xBest, x);
            us.copy(xBest, xPrev);
            us.copy(gBest, g);
            fx = fBest;
          }
          successes = 0;
          lastCheckpoint = done;
          etaAtCheckpoint = eta;
          fBestAtCheckpoint = fBest;
        }
        o.onProgress?.((r * o.steps + done) / total, `${o.label ?? "ascent"}: restart ${r + 1}/${o.restarts}, step ${done}/${o.steps}, max loss ${Math.max(maxLoss, fBest).toPrecision(6)}`);
      }
      restartLosses.push(fBest);
      if (fBest > maxLoss) {
        maxLoss = fBest;
        bestRestart = r;
      }
    }
    return { maxLoss, baseLoss, iterations, bestRestart, restartLosses };
  } finally {
    for (const v of [delta, point, grad]) space.dispose(v);
    for (const v of uVectors) us.dispose(v);
  }
}

function clip(v: number, r: number): number {
  return v > r ? r : v < -r ? -r : v;
}

export function checkPositive(name: string, v: number): void {
  if (!(v > 0) || !Number.isFinite(v)) throw new InputError(`${name} must be positive and finite, got ${v}`);
}

export function checkCount(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw new InputError(`${name} must be a positive integer, got ${v}`);
}

/** |v| + shift elementwise, computed on the host (the VectorSpace has no abs): one read, one upload. */
export async function absPlus<V>(space: VectorSpace<V>, v: V, shift: number): Promise<V> {
  const a = await space.toArray(v);
  for (let i = 0; i < a.length; i++) a[i] = Math.abs(a[i]) + shift;
  return space.fromArray(a);
}
