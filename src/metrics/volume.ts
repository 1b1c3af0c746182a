/**
 * Volume ε-flatness (Dinh et al. 2017, Definition 1, after Hochreiter & Schmidhuber 1997): the
 * volume of C(L, theta, ε), the largest connected set containing theta on which L < L(theta) + ε.
 *
 * Estimator. We measure the star-shaped part of C around theta: S = {theta + r u : |u| = 1,
 * 0 <= r < R(u)} with R(u) the first radius along the ray where L(theta + r u) >= L(theta) + ε
 * (S is connected and contained in C; C may be larger where it curls back around a ray, e.g. along
 * the hyperbolic T_alpha orbits of Theorem 2, so this is a lower bound on Definition 1's volume).
 * In polar coordinates vol(S) = ∫_{S^{n-1}} R(u)^n / n dσ(u) = V_n E_u[R(u)^n] with u uniform on the
 * sphere and V_n = π^{n/2} / Γ(n/2 + 1) the unit-ball volume, so with m rays
 *   log vol ≈ log V_n + log( (1/m) Σ_i R_i^n ) = log V_n + LSE_i(n log R_i) - log m,
 * computed in log space (R_i^n overflows for any real n). The mean of R_i^n is an unbiased
 * estimator of E[R^n], hence of vol(S)/V_n, for every n (its log is consistent, biased low by
 * Jensen's inequality for few rays). For large n it is dominated by the few largest radii: R^n
 * turns a 10% longer ray into e^{0.095 n} times more volume, so its variance is huge and the
 * effective number of rays (1 / Σ p_i², p_i the normalised weights) is often close to 1. It is still
 * valid, only slow to converge; read stderrLog with effectiveRays.
 *
 * R(u) is found by doubling from `initialRadius` (or halving, if that radius is already outside)
 * and then bisection: doubling can step over a thin excursion above L(theta) + ε that lies between
 * two probed radii, in which case R(u) is a later crossing. Rays that reach maxRadius are censored
 * there (R = maxRadius, counted in censoredRays): the log-volume is then a lower bound.
 */
import { InputError } from "../errors.ts";
import type { Objective } from "../objective.ts";
import { Rng } from "../random.ts";
import { checkCount, checkPositive } from "./ascent.ts";
import { type MetricCost, type Progress, withCost } from "./cost.ts";

/** Options of volumeFlatness. */
export interface VolumeFlatnessOptions {
  /** The loss tolerance ε (> 0) of the sublevel set L < L(theta) + ε. */
  epsilon: number;
  /** Monte-Carlo rays (default 64). */
  rays?: number;
  /** Rays are cut here (default 1e3 max(1, ||theta||_2)). */
  maxRadius?: number;
  /** First radius probed on each ray (default 1e-3 max(1, ||theta||_2), capped at maxRadius). */
  initialRadius?: number;
  /** Bisection halvings after the crossing is bracketed (default 30: relative precision 2^-30). */
  bisectionSteps?: number;
  /** Seed of the ray directions (default 0). */
  seed?: number;
  /** Progress callback. */
  onProgress?: Progress;
}

/** Volume ε-flatness (Dinh et al. 2017 Definition 1): a Monte-Carlo estimate of the log-volume of the star-shaped ε-sublevel region around theta. */
export interface VolumeFlatnessResult {
  /** The loss tolerance ε used. */
  epsilon: number;
  /** log vol of the star-shaped ε-sublevel region around theta (natural log). */
  logVolume: number;
  /**
   * Delta-method standard error of logVolume: sd(R^n) / (sqrt(m) mean(R^n)), computed from the
   * normalised weights. Underestimates the error when the weights are heavy-tailed (large n).
   */
  stderrLog: number;
  /** 1 / Σ p_i², p_i = R_i^n / Σ_j R_j^n: how many rays the estimate effectively rests on. */
  effectiveRays: number;
  /** log V_n, the unit-ball volume (logVolume - logUnitBall is log E[R^n]). */
  logUnitBall: number;
  /** R_i per ray, in the order drawn. */
  radii: number[];
  /** Rays that reached maxRadius and were cut there (any makes logVolume a lower bound). */
  censoredRays: number;
  /** L(theta). */
  baseLoss: number;
  /** Passes and wall time of the computation. */
  cost: MetricCost;
}

/**
 * Volume ε-flatness (Dinh et al. 2017, Definition 1), Monte-Carlo over `rays` uniform directions
 * (seeded Gaussians normalised on the host, uploaded): see the module comment for the estimator,
 * its bias and variance. One forward pass per probed radius.
 */
