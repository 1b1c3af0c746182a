/**
 * Claims 5-10 of `flatness reproduce`: the Hessian and epsilon-sharpness results (Dinh et al.
 * 2017, sections 4.2-4.3, Theorems 4 and 5; the thesis' random-subspace argument).
 */
import { spectralDensity } from "../metrics/density.ts";
import { hessianOperator } from "../metrics/operator.ts";
import { epsilonSharpness } from "../metrics/sharpness.ts";
import { lanczosEigenpairs } from "../metrics/spectrum.ts";
import { hutchinsonTrace, hutchPlusPlusTrace } from "../metrics/trace.ts";
import { symmetricEigen } from "../metrics/tridiagonal.ts";
import { mlpSpec, parameterLayout } from "../model.ts";
import { Rng } from "../random.ts";
import { type Objective, withVectors } from "../objective.ts";
import { alphaScaleDiagonal, homogeneousAlphaScale } from "../transforms/alphaScale.ts";
import { denseHessian, topEigenvalue as lanczosTop } from "../transforms/constructionSupport.ts";
import { epsilonSharpnessConstruction } from "../transforms/epsilonConstruction.ts";
import { sharpen, sharpenCount } from "../transforms/sharpen.ts";
import type { PlotSpec } from "./html.ts";
import { BIAS_CONTROL, blockDiagonalHvp, type Claim, claimAlphaScale, endAlphas, fmt, isControl, isF32, type NegativeControl, type ReproduceContext, relativeDifference, teacherProblem, teacherSpec, withObjective, outputTolerance } from "./context.ts";
import { ballProjection, boxProjection, projectedAscent } from "./ascent.ts";

/** lambda_max(H) at a host theta: the constructions' Lanczos estimate (tol 1e-6). */
function topEigenvalue(f: Objective<unknown>, theta: Float64Array, seed: number): Promise<number> {
  return withVectors(f, [theta], ([t]) => lanczosTop(f, t, { seed, lanczosTol: 1e-6 }));
}

/** The negative control of a Lanczos stopped after one step (its estimate is a Rayleigh quotient of the start vector). */
export const LANCZOS_CONTROL: NegativeControl = {
  id: "lanczos-one-step",
  breaks: "the Lanczos that re-checks lambda_max stops after one step (a Rayleigh quotient of a random vector)",
};

/** lambda_max at a device theta as the claim re-checks it: Lanczos to 1e-7, or one step under the lanczos-one-step control. */
async function claimTopEigenvalue<V>(ctx: ReproduceContext, f: Objective<V>, t: V, seed: number): Promise<number> {
  const oneStep = isControl(ctx, LANCZOS_CONTROL.id);
  const r = await lanczosEigenpairs(hessianOperator(f, t), { k: 1, seed, tol: 1e-7, ...(oneStep ? { maxSteps: 1 } : {}) });
  return r.eigenvalues[0];
}

