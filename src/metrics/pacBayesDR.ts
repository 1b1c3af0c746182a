/**
 * A PAC-Bayes generalization bound computed as Dziugaite & Roy (2017), "Computing nonvacuous
 * generalization bounds for deep (stochastic) neural networks with many more parameters than
 * training data" (UAI 2017), for the Gaussian posterior Q = N(w, diag(s²)) around the trained
 * weights w (w is held; only s is optimised here, their "PAC-Bayes training" also moves w).
 *
 * Bound (their eq. 7 with the union bound over the prior variance, section 4): with probability
 * >= 1 - δ over the m training samples, for every s and every λ = c exp(-j/b), j = 1, 2, ...,
 *   kl(ê_Q || e_Q) <= N / (m - 1),  N = KL(Q || P_λ) + 2 log(b log(c/λ)) + log(π² m / (6 δ)),
 * P_λ = N(w0, λ I) (w0 = 0 or the initialization, fixed before seeing the data), kl the binary
 * KL divergence, e_Q and ê_Q the expected and empirical 0-1 error of the stochastic net, and
 *   KL(Q || P_λ) = ½ [ (Σ s_i² + ||w - w0||²) / λ - n + n log λ - Σ log s_i² ].
 * So e_Q <= kl⁻¹(ê_Q, N / (m - 1)) with kl⁻¹(q, c) = max{p in [q, 1] : kl(q || p) <= c}.
 * ê_Q itself is estimated by Monte Carlo over `samples` draws of Q (0-1 error of each drawn net on
 * the whole training set); with probability >= 1 - δ' (Langford & Caruana 2002, as D&R)
 * ê_Q <= kl⁻¹(ê, log(2/δ') / samples). The reported bound,
 *   e_Q <= kl⁻¹( kl⁻¹(ê, log(2/δ')/samples), N / (m - 1) ),
 * holds with probability >= 1 - δ - δ' (defaults δ = 0.025, δ' = 0.01, b = 100, c = 0.1 as D&R).
 *
 * Optimisation (D&R section 4, s only): Adam on ρ = log s against the surrogate
 *   B(ρ) = L(w + s ⊙ ξ) / log 2 + sqrt(N / (2(m - 1))),  ξ ~ N(0, I) one draw per step,
 * the objective's mean loss divided by log 2 standing in for the 0-1 error (for ce and logistic it
 * bounds it from above: a misclassified sample has loss >= log 2), the square root the Pinsker
 * relaxation of the kl bound. λ is set at each step to its KL-optimal value (Σ s² + ||w - w0||²)/n
 * (a continuous stand-in), then rounded to the grid: the final j is the better of the two grid
 * points around it. ∂B/∂ρ_i = g_i ξ_i s_i / log 2 + (s_i²/λ - 1) / (2 sqrt(2 (m - 1) N)), g the
 * loss gradient at the drawn point (the reparametrization trick): one gradient pass per step.
 * Everything runs through the Objective seam (loss gradient and outputs at perturbed parameters,
 * written from float64 host vectors), so any backend works; the noise is seeded (deterministic).
 */
import type { Dataset } from "../data.ts";
import { InputError } from "../errors.ts";
import { outputWidth } from "../model.ts";
import type { Objective } from "../objective.ts";
import { Rng } from "../random.ts";
import { type MetricCost, type Progress, withCost } from "./cost.ts";
import { accuracyFromOutputs } from "./pacBayes.ts";

/** Options of pacBayesBoundDR (defaults as Dziugaite & Roy 2017 where they give one). */
export interface PacBayesDROptions {
  /** The objective's training set (labels for the 0-1 error); its size is m. */
  data: Dataset;
  /** The prior's mean w0: the initialization, or zeros (default). Must not depend on the data. */
  priorMean?: ArrayLike<number>;
  /** Confidence of the PAC-Bayes bound (default 0.025). */
  delta?: number;
  /** Confidence of the Monte-Carlo estimate of ê_Q (default 0.01). */
  deltaPrime?: number;
  /** Prior-variance grid λ = c exp(-j / b): b (default 100). */
  gridPrecision?: number;
  /** Prior-variance grid: c, the largest λ (default 0.1). */
  gridMax?: number;
  /** Adam steps on log s (default 300). */
  steps?: number;
  /** Adam learning rate (default 0.02). */
  learningRate?: number;
  /** Initial posterior std as a fraction of |w_i| (default 0.1; floored at 1e-3 · rms(w)). */
  initialStd?: number;
  /** Monte-Carlo draws of Q for ê_Q (default 1000). */
  samples?: number;
  /** Seed of every noise draw (default 0). */
  seed?: number;
  /** Progress callback. */
  onProgress?: Progress;
}