export async function volumeFlatness<V>(objective: Objective<V>, theta: V, options: VolumeFlatnessOptions): Promise<VolumeFlatnessResult> {
  const { epsilon } = options;
  checkPositive("epsilon", epsilon);
  const rays = options.rays ?? 64;
  checkCount("rays", rays);
  const bisectionSteps = options.bisectionSteps ?? 30;
  if (!Number.isInteger(bisectionSteps) || bisectionSteps < 0) throw new InputError(`bisectionSteps must be a non-negative integer, got ${bisectionSteps}`);
  const space = objective.space;
  const n = space.dim;
  const { result, cost } = await withCost(objective, async () => {
    const thetaNorm = Math.sqrt(await space.dot(theta, theta));
    const scale = Math.max(1, thetaNorm);
    const maxRadius = options.maxRadius ?? 1e3 * scale;
    checkPositive("maxRadius", maxRadius);
    const initialRadius = Math.min(options.initialRadius ?? 1e-3 * scale, maxRadius);
    checkPositive("initialRadius", initialRadius);
    const rng = new Rng(options.seed ?? 0);
    const u = space.zeros();
    const point = space.zeros();
    try {
      const baseLoss = await objective.loss(theta);
      const target = baseLoss + epsilon;
      const inside = async (r: number) => {
        space.copy(theta, point);
        space.axpy(r, u, point);
        return (await objective.loss(point)) < target;
      };
      const radii: number[] = [];
      let censoredRays = 0;
      for (let i = 0; i < rays; i++) {
        const dir = rng.normals(n);
        let s = 0;
        for (const t of dir) s += t * t;
        const inv = 1 / Math.sqrt(s);
        for (let j = 0; j < n; j++) dir[j] *= inv;
        space.write(u, dir);
        // Bracket [lo, hi]: lo inside (or 0), hi outside.
        let lo = 0;
        let hi = initialRadius;
        let censored = false;
        if (await inside(hi)) {
          lo = hi;
          for (;;) {
            if (lo >= maxRadius) {
              censored = true;
              break;
            }
            hi = Math.min(2 * lo, maxRadius);
            if (!(await inside(hi))) break;
            lo = hi;
          }
        } else {
          // Halve towards theta until inside (L is continuous and L(theta) < target).
          for (let h = 0; h < 60; h++) {
            const r = hi / 2;
            if (await inside(r)) {
              lo = r;
              break;
            }
            hi = r;
          }
        }
        let radius: number;
        if (censored) {
          radius = maxRadius;
          censoredRays++;
        } else {
          for (let b = 0; b < bisectionSteps; b++) {
            const mid = 0.5 * (lo + hi);
            if (await inside(mid)) lo = mid;
            else hi = mid;
          }
          radius = 0.5 * (lo + hi);
        }
        radii.push(radius);
        options.onProgress?.((i + 1) / rays, `volume flatness: ray ${i + 1}/${rays}, radius ${radius.toPrecision(4)}`);
      }
      return { baseLoss, radii, censoredRays };
    } finally {
      space.dispose(u);
      space.dispose(point);
    }
  });
  const { logMean, stderrLog, effectiveRays } = logMeanPower(result.radii, n);
  const logUnitBall = logUnitBallVolume(n);
  return {
    epsilon,
    logVolume: logUnitBall + logMean,
    stderrLog,
    effectiveRays,
    logUnitBall,
    radii: result.radii,
    censoredRays: result.censoredRays,
    baseLoss: result.baseLoss,
    cost,
  };
}

/** log((1/m) Σ r_i^n) by log-sum-exp, with the delta-method standard error of that log and the effective sample size. */
export function logMeanPower(radii: number[], n: number): { logMean: number; stderrLog: number; effectiveRays: number } {
  const m = radii.length;
  const logs = radii.map((r) => n * Math.log(r));
  const top = Math.max(...logs);
  if (top === -Infinity) return { logMean: -Infinity, stderrLog: NaN, effectiveRays: 0 };
  let sum = 0;
  for (const l of logs) sum += Math.exp(l - top);
  const lse = top + Math.log(sum);
  let sq = 0;
  let dev = 0;
  for (const l of logs) {
    const p = Math.exp(l - lse);
    sq += p * p;
    dev += (m * p - 1) ** 2;
  }
  return {
    logMean: lse - Math.log(m),
    stderrLog: m > 1 ? Math.sqrt(dev / (m * (m - 1))) : NaN,
    effectiveRays: 1 / sq,
  };
}

/** log V_n = (n/2) log π - log Γ(n/2 + 1), the log-volume of the unit ball in R^n. */
export function logUnitBallVolume(n: number): number {
  return (n / 2) * Math.log(Math.PI) - logGamma(n / 2 + 1);
}

const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905,
  -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

/** log Γ(x) for x > 0 (Lanczos approximation, g = 7: about 15 significant digits). */
export function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x);
  const y = x - 1;
  let a = LANCZOS[0];
  const t = y + 7.5;
  for (let i = 1; i < 9; i++) a += LANCZOS[i] / (y + i);
  return 0.5 * Math.log(2 * Math.PI) + (y + 0.5) * Math.log(t) - t + Math.log(a);
}