export const sharpenTheorem4: Claim = {
  id: 5,
  claim: "Theorem 4: an observationally equivalent model with Hessian spectral norm >= M, for M = 1e2, 1e4, 1e6",
  controls: [BIAS_CONTROL, LANCZOS_CONTROL],
  async run(ctx) {
    const p = await teacherProblem(teacherSpec("deep"), 128, ctx.seed + 51);
    const targets = ctx.control ? [1e2] : [1e2, 1e4, 1e6];
    const r = await withObjective(ctx, p.spec, p.data, "mse", [p.theta], async (f, [t0]) => {
      const rows = [];
      const before = await f.outputs(t0);
      for (const M of targets) {
        ctx.progress(`sharpen to ${M}`);
        const s = await sharpen(f, p.theta, { minTopEigenvalue: M, seed: ctx.seed });
        // Re-checked here, not taken from sharpen: T_alpha applied to theta with sharpen's alphas,
        // its outputs compared on the engine, its lambda_max by a fresh Lanczos (another seed).
        const theta = claimAlphaScale(ctx, p.spec, p.theta, s.alphas);
        const { outputs, top } = await withVectors(f, [theta], async ([t]) => ({ outputs: await f.outputs(t), top: await claimTopEigenvalue(ctx, f, t, ctx.seed + 5) }));
        rows.push({ target: M, topEigenvalue: top, sharpenTopEigenvalue: s.topEigenvalue, layer: s.layer, alphas: s.alphas, relativeOutputDifference: relativeDifference(outputs, before), theta });
      }
      if (ctx.control) return { rows, sweep: [], k: 0 };
      // The eigenvalue along the orbit that shrinks the layer sharpen chose: lambda_max grows as 1/alpha^2.
      const k = rows[0].layer >= 0 ? rows[0].layer : 0;
      const sweep = [];
      for (const a of [1, 0.3, 0.1, 0.03, 0.01]) {
        const alphas = p.spec.layers.map((_, j) => (j === k ? a : 1));
        alphas[k === 0 ? 1 : 0] = 1 / a;
        sweep.push({ alpha: a, topEigenvalue: await topEigenvalue(f, homogeneousAlphaScale(p.spec, p.theta, alphas), ctx.seed) });
      }
      return { rows, sweep, k };
    });
    const tol = outputTolerance(ctx);
    const pass = r.rows.every((x) => x.topEigenvalue >= x.target && x.relativeOutputDifference <= tol);
    const plots: PlotSpec[] = [{
      id: "eigenvalue-alpha",
      title: `Top Hessian eigenvalue along T_alpha (layer ${r.k} scaled by alpha, another by 1/alpha)`,
      xLabel: "alpha",
      yLabel: "lambda_max(H)",
      xLog: true,
      yLog: true,
      series: [{ name: "lambda_max", x: r.sweep.map((s) => s.alpha), y: r.sweep.map((s) => s.topEigenvalue) }],
      caption: "Same function at every alpha; the spectral norm grows as 1/alpha^2.",
    }];
    return {
      measured: r.rows.map((x) => `M ${fmt(x.target)}: lambda_max ${fmt(x.topEigenvalue, 4)} (re-checked; sharpen reported ${fmt(x.sharpenTopEigenvalue, 4)}), outputs ${fmt(x.relativeOutputDifference)}`).join("; "),
      expected: `lambda_max >= M (a fresh Lanczos at T_alpha(theta)) with outputs equal to ${tol} relative`,
      pass,
      details: { rows: r.rows.map(({ theta: _t, ...x }) => x), sweep: r.sweep },
      plots,
    };
  },
};

/** The negative control of claim 6 whose trace estimator is under-sampled. */
const HUTCHINSON_CONTROL: NegativeControl = {
  id: "plain-hutchinson",
  breaks: "the trace estimated by plain Hutchinson with 4 Rademacher probes (no low-rank deflation) instead of Hutch++",
};