/** The Dziugaite & Roy (2017) PAC-Bayes bound on the 0-1 error of Q = N(w, diag(s²)) and its parts. */
export interface PacBayesDRResult {
  /** The final bound on e_Q (probability >= 1 - delta - deltaPrime). */
  bound: number;
  /** The Pinsker relaxation ê_upper + sqrt(N / (2(m - 1))) (looser; for reference). */
  pinskerBound: number;
  /** Monte-Carlo mean 0-1 training error of Q over `samples` draws. */
  empiricalErrorQ: number;
  /** kl⁻¹(empiricalErrorQ, log(2/δ')/samples): the upper confidence bound on ê_Q. */
  empiricalErrorQUpper: number;
  /** 0-1 training error of the deterministic net w. */
  empiricalError: number;
  /** KL(Q || P_λ) at the chosen λ. */
  kl: number;
  /** N / (m - 1), the right-hand side of the kl bound. */
  klBudget: number;
  /** The chosen prior variance λ = c exp(-j/b) and its grid index j. */
  lambda: number;
  /** Grid index j >= 1 of lambda. */
  gridIndex: number;
  /** The optimised posterior standard deviations s (host copy). */
  std: Float64Array;
  /** Mean of log s over the parameters. */
  meanLogStd: number;
  /** Training samples m. */
  m: number;
  /** Parameter count n. */
  n: number;
  /** Monte-Carlo draws used for ê_Q. */
  samples: number;
  /** Surrogate B per optimisation step (one noisy draw each). */
  trace: number[];
  /** Passes and wall time of the computation. */
  cost: MetricCost;
}

/** Binary KL divergence kl(q || p) = q log(q/p) + (1-q) log((1-q)/(1-p)), with 0 log 0 = 0. */
export function binaryKl(q: number, p: number): number {
  const t = (a: number, b: number) => (a === 0 ? 0 : b === 0 ? Infinity : a * Math.log(a / b));
  return t(q, p) + t(1 - q, 1 - p);
}

/** kl⁻¹(q, c) = max{p in [q, 1] : kl(q || p) <= c} by bisection (kl(q || ·) increases on [q, 1]; about 1e-8 absolute for c near 0, where kl is flat, ~1e-15 otherwise). */
export function klInverseUpper(q: number, c: number): number {
  if (!(q >= 0 && q <= 1)) throw new InputError(`kl inverse: q must be in [0, 1], got ${q}`);
  if (!(c >= 0)) throw new InputError(`kl inverse: c must be >= 0, got ${c}`);
  if (q === 1 || c === 0) return c === 0 ? q : 1;
  let lo = q;
  let hi = 1;
  if (binaryKl(q, hi) <= c) return 1;
  for (let i = 0; i < 200 && hi - lo > 1e-16; i++) {
    const mid = 0.5 * (lo + hi);
    if (binaryKl(q, mid) <= c) lo = mid;
    else hi = mid;
  }
  return lo;
}

