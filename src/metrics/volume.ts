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
 * Coordinates (option `coordinates`, default "parameter"). The rays are drawn in rescaled
 * coordinates y = A^{-1}(theta' - theta), A = diag(a_i), a_i = theta_i (signed; floored, see
 * below). A is linear, so the region maps exactly: S = theta + A S_y with S_y the star-shaped
 * ε-region of y -> L(theta + A y) around 0 (star-shaped about 0 iff S is about theta, with radius
 * function R_y(u) the first crossing along theta + r A u), and
 *   vol(S) = |det A| vol(S_y) = |det A| V_n E_u[R_y(u)^n],  u uniform on the sphere of y-space,
 * the same quantity as above (same S: the points x whose segment [theta, x] stays below
 * L(theta) + ε, a linear-invariant description), estimated by the same unbiased mean of R_y^n,
 * only along differently distributed rays. Why:
 *  - Equivariance. For a diagonal map theta -> D theta that keeps the function (T_alpha with its
 *    Appendix-B bias scaling, neuron-wise rescaling; src/transforms/), the y-space problem at
 *    D theta is the y-space problem at theta: A' = D A, so L'(D theta + A' y) = L(theta + A y),
 *    and with the same seed every ray, every probed radius and every R_y is the same. The estimate
 *    then moves by exactly log|det D| = log|det A'| - log|det A|, which is what the exact volume
 *    does (S' = D S); the isotropic estimator's random error is not equivariant, and for large n
 *    it can even move the wrong way (on a [2,3,1] net under T_alpha with log|det D| = +9.66 it
 *    moved by -4 to -7 with 16 to 2048 rays). Only diagonal maps: a rotation or any non-diagonal
 *    reparametrization (weight normalization, src/reparam/) is not absorbed by A, and there the
 *    estimate keeps its full Monte-Carlo error. Exact up to the bisection precision, float
 *    rounding of L, and the floor below.
 *  - Variance: NOT reduced. The hope was a rounder y-region for trained nets (weights of very
 *    different scales). Measured (256 rays, 3 seeds, ε = 0.01, Adam-trained): teacher [4,8,1] mse
 *    (n = 49) euclidean log vol -70.6 / -75.8 / -77.2, parameter -94.6 / -92.8 / -97.8; mixture
 *    [2,8,3] ce (n = 51) euclidean -55.3 / -61.9 / -61.5, parameter -92.4 / -75.8 / -86.2; about 1-2
 *    effective rays everywhere, and max/min radius 9-13 in y against 5-8 in theta. Small weights
 *    tend to have low curvature too, so dividing by |theta_i| stretches the region further along
 *    them: the per-entry estimate is at least as noisy and (its log being biased low) typically
 *    lower. "tensor" (a_i = the RMS of theta_i's tensor: one scale per layer weight or bias) is as
 *    noisy as "euclidean" (-73.2 / -76.0 / -70.6 and -65.7 / -62.9 / -60.7 on the same nets; max/min
 *    radius 4-8) and still exactly equivariant under T_alpha (one scalar per tensor), but not under neuron-wise
 *    rescaling. For n in the tens and more no coordinate choice makes R^n well behaved: read
 *    logVolume as a noisy lower-biased estimate, with stderrLog and effectiveRays.
 * Floor: a_i = sign(theta_i) max(|theta_i|, floor · rms_g), where rms_g is the root mean square
 * of the nonzero entries of the tensor holding theta_i (one layer's weight or bias, from the
 * model's parameter layout; the whole vector when the objective's space is not that layout, e.g.
 * a reparametrized one); when that tensor is entirely zero, a bias of layer k takes the product of
 * the RMS of the weights of layers 0..k (which scales under T_alpha exactly as that bias does) and
 * anything else the RMS of all nonzero entries; a = 1 when theta = 0 (then A = I and the estimator is the isotropic one); sign(0) = +1. `floor` defaults to
 * 0.01. A zero weight would otherwise give det A = 0 (the region in y collapses in that axis), and
 * a tiny one a needle-shaped y-region (huge variance). Because rms_g scales with the tensor, the
 * floor keeps the exact equivariance under T_alpha (one scalar per tensor); under neuron-wise
 * rescaling (several scalars within a tensor) it holds exactly unless some |theta_i| is below its
 * floor, and up to the floored entries' log-ratio otherwise.
 * "tensor" uses a_i = rms_g itself (no sign, no floor); "euclidean" draws the rays isotropically in
 * theta (A = I), the plain estimator above.
 *
 * R(u) is found by doubling from `initialRadius` (or halving, if that radius is already outside)
 * and then bisection: doubling can step over a thin excursion above L(theta) + ε that lies between
 * two probed radii, in which case R(u) is a later crossing. Rays that reach maxRadius are censored
 * there (R = maxRadius, counted in censoredRays): the log-volume is then a lower bound.
 * `initialRadius`, `maxRadius` and the per-ray `scaledRadii` are in the estimator's coordinates
 * (y-units for "parameter" and "tensor": r = 1 along u moves theta_i by a_i u_i; theta-units for
 * "euclidean"), so that they too are the same at D theta; their defaults are 1e-3 and 1e3 times
 * max(1, ||A^{-1} theta||_2) (= max(1, ||theta||) for "euclidean"; about sqrt(n) for "parameter"
 * and "tensor", where ||y|| = sqrt(n) moves every weight by about its own size). `radii` stays in theta-units:
 * the Euclidean distance from theta to the crossing along each ray, R_y |A u|.
 */
import { InputError } from "../errors.ts";
import { parameterLayout } from "../model.ts";
import type { Objective } from "../objective.ts";
import { Rng } from "../random.ts";
import { checkCount, checkPositive } from "./ascent.ts";
import { type MetricCost, type Progress, withCost } from "./cost.ts";

/** Where volumeFlatness draws its rays: in y = A^{-1}(theta' - theta) with A = diag(theta) floored ("parameter") or A = each tensor's RMS ("tensor"), or isotropically in theta ("euclidean"). */
export type VolumeCoordinates = "parameter" | "tensor" | "euclidean";

/** Options of volumeFlatness. */
export interface VolumeFlatnessOptions {
  /** The loss tolerance ε (> 0) of the sublevel set L < L(theta) + ε. */
  epsilon: number;
  /** Monte-Carlo rays (default 64). */
  rays?: number;
  /**
   * Coordinates of the rays (default "parameter": rescaled by the weights, exactly equivariant under
   * diagonal reparametrizations such as T_alpha; "euclidean": isotropic in theta). See the module comment.
   */
  coordinates?: VolumeCoordinates;
  /** "parameter" only: the floor of |a_i| as a fraction of its tensor's RMS (default 0.01, > 0). */
  floor?: number;
  /** Rays are cut here, in the estimator's coordinates (default 1e3 max(1, ||A^{-1} theta||_2)). */
  maxRadius?: number;
  /** First radius probed on each ray, in the estimator's coordinates (default 1e-3 max(1, ||A^{-1} theta||_2), capped at maxRadius). */
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
  /** The coordinates the rays were drawn in. */
  coordinates: VolumeCoordinates;
  /** log vol of the star-shaped ε-sublevel region around theta, in theta-space (natural log). */
  logVolume: number;
  /**
   * Delta-method standard error of logVolume: sd(R^n) / (sqrt(m) mean(R^n)), computed from the
   * normalised weights. Underestimates the error when the weights are heavy-tailed (large n).
   */
  stderrLog: number;
  /** 1 / Σ p_i², p_i = R_i^n / Σ_j R_j^n (R_i in the estimator's coordinates): how many rays the estimate effectively rests on. */
  effectiveRays: number;
  /** log V_n, the unit-ball volume. */
  logUnitBall: number;
  /** log |det A| (0 for "euclidean"): logVolume = logScale + logUnitBall + log((1/m) Σ scaledRadii_i^n). */
  logScale: number;
  /** R_i per ray in the estimator's coordinates (y-units unless "euclidean"), in the order drawn. */
  scaledRadii: number[];
  /** Per ray, the Euclidean distance in theta from theta to the crossing (R_i |A u_i|; equal to scaledRadii for "euclidean"). */
  radii: number[];
  /** Rays that reached maxRadius and were cut there (any makes logVolume a lower bound). */
  censoredRays: number;
  /** L(theta). */
  baseLoss: number;
  /** Passes and wall time of the computation. */
  cost: MetricCost;
}

/**
 * The diagonal a of A (see the module comment): signed theta_i floored at `floor` times the RMS of
 * the nonzero entries of its tensor ("parameter"), that RMS itself ("tensor"), all ones ("euclidean").
 */
export function volumeScales(
  theta: ArrayLike<number>,
  groups: { offset: number; size: number; layer?: number; role?: "weight" | "bias" }[],
  coordinates: VolumeCoordinates,
  floor = 0.01,
): Float64Array {
  const n = theta.length;
  const a = new Float64Array(n).fill(1);
  if (coordinates === "euclidean") return a;
  const rms = (from: number, to: number) => {
    let s = 0;
    let k = 0;
    for (let i = from; i < to; i++) {
      if (theta[i] !== 0) {
        s += theta[i] * theta[i];
        k++;
      }
    }
    return k > 0 ? Math.sqrt(s / k) : 0;
  };
  const global = rms(0, n);
  if (global === 0) return a;
  // An all-zero bias of layer k takes the product of the RMS of the weights of layers 0..k: under
  // T_alpha both scale by prod_{j<=k} alpha_j (Appendix B), so the equivariance stays exact.
  const weightRms = new Map<number, number>();
  for (const g of groups) if (g.role === "weight" && g.layer !== undefined) weightRms.set(g.layer, rms(g.offset, g.offset + g.size));
  const zeroBiasScale = (layer: number) => {
    let p = 1;
    for (let j = 0; j <= layer; j++) p *= weightRms.get(j) ?? 0;
    return p;
  };
  for (const g of groups) {
    const own = rms(g.offset, g.offset + g.size);
    const r = own || (g.role === "bias" && g.layer !== undefined ? zeroBiasScale(g.layer) : 0) || global;
    for (let i = g.offset; i < g.offset + g.size; i++) {
      const t = theta[i];
      a[i] = coordinates === "tensor" ? r : (t < 0 ? -1 : 1) * Math.max(Math.abs(t), floor * r);
    }
  }
  return a;
}

/**
 * Volume ε-flatness (Dinh et al. 2017, Definition 1), Monte-Carlo over `rays` uniform directions
 * of the estimator's coordinates (seeded Gaussians normalised on the host, scaled by A, uploaded):
 * see the module comment for the estimator, its coordinates, bias and variance. One forward pass
 * per probed radius.
 */
export async function volumeFlatness<V>(objective: Objective<V>, theta: V, options: VolumeFlatnessOptions): Promise<VolumeFlatnessResult> {
  const { epsilon } = options;
  checkPositive("epsilon", epsilon);
  const rays = options.rays ?? 64;
  checkCount("rays", rays);
  const bisectionSteps = options.bisectionSteps ?? 30;
  if (!Number.isInteger(bisectionSteps) || bisectionSteps < 0) throw new InputError(`bisectionSteps must be a non-negative integer, got ${bisectionSteps}`);
  const coordinates = options.coordinates ?? "parameter";
  if (coordinates !== "parameter" && coordinates !== "tensor" && coordinates !== "euclidean") {
    throw new InputError(`coordinates must be parameter, tensor or euclidean, got '${coordinates}'`);
  }
  const floor = options.floor ?? 0.01;
  checkPositive("floor", floor);
  const space = objective.space;
  const n = space.dim;
  const { result, cost } = await withCost(objective, async () => {
    const host = coordinates !== "euclidean" ? await space.toArray(theta) : null;
    let groups: Parameters<typeof volumeScales>[1] = [{ offset: 0, size: n }];
    if (host) {
      try {
        const layout = parameterLayout(objective.spec);
        if (layout.dim === n) groups = layout.views.map((v) => ({ offset: v.offset, size: v.size, layer: v.layer, role: v.role }));
      } catch {
        // no layout for this spec: one group
      }
    }
    const a = host ? volumeScales(host, groups, coordinates, floor) : new Float64Array(n).fill(1);
    let logScale = 0;
    for (const x of a) logScale += Math.log(Math.abs(x));
    let yNorm2 = 0;
    if (host) for (let i = 0; i < n; i++) yNorm2 += (host[i] / a[i]) ** 2;
    else yNorm2 = await space.dot(theta, theta);
    const scale = Math.max(1, Math.sqrt(yNorm2));
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
      const scaledRadii: number[] = [];
      const radii: number[] = [];
      let censoredRays = 0;
      for (let i = 0; i < rays; i++) {
        const dir = rng.normals(n);
        let s = 0;
        for (const t of dir) s += t * t;
        const inv = 1 / Math.sqrt(s);
        let stretch = 0; // |A u|
        for (let j = 0; j < n; j++) {
          dir[j] *= inv * a[j];
          stretch += dir[j] * dir[j];
        }
        stretch = Math.sqrt(stretch);
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
        scaledRadii.push(radius);
        radii.push(radius * stretch);
        options.onProgress?.((i + 1) / rays, `volume flatness: ray ${i + 1}/${rays}, radius ${radius.toPrecision(4)}`);
      }
      return { baseLoss, scaledRadii, radii, censoredRays, logScale };
    } finally {
      space.dispose(u);
      space.dispose(point);
    }
  });
  const { logMean, stderrLog, effectiveRays } = logMeanPower(result.scaledRadii, n);
  const logUnitBall = logUnitBallVolume(n);
  return {
    epsilon,
    coordinates,
    logVolume: result.logScale + logUnitBall + logMean,
    stderrLog,
    effectiveRays,
    logUnitBall,
    logScale: result.logScale,
    scaledRadii: result.scaledRadii,
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