export const traceFollows: Claim = {
  id: 6,
  claim: "The trace follows: at a minimum the Hessian is positive semi-definite, so its trace is at least its spectral norm, and T_alpha makes both exceed M",
  controls: [LANCZOS_CONTROL, HUTCHINSON_CONTROL],
  async run(ctx) {
    // A net small enough for the dense Hessian (122 parameters): the exact trace, the exact spectrum
    // (PSD at the minimum) and the trace's scaling law under T_alpha, tr H(D theta) = sum_i H_ii(theta) / d_i^2,
    // are independent of the estimators checked: Hutch++ for the trace, Lanczos for lambda_max.
    const p = await teacherProblem(mlpSpec([3, 8, 8, 2]), 128, ctx.seed + 61);
    const n = p.theta.length;
    const r = await withObjective(ctx, p.spec, p.data, "mse", [p.theta], async (f, [t0]) => {
      const h0 = await denseHessian(f, t0);
      const diag0 = Array.from({ length: n }, (_, i) => h0[i * n + i]);
      const rows = [];
      let density: { before?: { grid: number[]; density: number[] }; after?: { grid: number[]; density: number[] } } = {};
      for (const M of [1e2, 1e4]) {
        ctx.progress(`sharpen to ${M}, dense Hessian, Hutch++ and Lanczos`);
        const s = await sharpen(f, p.theta, { minTopEigenvalue: M, seed: ctx.seed });
        const d = alphaScaleDiagonal(p.spec, s.alphas);
        const predictedTrace = diag0.reduce((acc, h, i) => acc + h / (d[i] * d[i]), 0);
        const t = f.space.fromArray(s.theta);
        try {
          const h = await denseHessian(f, t);
          const eig = symmetricEigen(h, n).values;
          let exactTrace = 0;
          for (let i = 0; i < n; i++) exactTrace += h[i * n + i];
          const op = hessianOperator(f, t);
          const tr = isControl(ctx, HUTCHINSON_CONTROL.id)
            ? await hutchinsonTrace(op, { samples: 4, seed: ctx.seed })
            : await hutchPlusPlusTrace(op, { matvecs: ctx.quick ? 45 : 99, seed: ctx.seed });
          const top = await claimTopEigenvalue(ctx, f, t, ctx.seed + 6);
          rows.push({
            target: M, trace: tr.estimate, stderr: tr.stderr, exactTrace, predictedTrace, topEigenvalue: top,
            denseTopEigenvalue: eig[n - 1], denseSmallestEigenvalue: eig[0],
            traceError: Math.abs(tr.estimate - exactTrace) / exactTrace, lawError: Math.abs(predictedTrace - exactTrace) / exactTrace,
          });
          if (M === 1e2 && !ctx.control) {
            const runs = ctx.quick ? 3 : 6;
            const steps = ctx.quick ? 30 : 60;
            const before = await spectralDensity(hessianOperator(f, t0), { runs, steps, seed: ctx.seed, gridPoints: 300 });
            const after = await spectralDensity(op, { runs, steps, seed: ctx.seed, gridPoints: 300 });
            density = { before, after };
          }
        } finally {
          f.space.dispose(t);
        }
      }
      const eig0 = symmetricEigen(h0, n).values;
      return { rows, density, minimum: { smallest: eig0[0], largest: eig0[n - 1] } };
    });
    const traceTol = 0.015; // Hutch++ on the sharpened Hessian: its outliers are in the sketch
    const lawTol = isF32(ctx) ? 1e-3 : 1e-8;
    const psd = r.minimum.smallest >= -1e-6 * r.minimum.largest && r.rows.every((x) => x.denseSmallestEigenvalue >= -1e-6 * x.denseTopEigenvalue);
    const pass = psd && r.rows.every((x) =>
      x.traceError <= traceTol && x.lawError <= lawTol && x.topEigenvalue >= x.target &&
      Math.abs(x.topEigenvalue - x.denseTopEigenvalue) <= 1e-3 * x.denseTopEigenvalue && x.trace >= x.topEigenvalue
    );
    const plots: PlotSpec[] = r.density.before ? [{
      id: "density",
      title: "Hessian spectral density (SLQ) before and after sharpening to M = 100",
      xLabel: "eigenvalue",
      yLabel: "density",
      yLog: true,
      series: [
        { name: "theta (teacher minimum)", x: r.density.before.grid, y: r.density.before.density },
        { name: "T_alpha(theta), same function", x: r.density.after!.grid, y: r.density.after!.density },
      ],
    }] : [];
    return {
      measured: `smallest eigenvalue at the minimum ${fmt(r.minimum.smallest)} (largest ${fmt(r.minimum.largest)}); ` + r.rows.map((x) =>
        `M ${fmt(x.target)}: trace ${fmt(x.trace, 4)} ± ${fmt(x.stderr)} vs exact ${fmt(x.exactTrace, 4)} (error ${fmt(x.traceError)}), scaling law ${fmt(x.predictedTrace, 4)} (error ${fmt(x.lawError)}), ` +
        `lambda_max ${fmt(x.topEigenvalue, 4)} (dense ${fmt(x.denseTopEigenvalue, 4)})`
      ).join("; "),
      expected: `H PSD (dense spectrum); Hutch++ within ${traceTol * 100}% of the exact trace; exact trace = sum_i H_ii(theta) / d_i^2 to ${lawTol}; trace >= lambda_max >= M, lambda_max (Lanczos) equal to the dense one to 1e-3`,
      pass,
      details: { parameters: n, minimumSpectrum: r.minimum, rows: r.rows },
      plots,
    };
  },
};

