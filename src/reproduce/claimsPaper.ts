/**
 * Claims 18-21 of `flatness reproduce`: statements of Dinh et al. 2017 that the earlier claims plot
 * or touch but do not assert, each with negative controls that must make it fail.
 *  18. Theorem 4's proof: ||H(T_alpha theta)||_F >= alpha^-2 d and grows like alpha^-2; the
 *      spectral norm follows the same 1/alpha^2 law (log-log slopes fitted, -2 required).
 *  19. Section 5.1, weight normalization w = s v/||v||: under v -> alpha v (same function) the
 *      epsilon-sublevel set in eta has infinite volume, the epsilon-sharpness in v (full space and a
 *      random subspace) falls as alpha grows, and the full-space one reaches the constant-function
 *      level as alpha shrinks.
 *  20. Figure 5: the power family eta = (|theta - c|^2 + b)^a (theta - c) reverses the flatness
 *      ranking of two minima of the same function.
 *  21. Section 5.2: a bijective input map (gaussianization) changes the Lipschitz constant and the
 *      input-gradient norms of the prediction function; its predictions do not change.
 */
import type { Dataset } from "../data.ts";
import { InputError } from "../errors.ts";
import { initParameters } from "../init.ts";
import { hessianOperator } from "../metrics/operator.ts";
import { hostForward } from "../metrics/normBased.ts";
import { inputGradientNorms } from "../metrics/sensitivity.ts";
import { epsilonSharpness } from "../metrics/sharpness.ts";
import { lanczosEigenpairs } from "../metrics/spectrum.ts";
import { squaredFrobeniusNorm } from "../metrics/trace.ts";
import { symmetricEigen } from "../metrics/tridiagonal.ts";
import { logUnitBallVolume, volumeFlatness } from "../metrics/volume.ts";
import { type ModelSpec, layerUnits, mlpSpec, outputWidth, parameterLayout, weightShape } from "../model.ts";
import { type Objective, withVectors } from "../objective.ts";
import { Rng } from "../random.ts";
import { ReferenceObjective } from "../reference/engine.ts";
import { applyInputMap, fitAsinhInputMap, invertInputMap, transformedInputGradientNorms, transformedOutputs } from "../reparam/input.ts";
import { inputJacobians } from "../reparam/inputJacobian.ts";
import { ReparametrizedObjective } from "../reparam/objective.ts";
import { powerFamily } from "../reparam/powerFamily.ts";
import { type Reparametrization, checkArguments, checkVector } from "../reparam/reparametrization.ts";
import { WeightNormalization } from "../reparam/weightNorm.ts";
import { alphaScaleDiagonal, homogeneousAlphaScale } from "../transforms/alphaScale.ts";
import { cached, type Claim, type NegativeControl, type ReproduceContext, fmt, outputTolerance, relativeDifference, teacherProblem, teacherSpec, withObjective } from "./context.ts";

/** ctx.control when it is one of `controls` (undefined on the real run); an unknown id throws. */
function activeControl(ctx: ReproduceContext, claim: number, controls: NegativeControl[]): string | undefined {
  if (ctx.control === undefined) return undefined;
  if (!controls.some((c) => c.id === ctx.control)) {
    throw new InputError(`claim ${claim} has no negative control '${ctx.control}' (it has ${controls.map((c) => c.id).join(", ")})`);
  }
  return ctx.control;
}

/** Least-squares slope of log y against log x. */
export function logLogSlope(x: number[], y: number[]): number {
  const lx = x.map(Math.log), ly = y.map(Math.log);
  const mx = lx.reduce((a, b) => a + b, 0) / lx.length, my = ly.reduce((a, b) => a + b, 0) / ly.length;
  let num = 0, den = 0;
  for (let i = 0; i < lx.length; i++) {
    num += (lx[i] - mx) * (ly[i] - my);
    den += (lx[i] - mx) ** 2;
  }
  return num / den;
}

/** Relative output tolerance of an identity that holds exactly in real arithmetic (f32 or float64 rounding). */
/** lambda_max of a Hessian operator (Lanczos, tol 1e-7). */
async function topEigenvalue<V>(f: Objective<V>, theta: V, seed: number): Promise<number> {
  return (await lanczosEigenpairs(hessianOperator(f, theta), { k: 1, seed, tol: 1e-7 })).eigenvalues[0];
}

/** The identity theta = eta (the plain parametrization, as a Reparametrization). */
class Identity implements Reparametrization {
  readonly name = "identity";
  readonly dimEta: number;
  readonly dimTheta: number;
  constructor(dim: number) {
    this.dimEta = this.dimTheta = dim;
  }
  phi(eta: Float64Array): Float64Array {
    return Float64Array.from(eta);
  }
  jvp(_eta: Float64Array, v: Float64Array): Float64Array {
    return Float64Array.from(v);
  }
  vjp(_eta: Float64Array, u: Float64Array): Float64Array {
    return Float64Array.from(u);
  }
  curvature(eta: Float64Array): Float64Array {
    return new Float64Array(eta.length);
  }
}

/**
 * Runs `work` on the engine's objective seen through host float64 vectors (L ∘ id): the engine
 * computes every loss, gradient and Hessian-vector product, and the metrics' vector algebra (Lanczos'
 * reorthogonalization, probe norms) runs on the host instead of one device readback per dot product.
 */