/** The Dziugaite & Roy (2017) PAC-Bayes bound for Q = N(w, diag(s²)) around `theta`, s optimised; see the module comment. */
export async function pacBayesBoundDR<V>(objective: Objective<V>, theta: V, options: PacBayesDROptions): Promise<PacBayesDRResult> {
  const { data } = options;
  const kind = objective.lossKind;
  if (kind === "mse") throw new InputError("PAC-Bayes bound (Dziugaite-Roy): needs a classification loss (ce or logistic) for the 0-1 error");
  if (!data || data.n !== objective.sampleCount || !data.labels) throw new InputError("PAC-Bayes bound (Dziugaite-Roy): needs the objective's labelled dataset as `data`");
  const m = data.n;
  if (m < 2) throw new InputError("PAC-Bayes bound (Dziugaite-Roy): needs at least 2 samples");
  const delta = options.delta ?? 0.025;
  const deltaPrime = options.deltaPrime ?? 0.01;
  const b = options.gridPrecision ?? 100;
  const c = options.gridMax ?? 0.1;
  const steps = options.steps ?? 300;
  const lr = options.learningRate ?? 0.02;
  const initialStd = options.initialStd ?? 0.1;
  const samples = options.samples ?? 1000;
  const seed = options.seed ?? 0;
  for (const [name, v] of [["delta", delta], ["deltaPrime", deltaPrime]] as const) {
    if (!(v > 0 && v < 1)) throw new InputError(`PAC-Bayes bound (Dziugaite-Roy): ${name} must be in (0, 1), got ${v}`);
  }
  for (const [name, v] of [["gridPrecision", b], ["gridMax", c], ["learningRate", lr], ["initialStd", initialStd]] as const) {
    if (!(v > 0 && Number.isFinite(v))) throw new InputError(`PAC-Bayes bound (Dziugaite-Roy): ${name} must be a positive number, got ${v}`);
  }
  if (!Number.isInteger(steps) || steps < 0) throw new InputError(`PAC-Bayes bound (Dziugaite-Roy): steps must be a whole number >= 0, got ${steps}`);
  if (!Number.isInteger(samples) || samples < 1) throw new InputError(`PAC-Bayes bound (Dziugaite-Roy): samples must be a positive integer, got ${samples}`);
  const space = objective.space;
  const n = space.dim;
  const classes = outputWidth(objective.spec);
  const zeroOne = (out: Float64Array) => 1 - accuracyFromOutputs(out, data, classes, kind as "ce" | "logistic");
  const logConst = Math.log((Math.PI * Math.PI * m) / (6 * delta));
  const gridLambda = (j: number) => c * Math.exp(-j / b);

  const { result, cost } = await withCost(objective, async () => {
    const w = await space.toArray(theta);
    const w0 = options.priorMean ? Float64Array.from(options.priorMean) : new Float64Array(n);
    if (w0.length !== n) throw new InputError(`PAC-Bayes bound (Dziugaite-Roy): priorMean has ${w0.length} entries, the model ${n}`);
    let dist2 = 0;
    let ww = 0;
    for (let i = 0; i < n; i++) {
      dist2 += (w[i] - w0[i]) ** 2;
      ww += w[i] * w[i];
    }
    const floor = 1e-3 * Math.sqrt(ww / n) || 1e-3;
    const rho = Float64Array.from(w, (x) => Math.log(Math.max(initialStd * Math.abs(x), floor)));
    const s2sum = () => rho.reduce((a, r) => a + Math.exp(2 * r), 0);
    const kl = (lambda: number) => {
      let sumLog = 0;
      for (const r of rho) sumLog += 2 * r;
      return 0.5 * ((s2sum() + dist2) / lambda - n + n * Math.log(lambda) - sumLog);
    };
    // λ must stay below the grid's first point so that b log(c/λ) >= 1.
    const clampLambda = (l: number) => Math.min(l, gridLambda(1));
    const numerator = (lambda: number) => kl(lambda) + 2 * Math.log(b * Math.log(c / lambda)) + logConst;
    const point = space.zeros();
    const grad = space.zeros();
    const host = new Float64Array(n);
    const trace: number[] = [];
    try {
      const empiricalError = zeroOne(await objective.outputs(theta));
      // Adam on rho.
      const mom = new Float64Array(n);
      const vel = new Float64Array(n);
      const rng = new Rng(seed);
      for (let t = 1; t <= steps; t++) {
        const xi = rng.normals(n);
        for (let i = 0; i < n; i++) host[i] = w[i] + Math.exp(rho[i]) * xi[i];
        space.write(point, host);
        const loss = await objective.gradient(point, grad);
        const g = await space.toArray(grad);
        const lambda = clampLambda((s2sum() + dist2) / n);
        const N = numerator(lambda);
        trace.push(loss / Math.LN2 + Math.sqrt(N / (2 * (m - 1))));
        const coef = 1 / (2 * Math.sqrt(2 * (m - 1) * N));
        for (let i = 0; i < n; i++) {
          const s = Math.exp(rho[i]);
          const d = (g[i] * xi[i] * s) / Math.LN2 + coef * ((s * s) / lambda - 1);
          mom[i] = 0.9 * mom[i] + 0.1 * d;
          vel[i] = 0.999 * vel[i] + 0.001 * d * d;
          rho[i] -= (lr * (mom[i] / (1 - 0.9 ** t))) / (Math.sqrt(vel[i] / (1 - 0.999 ** t)) + 1e-8);
        }
        options.onProgress?.((0.5 * t) / steps, `PAC-Bayes (D&R): step ${t}/${steps}, surrogate ${trace[t - 1].toPrecision(4)}`);
      }
      // λ onto the grid: the better of the two neighbouring grid points.
      const jc = Math.max(1, b * Math.log(c / clampLambda((s2sum() + dist2) / n)));
      const candidates = [...new Set([Math.max(1, Math.floor(jc)), Math.max(1, Math.ceil(jc))])];
      let gridIndex = candidates[0];
      for (const j of candidates) if (numerator(gridLambda(j)) < numerator(gridLambda(gridIndex))) gridIndex = j;
      const lambda = gridLambda(gridIndex);
      const klValue = kl(lambda);
      const klBudget = numerator(lambda) / (m - 1);
      // Monte Carlo of ê_Q on fresh draws.
      const mc = new Rng((seed + 0x9e3779b9) >>> 0);
      let errors = 0;
      for (let k = 0; k < samples; k++) {
        const xi = mc.normals(n);
        for (let i = 0; i < n; i++) host[i] = w[i] + Math.exp(rho[i]) * xi[i];
        space.write(point, host);
        errors += zeroOne(await objective.outputs(point));
        if ((k + 1) % 50 === 0 || k + 1 === samples) options.onProgress?.(0.5 + (0.5 * (k + 1)) / samples, `PAC-Bayes (D&R): Monte Carlo ${k + 1}/${samples}`);
      }
      const empiricalErrorQ = errors / samples;
      const empiricalErrorQUpper = klInverseUpper(empiricalErrorQ, Math.log(2 / deltaPrime) / samples);
      const bound = klInverseUpper(empiricalErrorQUpper, klBudget);
      const std = Float64Array.from(rho, Math.exp);
      return {
        bound,
        pinskerBound: Math.min(1, empiricalErrorQUpper + Math.sqrt(klBudget / 2)),
        empiricalErrorQ,
        empiricalErrorQUpper,
        empiricalError,
        kl: klValue,
        klBudget,
        lambda,
        gridIndex,
        std,
        meanLogStd: rho.reduce((a, r) => a + r, 0) / n,
        m,
        n,
        samples,
        trace,
      };
    } finally {
      space.dispose(point);
      space.dispose(grad);
    }
  });
  return { ...result, cost };
}