export const sharpenTheorem5: Claim = {
  id: 7,
  claim: "Theorem 5: at least r - min_k n_k Hessian eigenvalues above M for a deep net",
  controls: [{ id: "lanczos-early", breaks: "the eigenvalues above M are re-counted by a Lanczos stopped after guaranteedCount - 1 steps" }],
  async run(ctx) {
    const p = await teacherProblem(mlpSpec([3, 6, 6, 2], { bias: false }), 48, ctx.seed + 71);
    const M = 1e3;
    const r = await withObjective(ctx, p.spec, p.data, "mse", [], async (f) => {
      const c = await sharpenCount(f, p.theta, { threshold: M, seed: ctx.seed });
      // Re-counted here: the top Ritz values of a fresh Lanczos at theta' (all of them converge on 66 parameters).
      const early = isControl(ctx, "lanczos-early");
      const k = early ? Math.max(1, c.guaranteedCount - 1) : Math.min(f.space.dim, c.guaranteedCount + 4);
      const ritz = await withVectors(f, [c.theta], ([t]) =>
        lanczosEigenpairs(hessianOperator(f, t), { k, seed: ctx.seed + 7, tol: 1e-8, maxSteps: early ? k : f.space.dim })
      );
      return { ...c, recount: ritz.eigenvalues.filter((e) => e > M).length };
    });
    const tol = outputTolerance(ctx);
    return {
      measured: `${r.recount} eigenvalues above ${fmt(M)} by Lanczos (sharpenCount's ${r.method} count ${r.countAbove}; was ${r.originalCountAbove}); r = ${r.rank}, min_k n_k = ${r.unamplified}, guaranteed ${r.guaranteedCount}; outputs ${fmt(r.functionCheck.relativeDifference)}`,
      expected: `>= r - min_k n_k = ${r.guaranteedCount} (both counts), outputs equal to ${tol}`,
      pass: r.recount >= r.guaranteedCount && r.countAbove >= r.guaranteedCount && r.guaranteedCount > 0 && r.functionCheck.relativeDifference <= tol,
      details: { threshold: M, alphas: r.alphas, rank: r.rank, unamplified: r.unamplified, guaranteed: r.guaranteedCount, countAbove: r.countAbove, lanczosCount: r.recount, originalCountAbove: r.originalCountAbove, method: r.method },
    };
  },
};

/** The best constant function's mse on a dataset: the mean over N x C of (y - mean of its column)^2. */
function constantFunctionLoss(targets: Float32Array, n: number): number {
  const C = targets.length / n;
  let total = 0;
  for (let c = 0; c < C; c++) {
    let mean = 0;
    for (let s = 0; s < n; s++) mean += targets[s * C + c];
    mean /= n;
    for (let s = 0; s < n; s++) total += (targets[s * C + c] - mean) ** 2;
  }
  return total / (n * C);
}

/** The negative control of a perturbation allowed out of its set. */
const LEAVE_BALL_CONTROL: NegativeControl = {
  id: "leaves-ball",
  breaks: "the ascent projects onto the ball (and box) of 3 eps instead of eps, so its perturbation may leave the set",
};

/** The negative control without T_alpha. */
const NO_TRANSFORM_CONTROL: NegativeControl = {
  id: "no-transform",
  breaks: "the ascent runs at theta itself instead of T_alpha(theta) (alpha = 1)",
};