async function onHost<T>(inner: Objective<unknown>, work: (f: ReparametrizedObjective<unknown>) => Promise<T>): Promise<T> {
  const f = new ReparametrizedObjective(inner, new Identity(inner.space.dim));
  try {
    return await work(f);
  } finally {
    f.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// Claim 18

const theorem4Controls: NegativeControl[] = [
  { id: "bias-unscaled", breaks: "T_alpha scales the weights but leaves the first layer's bias unscaled (Appendix B ignored): the function changes" },
  { id: "frozen-hessian", breaks: "the Hessian is taken at theta for every alpha instead of at T_alpha(theta): the curvature does not follow the point" },
];

interface Theorem4Row {
  alpha: number;
  frobenius: number;
  frobeniusStderr: number;
  bound: number;
  topEigenvalue: number;
  relativeOutputDifference: number;
}

/** alpha <= this enters the slope fits: there the alpha^-2 block dominates (corrections O(alpha^4)). */
const FIT_FROM = 0.1;
/** How far a fitted log-log slope may be from the paper's -2. */
const SLOPE_TOLERANCE = 0.02;

/**
 * The measurements claims 18 and 22 share (cached per control): along T_alpha with alphas
 * (alpha, 1/alpha) of the shallow teacher, the Frobenius norm (Hutchinson), the top eigenvalue
 * (Lanczos) and the outputs, and d, the largest diagonal entry of the theta_1 block of H(theta).
 */
function theorem4Measurements(ctx: ReproduceContext, claim: number): Promise<{ dMax: number; rows: Theorem4Row[]; samples: number; K: number }> {
  const control = activeControl(ctx, claim, theorem4Controls);
  return cached(ctx, `theorem 4 norms ${control ?? "real"}`, async () => {
    const p = await teacherProblem(teacherSpec("shallow"), 96, ctx.seed + 181);
    const K = p.spec.layers.length;
    const layout = parameterLayout(p.spec);
    const first = layout.layers[0];
    // theta_1 of the paper: the first layer's weights and bias (T_alpha scales both by alpha_1).
    const firstEnd = first.biasOffset >= 0 ? first.biasOffset + layerUnits(p.spec.layers[0]) : layout.layers[1].weightOffset;
    const scales = [1, 0.1, 0.03, 0.01];
    const samples = ctx.quick ? 16 : 32;
    const transform = (a: number) => {
      const d = alphaScaleDiagonal(p.spec, [a, 1 / a]);
      if (control === "bias-unscaled") d.fill(1, first.biasOffset, first.biasOffset + layerUnits(p.spec.layers[0]));
      return p.theta.map((t, i) => t * d[i]);
    };
    const r = await withObjective(ctx, p.spec, p.data, "mse", [], (inner) => onHost(inner, async (f) => {
      // d: the largest diagonal entry of the theta_1 block of H(theta), exactly (e_i^T H e_i).
      const idx = Array.from({ length: firstEnd - first.weightOffset }, (_, j) => first.weightOffset + j);
      const es = idx.map((i) => {
        const e = new Float64Array(p.theta.length);
        e[i] = 1;
        return e;
      });
      const outs = idx.map(() => new Float64Array(p.theta.length));
      await f.hvpBlock(p.theta, es, outs);
      const dMax = Math.max(...idx.map((i, j) => outs[j][i]));
      const base = await f.outputs(p.theta);
      const rows: Theorem4Row[] = [];
      for (const a of scales) {
        ctx.progress(`alpha ${a}`);
        const moved = transform(a);
        const at = control === "frozen-hessian" ? p.theta : moved;
        const frob = await squaredFrobeniusNorm(hessianOperator(f, at), { samples, seed: ctx.seed + 182 });
        const frobenius = Math.sqrt(frob.estimate);
        rows.push({
          alpha: a,
          frobenius,
          frobeniusStderr: frob.stderr / (2 * frobenius),
          bound: dMax / (a * a),
          topEigenvalue: await topEigenvalue(f, at, ctx.seed + 183),
          relativeOutputDifference: relativeDifference(await f.outputs(moved), base),
        });
      }
      return { dMax, rows };
    }));
    return { ...r, samples, K };
  });
}

function theorem4Plot(rows: Theorem4Row[], id: string, caption: string, withFrobenius: boolean) {
  return {
    id,
    title: withFrobenius ? "Theorem 4: Frobenius norm of H(T_alpha theta) and the proof's bound (same function)" : "Theorem 4: spectral norm of H(T_alpha theta) (same function)",
    xLabel: "alpha (first layer; the second by 1/alpha)",
    yLabel: "norm of the Hessian",
    xLog: true,
    yLog: true,
    series: withFrobenius
      ? [
        { name: "||H||_F (Hutchinson)", x: rows.map((x) => x.alpha), y: rows.map((x) => x.frobenius) },
        { name: "d / alpha^2 (the proof's bound)", x: rows.map((x) => x.alpha), y: rows.map((x) => x.bound) },
      ]
      : [
        { name: "lambda_max (Lanczos)", x: rows.map((x) => x.alpha), y: rows.map((x) => x.topEigenvalue) },
        { name: "lambda_max(1) / alpha^2", x: rows.map((x) => x.alpha), y: rows.map((x) => rows[1].topEigenvalue * (rows[1].alpha / x.alpha) ** 2) },
      ],
    caption,
  };
}

export const theorem4Frobenius: Claim = {
  id: 18,
  claim: "Theorem 4's proof: ||H(T_alpha theta)||_F >= d / alpha^2 at every alpha and grows like alpha^-2, the function unchanged",
  controls: theorem4Controls,
  async run(ctx) {
    const r = await theorem4Measurements(ctx, 18);
    const fit = r.rows.filter((x) => x.alpha <= FIT_FROM);
    const slopeF = logLogSlope(fit.map((x) => x.alpha), fit.map((x) => x.frobenius));
    const boundOk = r.dMax > 0 && r.rows.every((x) => x.frobenius + 3 * x.frobeniusStderr >= x.bound);
    const outputs = Math.max(...r.rows.map((x) => x.relativeOutputDifference));
    const tol = outputTolerance(ctx);
    const last = r.rows.at(-1)!;
    return {
      measured: `log-log slope of ||H||_F vs alpha (alpha <= ${FIT_FROM}): ${fmt(slopeF, 5)}; ` +
        `||H||_F ${fmt(r.rows[0].frobenius, 4)} -> ${fmt(last.frobenius, 4)} (alpha ${last.alpha}) vs d/alpha^2 ${fmt(r.rows[0].bound, 4)} -> ${fmt(last.bound, 4)}; outputs ${fmt(outputs)}`,
      expected: `slope -2 within ${SLOPE_TOLERANCE}; ||H||_F (Hutchinson, ${r.samples} probes, within 3 standard errors) >= d/alpha^2 at every alpha; outputs equal to ${tol} relative`,
      pass: Math.abs(slopeF + 2) <= SLOPE_TOLERANCE && boundOk && outputs <= tol,
      details: { d: r.dMax, slopeFrobenius: slopeF, fitAlphaAtMost: FIT_FROM, samples: r.samples, rows: r.rows, alphasPerLayer: `[alpha, 1/alpha] over ${r.K} layers` },
      plots: [theorem4Plot(r.rows, "frobenius-alpha", `Slope fitted on alpha <= ${FIT_FROM}: ${fmt(slopeF, 4)}; the paper's law is -2, and the proof's bound d/alpha^2 lies below.`, true)],
    };
  },
};

export const theorem4Spectral: Claim = {
  id: 22,
  claim: "Theorem 4's spectral law, asserted: lambda_max(H(T_alpha theta)) grows like alpha^-2 as alpha -> 0, the function unchanged",
  controls: theorem4Controls,
  async run(ctx) {
    const r = await theorem4Measurements(ctx, 22);
    const fit = r.rows.filter((x) => x.alpha <= FIT_FROM);
    const slopeL = logLogSlope(fit.map((x) => x.alpha), fit.map((x) => x.topEigenvalue));
    const outputs = Math.max(...r.rows.map((x) => x.relativeOutputDifference));
    const tol = outputTolerance(ctx);
    const last = r.rows.at(-1)!;
    return {
      measured: `log-log slope of lambda_max vs alpha (alpha <= ${FIT_FROM}): ${fmt(slopeL, 5)}; lambda_max ${fmt(r.rows[0].topEigenvalue, 4)} (alpha 1) -> ${fmt(last.topEigenvalue, 4)} (alpha ${last.alpha}); outputs ${fmt(outputs)}`,
      expected: `slope -2 within ${SLOPE_TOLERANCE} (Lanczos at each alpha); outputs equal to ${tol} relative`,
      pass: Math.abs(slopeL + 2) <= SLOPE_TOLERANCE && outputs <= tol,
      details: { slopeTopEigenvalue: slopeL, fitAlphaAtMost: FIT_FROM, rows: r.rows.map(({ alpha, topEigenvalue, relativeOutputDifference }) => ({ alpha, topEigenvalue, relativeOutputDifference })) },
      plots: [theorem4Plot(r.rows, "spectral-alpha", `Slope fitted on alpha <= ${FIT_FROM}: ${fmt(slopeL, 4)}; the paper's law is -2.`, false)],
    };
  },
};

// ---------------------------------------------------------------------------------------------
// Claim 19

/**
 * Perturbations of some coordinates of a parametrization around a base point x0, the others held:
 * Phi(z) = outer(x0 + E B z), E placing the chosen coordinates (`indices`) and B orthonormal
 * columns over them (null: the identity, every chosen coordinate; p random columns: a random
 * subspace). The epsilon-sharpness of L ∘ Phi at z = 0 with the l2 ball is Definition 2 restricted
 * to those coordinates: with `outer` weight normalization and `indices` the directions v, the
 * paper's epsilon-sharpness "with respect to v" (section 5.1).
 */
class CoordinatePerturbation implements Reparametrization {
  readonly name: string;
  readonly dimEta: number;
  readonly dimTheta: number;

  constructor(private readonly outer: Reparametrization, private readonly x0: Float64Array, private readonly indices: number[], private readonly basis: Float64Array[] | null) {
    this.name = `${outer.name}, ${basis ? `random ${basis.length}-dimensional subspace` : "chosen coordinates"}`;
    checkVector(this.name, "base point", x0, outer.dimEta);
    this.dimEta = basis ? basis.length : indices.length;
    this.dimTheta = outer.dimTheta;
  }

  /** E B z (a vector of outer's coordinates). */
  private lift(z: Float64Array): Float64Array {
    const out = new Float64Array(this.outer.dimEta);
    if (this.basis) {
      this.basis.forEach((col, j) => {
        for (let i = 0; i < col.length; i++) out[this.indices[i]] += col[i] * z[j];
      });
    } else {
      this.indices.forEach((k, i) => (out[k] = z[i]));
    }
    return out;
  }

  /** B^T E^T y (back to z). */
  private lower(y: Float64Array): Float64Array {
    const v = Float64Array.from(this.indices, (k) => y[k]);
    if (!this.basis) return v;
    return Float64Array.from(this.basis, (col) => col.reduce((s, c, i) => s + c * v[i], 0));
  }

  private point(z: Float64Array): Float64Array {
    const d = this.lift(z);
    return this.x0.map((e, i) => e + d[i]);
  }

  phi(z: Float64Array): Float64Array {
    checkArguments(this, z);
    return this.outer.phi(this.point(z));
  }
  jvp(z: Float64Array, v: Float64Array): Float64Array {
    checkArguments(this, z, { v });
    return this.outer.jvp(this.point(z), this.lift(v));
  }
  vjp(z: Float64Array, u: Float64Array): Float64Array {
    checkArguments(this, z, { u });
    return this.lower(this.outer.vjp(this.point(z), u));
  }
  curvature(z: Float64Array, g: Float64Array, v: Float64Array): Float64Array {
    checkArguments(this, z, { g, v });
    return this.lower(this.outer.curvature(this.point(z), g, this.lift(v)));
  }
}

/** p orthonormal columns of length n (seeded Gaussians, Gram-Schmidt twice). */
function orthonormalColumns(n: number, p: number, seed: number): Float64Array[] {
  const rng = new Rng(seed);
  const cols: Float64Array[] = [];
  for (let j = 0; j < p; j++) {
    const c = rng.normals(n);
    for (let pass = 0; pass < 2; pass++) {
      for (const q of cols) {
        const d = q.reduce((s, x, i) => s + x * c[i], 0);
        for (let i = 0; i < n; i++) c[i] -= d * q[i];
      }
    }
    const norm = Math.hypot(...c);
    cols.push(c.map((x) => x / norm));
  }
  return cols;
}

const weightNormControls: NegativeControl[] = [
  { id: "scale-s-too", breaks: "T'_alpha scales the scales s with the directions v (w = s v/||v|| is then scaled by alpha): the function changes" },
  { id: "theta-space", breaks: "every measure is taken in theta = Phi(eta), the weights themselves, instead of in the new coordinates eta" },
];

export const weightNormSharpness: Claim = {
  id: 19,
  claim: "Weight normalization (section 5.1): under v -> alpha v every minimum has an epsilon-sublevel set of infinite volume, arbitrarily low full-space and random-subspace epsilon-sharpness, and high full-space epsilon-sharpness",
  controls: weightNormControls,
  async run(ctx) {
    const control = activeControl(ctx, 19, weightNormControls);
    const inTheta = control === "theta-space";
    const p = await teacherProblem(teacherSpec("shallow"), 64, ctx.seed + 191);
    const wn = new WeightNormalization(p.spec);
    const eta = wn.inverse(p.theta);
    const mask = wn.directionMask();
    const nv = mask.reduce((a, b) => a + b, 0);
    const vNorm = Math.sqrt(eta.reduce((s, e, i) => s + mask[i] * e * e, 0));
    /** T'_alpha: v -> alpha v (the control "scale-s-too" scales s as well). */
    const scaled = (x: Float64Array, a: number) => {
      const out = wn.scaleDirections(x, a);
      if (control === "scale-s-too") {
        for (const L of wn.layers) if (L.normalized) for (let o = 0; o < L.rows; o++) out[L.scaleOffset + o] *= a;
      }
      return out;
    };
    const epsilonLoss = 0.01; // tolerance of the sublevel set whose volume is bounded
    const epsilon = 0.05; // radius of the epsilon-sharpness ball
    const lowScales = [1, 10, 100];
    const subspaceDim = 16;
    const directions = Array.from(mask.keys()).filter((i) => mask[i] === 1);
    const basis = orthonormalColumns(nv, subspaceDim, ctx.seed + 192);
    // The control's coordinates: all of theta, a random subspace of the same dimension p.
    const identity = new Identity(p.theta.length);
    const allTheta = Array.from(p.theta.keys());
    const thetaBasis = orthonormalColumns(p.theta.length, subspaceDim, ctx.seed + 192);
    const rays = ctx.quick ? 8 : 16;
    const probes = ctx.quick ? 8 : 24;
    const volumeScales = [1, 10, 100, 1000];
    const ascent = { restarts: 1, steps: ctx.quick ? 10 : 20, seed: ctx.seed + 193 };
    const r = await withObjective(ctx, p.spec, p.data, "mse", [p.theta], async (inner, [t0]) => {
      const base = await inner.outputs(t0);
      const baseLoss = await inner.loss(t0);
      const targets = p.data.targets!;
      const C = outputWidth(p.spec);
      const mean = Array.from({ length: C }, (_, c) => targets.filter((_, i) => i % C === c).reduce((a, b) => a + b, 0) / (targets.length / C));
      const constantLoss = targets.reduce((s, t, i) => s + (t - mean[i % C]) ** 2, 0) / targets.length;
      const bound = (constantLoss - baseLoss) / (1 + baseLoss);
      const fEta = new ReparametrizedObjective(inner, wn);
      const lossTheta = (theta: Float64Array) => withVectors(inner, [theta], ([t]) => inner.loss(t));
      try {
        // (a) Volume: a ball B_r around the minimum inside the sublevel set (r: half the shortest
        // exit radius of the rays), its image under T'_alpha checked inside at random points of
        // the image of its sphere. In eta the image has volume alpha^{n_v} vol(B_r); in theta
        // (control) T'_alpha is the identity (Phi ∘ T'_alpha ∘ Phi^-1 = id), so nothing grows.
        ctx.progress("volume");
        const centre = inTheta ? p.theta : eta;
        const v = inTheta
          ? await volumeFlatness(inner, t0, { epsilon: epsilonLoss, rays, bisectionSteps: 8, seed: ctx.seed + 194 })
          : await volumeFlatness(fEta, eta, { epsilon: epsilonLoss, rays, bisectionSteps: 8, seed: ctx.seed + 194 });
        const radius = 0.5 * Math.min(...v.radii);
        const rng = new Rng(ctx.seed + 195);
        const volume = [];
        for (const a of volumeScales) {
          let worst = -Infinity;
          for (let j = 0; j < probes; j++) {
            const u = rng.normals(centre.length);
            const norm = Math.hypot(...u);
            const x = centre.map((c, i) => c + (radius * u[i]) / norm);
            const loss = inTheta ? await lossTheta(wn.phi(scaled(wn.inverse(x), a))) : await fEta.loss(scaled(x, a));
            worst = Math.max(worst, loss - baseLoss);
          }
          const logDet = inTheta ? 0 : nv * Math.log(a);
          volume.push({ alpha: a, worstLossIncrease: worst, logVolumeLowerBound: logDet + logUnitBallVolume(centre.length) + centre.length * Math.log(radius) });
        }
        // (b), (c): epsilon-sharpness (Definition 2, l2 ball of radius epsilon) in v at T'_alpha(eta)
        // (s and biases held), or in theta at Phi(T'_alpha(eta)) for the control.
        const sharpnessAt = async (a: number, subspace: boolean) => {
          const e0 = scaled(eta, a);
          const relativeOutputDifference = relativeDifference(await fEta.outputs(e0), base);
          const perturbation = inTheta
            ? new CoordinatePerturbation(identity, wn.phi(e0), allTheta, subspace ? thetaBasis : null)
            : new CoordinatePerturbation(wn, e0, directions, subspace ? basis : null);
          const g = new ReparametrizedObjective(inner, perturbation);
          try {
            const value = (await epsilonSharpness(g, g.space.zeros(), { kind: "dinh", epsilon, ...ascent })).value;
            return { alpha: a, value, relativeOutputDifference };
          } finally {
            g.dispose();
          }
        };
        ctx.progress("epsilon-sharpness in v");
        const full = [], subspace = [];
        for (const a of lowScales) {
          full.push(await sharpnessAt(a, false));
          subspace.push(await sharpnessAt(a, true));
        }
        // (c) Shrink v until the ball around T'_alpha(eta) holds the point with every v negated
        // (every weight w flipped): a distance 2 alpha ||v|| < epsilon.
        const aHigh = (0.99 * epsilon) / (2 * vNorm);
        const high = await sharpnessAt(aHigh, false);
        const e0 = scaled(eta, aHigh);
        const flipped = e0.map((e, i) => (mask[i] ? -e : e));
        const l0 = await fEta.loss(e0);
        // The flipped point is in the ball only in eta; in theta it is 2||w|| away.
        const explicit = inTheta ? null : ((await fEta.loss(flipped)) - l0) / (1 + l0);
        return { baseLoss, constantLoss, bound, radius, starShapedLogVolume: v.logVolume, volume, full, subspace, high: { ...high, explicit } };
      } finally {
        fEta.dispose();
      }
    });
    const tolOut = outputTolerance(ctx);
    const outputs = Math.max(...[...r.full, ...r.subspace, r.high].map((x) => x.relativeOutputDifference));
    const inside = r.volume.every((x) => x.worstLossIncrease < epsilonLoss);
    const grows = r.volume.every((x, i) => i === 0 || x.logVolumeLowerBound >= r.volume[i - 1].logVolumeLowerBound + 1);
    const falling = (rows: { value: number }[]) => rows.every((x, i) => i === 0 || x.value < rows[i - 1].value);
    const fall = (rows: { value: number }[]) => rows[0].value / Math.max(rows.at(-1)!.value, 1e-300);
    const minFall = 1e3; // second order predicts alpha^-2: 1e4 from alpha 1 to 100
    const lowOk = falling(r.full) && falling(r.subspace) && fall(r.full) >= minFall && fall(r.subspace) >= minFall;
    const highValue = Math.max(r.high.value, r.high.explicit ?? -Infinity);
    const highOk = r.bound > 0 && highValue >= r.bound;
    return {
      measured: `log vol >= ${r.volume.map((x) => `${fmt(x.logVolumeLowerBound, 4)} (alpha ${x.alpha})`).join(", ")}, largest loss increase on T'_alpha(sphere) ${fmt(Math.max(...r.volume.map((x) => x.worstLossIncrease)))}; ` +
        `eps-sharpness in ${inTheta ? "theta" : "v"} ${r.full.map((x) => `${fmt(x.value)} (alpha ${x.alpha})`).join(", ")} (falls ${fmt(fall(r.full))}x), random subspace ${r.subspace.map((x) => fmt(x.value)).join(", ")} (${fmt(fall(r.subspace))}x); ` +
        `at alpha ${fmt(r.high.alpha)}: ${fmt(highValue)} (ascent ${fmt(r.high.value)}, every w flipped ${r.high.explicit === null ? "- (outside the ball in theta)" : fmt(r.high.explicit)}) vs constant-function bound ${fmt(r.bound)}; outputs ${fmt(outputs)}`,
      expected: `the sublevel set (eps ${epsilonLoss}) holds T'_alpha(B_r) and log vol >= ${nv} log alpha + log vol(B_r) grows; epsilon-sharpness (eps ${epsilon}) in v falls >= ${fmt(minFall)}x from alpha 1 to 100, ` +
        `full space and p = ${subspaceDim}; >= the constant-function bound as alpha -> 0; outputs equal to ${tolOut}`,
      pass: inside && grows && lowOk && highOk && outputs <= tolOut,
      details: {
        epsilonLoss,
        epsilon,
        subspaceDim,
        directions: nv,
        dimEta: wn.dimEta,
        radius: r.radius,
        starShapedLogVolume: r.starShapedLogVolume,
        volume: r.volume,
        full: r.full,
        subspace: r.subspace,
        high: r.high,
        constantLoss: r.constantLoss,
        bound: r.bound,
      },
      plots: [{
        id: "weight-norm-sharpness",
        title: "Weight normalization: epsilon-sharpness in v under v -> alpha v (same function)",
        xLabel: "alpha",
        yLabel: `epsilon-sharpness (eps ${epsilon})`,
        xLog: true,
        yLog: true,
        series: [
          { name: "full v-space", x: [r.high.alpha, ...r.full.map((x) => x.alpha)], y: [highValue, ...r.full.map((x) => x.value)] },
          { name: `random subspace (p = ${subspaceDim})`, x: r.subspace.map((x) => x.alpha), y: r.subspace.map((x) => x.value) },
          { name: "constant-function bound", x: [r.high.alpha, lowScales.at(-1)!], y: [r.bound, r.bound] },
        ],
      }],
    };
  },
};

// ---------------------------------------------------------------------------------------------
// Claim 20

const powerControls: NegativeControl[] = [
  { id: "theta-hessian", breaks: "the Hessian 'in eta' is taken as H(Phi(eta)), the Jacobian of Phi dropped from J^T H J" },
  { id: "eta-not-mapped", breaks: "eta is set to theta instead of g^-1(theta), so Phi(eta) is another parameter: the function changes" },
];

export const powerFamilyFlip: Claim = {
  id: 20,
  claim: "Figure 5: the power-family reparametrization eta = (|theta - c|^2 + b)^a (theta - c) makes the flatter of two minima the sharper one (a > 0) and the sharper one the flatter (a < 0), the function unchanged",
  controls: powerControls,
  async run(ctx) {
    const control = activeControl(ctx, 20, powerControls);
    const p = await teacherProblem(teacherSpec("shallow"), 64, ctx.seed + 201);
    // Two minima of the same function: the teacher and its T_alpha image.
    const minima = [p.theta, homogeneousAlphaScale(p.spec, p.theta, [2, 0.5])];
    const R = Math.hypot(...minima[0].map((t, i) => t - minima[1][i]));
    const r = await withObjective(ctx, p.spec, p.data, "mse", [], (inner) => onHost(inner, async (h) => {
      const thetaTop = [];
      const outputs = [];
      for (const theta of minima) {
        thetaTop.push(await topEigenvalue(h, theta, ctx.seed + 202));
        outputs.push(await h.outputs(theta));
      }
      const flatter = thetaTop[0] <= thetaTop[1] ? 0 : 1;
      const sharper = 1 - flatter;
      // a > 0 centred on the flatter minimum: J = b^-a I there, far smaller J at the other one.
      // a < 0 centred on the sharper minimum: J = b^-a I (< 1) there, larger at the other one.
      const maps = [
        { name: "sharpen the flatter", centreOn: flatter, a: 0.5, b: 0.01 * R * R },
        { name: "flatten the sharper", centreOn: sharper, a: -0.25, b: 0.001 * R * R },
      ];
      const rows = [];
      for (const m of maps) {
        const phi = powerFamily({ centre: minima[m.centreOn], a: m.a, b: m.b, mode: "radial" });
        const f = new ReparametrizedObjective(inner, phi);
        try {
          const etaTop = [], difference = [];
          for (const [j, theta] of minima.entries()) {
            const eta = control === "eta-not-mapped" ? Float64Array.from(theta) : phi.inverse(theta);
            etaTop.push(control === "theta-hessian"
              ? await topEigenvalue(h, phi.phi(eta), ctx.seed + 203)
              : await topEigenvalue(f, eta, ctx.seed + 203));
            difference.push(relativeDifference(await f.outputs(eta), outputs[j]));
          }
          const flatterEta = etaTop[0] <= etaTop[1] ? 0 : 1;
          rows.push({ ...m, etaTop, flatterEta, ratioEta: Math.max(...etaTop) / Math.min(...etaTop), relativeOutputDifference: Math.max(...difference) });
        } finally {
          f.dispose();
        }
      }
      return { thetaTop, flatter, rows };
    }));
    const margin = 2;
    const ratioTheta = Math.max(...r.thetaTop) / Math.min(...r.thetaTop);
    const flips = r.rows.every((x) => x.flatterEta !== r.flatter && x.ratioEta >= margin);
    const outputs = Math.max(...r.rows.map((x) => x.relativeOutputDifference));
    const tol = outputTolerance(ctx);
    const name = (i: number) => (i === 0 ? "teacher" : "T_alpha(teacher)");
    return {
      measured: `lambda_max in theta: ${name(0)} ${fmt(r.thetaTop[0], 4)}, ${name(1)} ${fmt(r.thetaTop[1], 4)} (flatter: ${name(r.flatter)}); ` +
        r.rows.map((x) => `${x.name} (a ${x.a}): in eta ${fmt(x.etaTop[0], 4)} vs ${fmt(x.etaTop[1], 4)} (flatter: ${name(x.flatterEta)}, ratio ${fmt(x.ratioEta, 3)})`).join("; ") +
        `; outputs ${fmt(outputs)}`,
      expected: `both maps reverse the ranking by a factor >= ${margin}; outputs at Phi(g^-1(theta)) equal to ${tol} relative`,
      pass: ratioTheta >= 1.5 && flips && outputs <= tol,
      details: { distance: R, thetaTopEigenvalues: r.thetaTop, ratioTheta, flatterInTheta: name(r.flatter), maps: r.rows.map((x) => ({ ...x, centreOn: name(x.centreOn), flatterEta: name(x.flatterEta) })) },
      plots: [{
        id: "power-flip",
        title: "Figure 5's power family: top Hessian eigenvalue of two minima of the same function",
        xLabel: "parametrization",
        yLabel: "lambda_max",
        kind: "bar",
        yLog: true,
        categories: ["theta", `eta, a = ${r.rows[0].a}`, `eta, a = ${r.rows[1].a}`],
        series: [0, 1].map((j) => ({ name: name(j), x: [0, 1, 2], y: [r.thetaTop[j], r.rows[0].etaTop[j], r.rows[1].etaTop[j]] })),
      }],
    };
  },
};

// ---------------------------------------------------------------------------------------------
// Claim 21

/** Spectral norm of a row-major [rows, cols] matrix (float64, host). */
function spectralNorm(m: ArrayLike<number>, rows: number, cols: number): number {
  const n = Math.min(rows, cols);
  const g = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      if (rows <= cols) for (let k = 0; k < cols; k++) s += m[i * cols + k] * m[j * cols + k];
      else for (let k = 0; k < rows; k++) s += m[k * cols + i] * m[k * cols + j];
      g[i * n + j] = s;
    }
  }
  const { values } = symmetricEigen(g, n);
  return Math.sqrt(Math.max(...values, 0));
}