export const epsilonFullSpace: Claim = {
  id: 8,
  claim: "Section 4.3: at T_alpha(theta) the epsilon-sharpness (l2 ball, and Keskar's full-space box) found by ascent reaches the best constant function's loss",
  controls: [LEAVE_BALL_CONTROL, NO_TRANSFORM_CONTROL],
  async run(ctx) {
    const p = await teacherProblem(teacherSpec("shallow"), 128, ctx.seed + 81);
    const epsilon = 0.05;
    const steps = ctx.quick ? 12 : 25;
    const starts = 2;
    const widen = isControl(ctx, LEAVE_BALL_CONTROL.id) ? 3 : 1;
    // The paper's bound: (L_const - L) / (1 + L), L_const the best constant function's loss (the
    // mean of the targets predicted everywhere), computed from the data, not from the construction.
    const constantLoss = constantFunctionLoss(p.data.targets!, p.data.n);
    const r = await withObjective(ctx, p.spec, p.data, "mse", [], async (f) => {
      // T_alpha with alpha_1 = eps / (2 ||W_1||): the construction's (its explicit point is not used).
      const c = await epsilonSharpnessConstruction(f, p.theta, { epsilon, layer: 0, shrink: 2 });
      const centre = isControl(ctx, NO_TRANSFORM_CONTROL.id) ? p.theta : c.theta;
      const base = await withVectors(f, [centre], ([t]) => f.loss(t));
      const n = centre.length;
      ctx.progress(`ascent in the l2 ball of radius ${epsilon}`);
      const ball = await projectedAscent(f, {
        dim: n, radius: epsilon, point: (z) => centre.map((x, i) => x + z[i]), pull: (g) => g, project: ballProjection(widen * epsilon),
      }, { steps, starts, seed: ctx.seed + 82 });
      ctx.progress(`ascent in Keskar's box |delta_i| <= ${epsilon} (|theta_i| + 1)`);
      const half = centre.map((x) => epsilon * (Math.abs(x) + 1));
      const box = await projectedAscent(f, {
        dim: n, radius: epsilon, point: (z) => centre.map((x, i) => x + z[i]), pull: (g) => g, project: boxProjection(half.map((h) => widen * h)),
      }, { steps, starts, seed: ctx.seed + 83 });
      const boxExcess = Math.max(...box.z.map((v, i) => Math.abs(v) / half[i]));
      return { c, base, ball, ballNorm: Math.hypot(...ball.z), box, boxExcess };
    });
    const bound = (constantLoss - r.base) / (1 + r.base);
    const dinh = (r.ball.maxLoss - r.base) / (1 + r.base);
    const keskar = (100 * (r.box.maxLoss - r.base)) / (1 + r.base);
    const inBall = r.ballNorm <= epsilon * (1 + 1e-9);
    const inBox = r.boxExcess <= 1 + 1e-9;
    const pass = bound > 0 && inBall && inBox && dinh >= bound * (1 - 1e-3) && keskar >= 100 * bound * (1 - 1e-3);
    return {
      measured: `at ${isControl(ctx, NO_TRANSFORM_CONTROL.id) ? "theta" : "T_alpha(theta)"}: epsilon-sharpness (eps ${epsilon}) by ascent ${fmt(dinh)} with ||delta|| ${fmt(r.ballNorm)}; ` +
        `Keskar full-space box ${fmt(keskar)} with max |delta_i| / (eps (|theta_i| + 1)) ${fmt(r.boxExcess)}; bound (L_const - L) / (1 + L) ${fmt(bound)} (x100 for Keskar)`,
      expected: `ascent >= bound (to 1e-3) with ||delta|| <= eps, and Keskar's >= 100 bound with delta in the box`,
      pass,
      details: {
        epsilon, steps, starts, constantFunctionLoss: constantLoss, baseLoss: r.base, bound,
        ascentValue: dinh, perturbationNorm: r.ballNorm, keskarValue: keskar, boxRatio: r.boxExcess,
        alphas: r.c.alphas, constructionLayerConstantLoss: r.c.constantLoss, relativeOutputDifference: r.c.functionCheck.relativeDifference,
        evaluations: r.ball.evaluations + r.box.evaluations,
      },
    };
  },
};

/** Orthonormal columns (Gram-Schmidt) of seeded Gaussian vectors; `avoid` (0/1 mask) zeroes those coordinates first. */
function randomBasis(n: number, p: number, seed: number, avoid?: Float64Array): Float64Array[] {
  const rng = new Rng(seed);
  const cols: Float64Array[] = [];
  while (cols.length < p) {
    const v = Float64Array.from(rng.normals(n), (x, i) => (avoid && avoid[i] ? 0 : x));
    for (const c of cols) {
      let d = 0;
      for (let i = 0; i < n; i++) d += c[i] * v[i];
      for (let i = 0; i < n; i++) v[i] -= d * c[i];
    }
    const norm = Math.hypot(...v);
    cols.push(v.map((x) => x / norm));
  }
  return cols;
}

export const epsilonSubspace: Claim = {
  id: 9,
  claim: "Random-subspace epsilon-sharpness (p much smaller than n) at T_alpha(theta) reaches the constant-function bound as alpha grows (thesis)",
  controls: [{ id: "subspace-avoids-layer", breaks: "the 'random' subspace has no component on the shrunk layer's weights and biases" }],
  async run(ctx) {
    const p = await teacherProblem(teacherSpec("shallow"), 96, ctx.seed + 91);
    const epsilon = 0.05;
    const dim = 2;
    const n = p.theta.length;
    const shrinks = ctx.control ? [1000] : [1, 10, 100, 1000];
    const layout = parameterLayout(p.spec);
    const layer0 = new Float64Array(n);
    for (const v of layout.views) if (v.layer === 0) layer0.fill(1, v.offset, v.offset + v.size);
    const basis = randomBasis(n, dim, ctx.seed + 92, isControl(ctx, "subspace-avoids-layer") ? layer0 : undefined);
    const constantLoss = constantFunctionLoss(p.data.targets!, p.data.n);
    const w0 = layout.views.find((v) => v.layer === 0 && v.role === "weight")!;
    const w0Norm = Math.hypot(...p.theta.subarray(w0.offset, w0.offset + w0.size));
    const rows = await withObjective(ctx, p.spec, p.data, "mse", [], async (f) => {
      const out = [];
      for (const shrink of shrinks) {
        // T_alpha with alpha_1 = eps / (shrink ||W_1||): the first layer shrunk, the second grown.
        const a = epsilon / (shrink * w0Norm);
        const centre = homogeneousAlphaScale(p.spec, p.theta, endAlphas(2, a));
        const base = await withVectors(f, [centre], ([t]) => f.loss(t));
        const point = (z: Float64Array) => {
          const x = Float64Array.from(centre);
          for (let j = 0; j < dim; j++) for (let i = 0; i < n; i++) x[i] += z[j] * basis[j][i];
          return x;
        };
        const pull = (g: Float64Array) => Float64Array.from(basis, (c) => c.reduce((acc, v, i) => acc + v * g[i], 0));
        const best = await projectedAscent(f, { dim, radius: epsilon, point, pull, project: ballProjection(epsilon) }, { steps: ctx.quick ? 10 : 20, starts: 3, seed: ctx.seed + 93 });
        const bound = (constantLoss - base) / (1 + base);
        out.push({ shrink, alpha1: a, bound, value: (best.maxLoss - base) / (1 + base), norm: Math.hypot(...best.z) });
      }
      return out;
    });
    const last = rows.at(-1)!;
    const inBall = rows.every((r) => r.norm <= epsilon * (1 + 1e-9));
    return {
      measured: `subspace epsilon-sharpness by ascent (p = ${dim} of n = ${n}, eps ${epsilon}): ${rows.map((r) => `${fmt(r.value)} at 1/alpha_1 = ${fmt(r.shrink * w0Norm / epsilon)}`).join(", ")}; bound ${fmt(last.bound)}`,
      expected: "at the largest alpha the subspace maximum (||z|| <= eps) is at least the bound (to 1%)",
      pass: inBall && last.value >= 0.99 * last.bound && last.bound > 0,
      details: { epsilon, subspaceDim: dim, parameters: n, constantFunctionLoss: constantLoss, rows },
      plots: ctx.control ? [] : [{
        id: "subspace-gap",
        title: `Random-subspace epsilon-sharpness (p = ${dim}) along the T_alpha orbit`,
        xLabel: "1 / alpha_1",
        yLabel: "epsilon-sharpness (ascent)",
        xLog: true,
        yLog: true,
        series: [
          { name: "subspace maximum", x: rows.map((r) => r.shrink * w0Norm / epsilon), y: rows.map((r) => Math.max(r.value, 1e-12)) },
          { name: "constant-function bound", x: rows.map((r) => r.shrink * w0Norm / epsilon), y: rows.map((r) => r.bound) },
        ],
      }],
    };
  },
};

export const secondOrder: Claim = {
  id: 10,
  claim: "For small eps, epsilon-sharpness matches ||H||_2 eps^2 / (2(1 + L))",
  controls: [{ id: "no-cross-layer", breaks: "lambda_max of a Hessian without its cross-layer blocks (sum_k M_k H M_k)" }],
  async run(ctx) {
    const p = await teacherProblem(teacherSpec("shallow"), 128, ctx.seed + 101);
    const epsilons = [1e-3, 3e-3];
    const rows = await withObjective(ctx, p.spec, p.data, "mse", [p.theta], async (f, [t]) => {
      const g = isControl(ctx, "no-cross-layer") ? blockDiagonalHvp(f) : f;
      const lambda = (await lanczosEigenpairs(hessianOperator(g, t), { k: 1, seed: ctx.seed, tol: 1e-7 })).eigenvalues[0];
      const out = [];
      for (const epsilon of epsilons) {
        const e = await epsilonSharpness(f, t, { kind: "dinh", epsilon, seed: ctx.seed, topEigenvalue: lambda, steps: 30 });
        out.push({ epsilon, value: e.value, secondOrder: e.secondOrderEstimate!, ratio: e.value / e.secondOrderEstimate! });
      }
      return out;
    });
    const worst = Math.max(...rows.map((r) => Math.abs(r.ratio - 1)));
    return {
      measured: rows.map((r) => `eps ${r.epsilon}: ${fmt(r.value, 4)} vs ${fmt(r.secondOrder, 4)} (ratio ${fmt(r.ratio, 4)})`).join("; "),
      expected: "ratio within 5% of 1 (the loss of a ReLU net with mse is quadratic near a minimum away from kinks)",
      pass: worst <= 0.05,
      details: { rows },
    };
  },
};