const inputControls: NegativeControl[] = [
  { id: "not-composed", breaks: "the gaussianized input u is fed to f itself, the map xi not composed back (f(u) instead of f(xi(u))): the predictions change" },
  { id: "no-chain-rule", breaks: "the input gradient of f_xi is taken as df/dx at xi(u), without the chain rule's factor d xi/du" },
];

export const inputLipschitz: Claim = {
  id: 21,
  claim: "Section 5.2: a bijective input map (gaussianization) changes the prediction function's Lipschitz constant and input-gradient norms; its predictions do not change",
  controls: inputControls,
  async run(ctx) {
    const control = activeControl(ctx, 21, inputControls);
    // Heavy-tailed inputs x = sinh(z), z ~ N(0, sigma^2 I): the map u = asinh(x) gaussianizes them
    // exactly (Chen & Gopinath's marginal gaussianization, in closed form), x = xi(u) = sinh(u).
    const spec = mlpSpec([4, 16, 2]);
    const n = 128;
    const d = 4;
    const sigma = 2;
    const rng = new Rng(ctx.seed + 211);
    const x = Float32Array.from(rng.normals(n * d), (z) => Math.sinh(sigma * z));
    const theta = Float64Array.from(Float32Array.from(initParameters(spec, ctx.seed + 212)));
    const probe: Dataset = { n, features: d, x, targets: new Float32Array(n * 2) };
    const data: Dataset = { ...probe, targets: Float32Array.from(await new ReferenceObjective(spec, probe, "mse").outputs(theta)) };
    const map = fitAsinhInputMap(x, d, { scale: new Float64Array(d).fill(1) });
    const u = applyInputMap(map, x);
    // f(x) on the engine; f_xi(u) = f(xi(u)) (the control: f(u)).
    const engine = await withObjective(ctx, spec, data, "mse", [theta], (f, [t]) => f.outputs(t));
    const predictions = control === "not-composed" ? hostOutputs(spec, theta, u) : transformedOutputs(spec, theta, map, u);
    const predictionChange = relativeDifference(predictions, engine);
    // Input gradients: df/dx on x; d f_xi/du = df/dx(xi(u)) diag(cosh u) (the control drops diag(cosh u)).
    const gx = await inputGradientNorms(spec, theta, data);
    const gu = control === "no-chain-rule"
      ? await inputGradientNorms(spec, theta, { ...data, x: Float32Array.from(invertInputMap(map, u)) })
      : transformedInputGradientNorms(spec, theta, map, u);
    // Lipschitz constants (l2): Lip(f) <= prod_k ||W_k||_2 (ReLU is 1-Lipschitz), and
    // Lip(g) >= max over the data of ||J_g||_2 for g = f and g = f_xi.
    const layout = parameterLayout(spec);
    const upperF = spec.layers.reduce((prod, l, k) => {
      const [rows, cols] = weightShape(l);
      return prod * spectralNorm(theta.subarray(layout.layers[k].weightOffset, layout.layers[k].weightOffset + rows * cols), rows, cols);
    }, 1);
    const jx = inputJacobians(spec, theta, x);
    const ju = inputJacobians(spec, theta, invertInputMap(map, u));
    const C = jx.outputs;
    let lowerF = 0, lowerXi = 0;
    for (let s = 0; s < n; s++) {
      const block = jx.jacobians.subarray(s * C * d, (s + 1) * C * d);
      lowerF = Math.max(lowerF, spectralNorm(block, C, d));
      const chained = ju.jacobians.slice(s * C * d, (s + 1) * C * d);
      if (control !== "no-chain-rule") for (let r = 0; r < C; r++) for (let j = 0; j < d; j++) chained[r * d + j] *= Math.cosh(u[s * d + j]);
      lowerXi = Math.max(lowerXi, spectralNorm(chained, C, d));
    }
    const kurtosis = (v: ArrayLike<number>) => {
      const m = Array.from(v).reduce((a, b) => a + b, 0) / v.length;
      const m2 = Array.from(v).reduce((a, b) => a + (b - m) ** 2, 0) / v.length;
      const m4 = Array.from(v).reduce((a, b) => a + (b - m) ** 4, 0) / v.length;
      return m4 / (m2 * m2) - 3;
    };
    const tol = outputTolerance(ctx);
    const lipschitzRatio = lowerXi / upperF;
    const gradientRatio = gu.mean / gx.mean;
    const minRatio = 10;
    return {
      measured: `Lip(f_xi) >= ${fmt(lowerXi, 4)} (max ||d f_xi/du||_2 over the data) vs Lip(f) in [${fmt(lowerF, 4)}, ${fmt(upperF, 4)}] (max ||df/dx||_2, prod ||W_k||_2): ratio >= ${fmt(lipschitzRatio, 3)}; ` +
        `mean input-gradient norm ${fmt(gx.mean, 4)} -> ${fmt(gu.mean, 4)} (x${fmt(gradientRatio, 3)}); predictions moved ${fmt(predictionChange)}; excess kurtosis x ${fmt(kurtosis(x), 3)}, u ${fmt(kurtosis(u), 3)}`,
      expected: `Lip(f_xi) >= ${minRatio} Lip(f) (lower bound against upper bound) and the mean input-gradient norm moved >= 2x; predictions f(xi(u)) = f(x) to ${tol} relative`,
      pass: lipschitzRatio >= minRatio && (gradientRatio >= 2 || gradientRatio <= 0.5) && predictionChange <= tol,
      details: {
        map: "u = asinh(x), x = sinh(u) (x = sinh(2 z), z ~ N(0, I))",
        lipschitz: { fLower: lowerF, fUpper: upperF, fXiLower: lowerXi, ratio: lipschitzRatio },
        inputGradientNorm: { x: { mean: gx.mean, max: gx.max }, u: { mean: gu.mean, max: gu.max }, ratio: gradientRatio },
        predictionChange,
        excessKurtosis: { x: kurtosis(x), u: kurtosis(u) },
      },
      plots: [{
        id: "gaussianization",
        title: "Gaussianization u = asinh(x): the same predictions, other input gradients",
        xLabel: "quantity",
        yLabel: "norm",
        kind: "bar",
        yLog: true,
        categories: ["mean input-gradient norm", "Lipschitz constant (f: upper bound; f_xi: lower bound)"],
        series: [
          { name: "f on x", x: [0, 1], y: [gx.mean, upperF] },
          { name: "f_xi on u = asinh(x)", x: [0, 1], y: [gu.mean, lowerXi] },
        ],
      }],
    };
  },
};

function hostOutputs(spec: ModelSpec, theta: Float64Array, x: Float64Array): Float64Array {
  const fw = hostForward(spec, theta, x);
  return fw.z[fw.z.length - 1];
}
