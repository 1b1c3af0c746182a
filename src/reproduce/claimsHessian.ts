/**
 * Claims 5-10 of `flatness reproduce`: the Hessian and epsilon-sharpness results (Dinh et al.
 * 2017, sections 4.2-4.3, Theorems 4 and 5; the thesis' random-subspace argument).
 */
import { spectralDensity } from "../metrics/density.ts";
import { hessianOperator } from "../metrics/operator.ts";
import { epsilonSharpness } from "../metrics/sharpness.ts";
import { lanczosEigenpairs } from "../metrics/spectrum.ts";
import { hutchPlusPlusTrace } from "../metrics/trace.ts";
import { mlpSpec } from "../model.ts";
import { type Objective, withVectors } from "../objective.ts";
import { homogeneousAlphaScale } from "../transforms/alphaScale.ts";
import { topEigenvalue as lanczosTop } from "../transforms/constructionSupport.ts";
import { epsilonSharpnessConstruction } from "../transforms/epsilonConstruction.ts";
import { sharpen, sharpenCount } from "../transforms/sharpen.ts";
import type { PlotSpec } from "./html.ts";
import { type Claim, endAlphas, fmt, teacherProblem, teacherSpec, withObjective, isF32 } from "./context.ts";

/** lambda_max(H) at a host theta: the constructions' Lanczos estimate (tol 1e-6). */
function topEigenvalue(f: Objective<unknown>, theta: Float64Array, seed: number): Promise<number> {
  return withVectors(f, [theta], ([t]) => lanczosTop(f, t, { seed, lanczosTol: 1e-6 }));
}

export const sharpenTheorem4: Claim = {
  id: 5,
  claim: "Theorem 4: an observationally equivalent model with Hessian spectral norm >= M, for M = 1e2, 1e4, 1e6",
  async run(ctx) {
    const p = await teacherProblem(teacherSpec("deep"), 128, ctx.seed + 51);
    const targets = [1e2, 1e4, 1e6];
    const r = await withObjective(ctx, p.spec, p.data, "mse", [], async (f) => {
      const rows = [];
      for (const M of targets) {
        ctx.progress(`sharpen to ${M}`);
        const s = await sharpen(f, p.theta, { minTopEigenvalue: M, seed: ctx.seed });
        rows.push({ target: M, topEigenvalue: s.topEigenvalue, layer: s.layer, alphas: s.alphas, relativeOutputDifference: s.functionCheck.relativeDifference, theta: s.theta });
      }
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
    const tol = isF32(ctx) ? 1e-5 : 1e-10;
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
      measured: r.rows.map((x) => `M ${fmt(x.target)}: lambda_max ${fmt(x.topEigenvalue, 4)}, outputs ${fmt(x.relativeOutputDifference)}`).join("; "),
      expected: `lambda_max >= M with outputs equal to ${tol} relative`,
      pass,
      details: { rows: r.rows.map(({ theta: _t, ...x }) => x), sweep: r.sweep },
      plots,
    };
  },
};

export const traceFollows: Claim = {
  id: 6,
  claim: "The trace follows: at a minimum the Hessian is positive semi-definite, so its trace is at least its spectral norm",
  async run(ctx) {
    const p = await teacherProblem(teacherSpec("deep"), 128, ctx.seed + 61);
    const r = await withObjective(ctx, p.spec, p.data, "mse", [], async (f) => {
      const rows = [];
      let density: { before?: { grid: number[]; density: number[] }; after?: { grid: number[]; density: number[] } } = {};
      for (const M of [1e2, 1e4]) {
        const s = await sharpen(f, p.theta, { minTopEigenvalue: M, seed: ctx.seed });
        const t = f.space.fromArray(s.theta);
        try {
          const op = hessianOperator(f, t);
          const tr = await hutchPlusPlusTrace(op, { matvecs: ctx.quick ? 45 : 99, seed: ctx.seed });
          rows.push({ target: M, topEigenvalue: s.topEigenvalue, trace: tr.estimate, stderr: tr.stderr });
          if (M === 1e2) {
            const runs = ctx.quick ? 3 : 10;
            const steps = ctx.quick ? 30 : 80;
            const base = f.space.fromArray(p.theta);
            try {
              const before = await spectralDensity(hessianOperator(f, base), { runs, steps, seed: ctx.seed, gridPoints: 300 });
              const after = await spectralDensity(op, { runs, steps, seed: ctx.seed, gridPoints: 300 });
              density = { before, after };
            } finally {
              f.space.dispose(base);
            }
          }
        } finally {
          f.space.dispose(t);
        }
      }
      return { rows, density };
    });
    const pass = r.rows.every((x) => x.trace + 3 * x.stderr >= x.topEigenvalue);
    return {
      measured: r.rows.map((x) => `M ${fmt(x.target)}: trace ${fmt(x.trace, 4)} ± ${fmt(x.stderr)} vs lambda_max ${fmt(x.topEigenvalue, 4)}`).join("; "),
      expected: "trace (Hutch++, within 3 standard errors) >= lambda_max >= M",
      pass,
      details: { rows: r.rows },
      plots: [{
        id: "density",
        title: "Hessian spectral density (SLQ) before and after sharpening to M = 100",
        xLabel: "eigenvalue",
        yLabel: "density",
        yLog: true,
        series: [
          { name: "theta (teacher minimum)", x: r.density.before!.grid, y: r.density.before!.density },
          { name: "T_alpha(theta), same function", x: r.density.after!.grid, y: r.density.after!.density },
        ],
      }],
    };
  },
};

export const sharpenTheorem5: Claim = {
  id: 7,
  claim: "Theorem 5: at least r - min_k n_k Hessian eigenvalues above M for a deep net",
  async run(ctx) {
    const p = await teacherProblem(mlpSpec([3, 6, 6, 2], { bias: false }), 48, ctx.seed + 71);
    const M = 1e3;
    const r = await withObjective(ctx, p.spec, p.data, "mse", [], (f) => sharpenCount(f, p.theta, { threshold: M, seed: ctx.seed }));
    const tol = isF32(ctx) ? 1e-5 : 1e-10;
    return {
      measured: `${r.countAbove} eigenvalues above ${fmt(M)} (was ${r.originalCountAbove}); r = ${r.rank}, min_k n_k = ${r.unamplified}, guaranteed ${r.guaranteedCount}; outputs ${fmt(r.functionCheck.relativeDifference)}`,
      expected: `>= r - min_k n_k = ${r.guaranteedCount}, outputs equal to ${tol}`,
      pass: r.countAbove >= r.guaranteedCount && r.guaranteedCount > 0 && r.functionCheck.relativeDifference <= tol,
      details: { threshold: M, alphas: r.alphas, rank: r.rank, unamplified: r.unamplified, guaranteed: r.guaranteedCount, countAbove: r.countAbove, originalCountAbove: r.originalCountAbove, method: r.method },
    };
  },
};

export const epsilonFullSpace: Claim = {
  id: 8,
  claim: "Full-space epsilon-sharpness reaches the best-constant-function bound (section 4.3)",
  async run(ctx) {
    const p = await teacherProblem(teacherSpec("shallow"), 128, ctx.seed + 81);
    const epsilon = 0.05;
    const r = await withObjective(ctx, p.spec, p.data, "mse", [], async (f) => {
      const c = await epsilonSharpnessConstruction(f, p.theta, { epsilon });
      const t = f.space.fromArray(c.theta);
      const base = f.space.fromArray(p.theta);
      try {
        const after = await epsilonSharpness(f, t, { kind: "dinh", epsilon, seed: ctx.seed, steps: ctx.quick ? 20 : 40 });
        const before = await epsilonSharpness(f, base, { kind: "dinh", epsilon, seed: ctx.seed, steps: ctx.quick ? 20 : 40 });
        return { c, after: after.value, before: before.value };
      } finally {
        f.space.dispose(t);
        f.space.dispose(base);
      }
    });
    const best = Math.max(r.after, r.c.reachedValue);
    return {
      measured: `epsilon-sharpness (eps ${epsilon}) ${fmt(r.before)} at theta, ${fmt(best)} at T_alpha(theta) (ascent ${fmt(r.after)}, explicit point ${fmt(r.c.reachedValue)}); bound ${fmt(r.c.bound)}`,
      expected: "at T_alpha(theta): >= (L(constant) - L) / (1 + L), the bound",
      pass: best >= r.c.bound * (1 - 1e-4) && r.c.bound > 0,
      details: { epsilon, layer: r.c.layer, alphas: r.c.alphas, bound: r.c.bound, reachedValue: r.c.reachedValue, ascentValue: r.after, valueAtTheta: r.before, relativeOutputDifference: r.c.functionCheck.relativeDifference },
    };
  },
};

export const epsilonSubspace: Claim = {
  id: 9,
  claim: "Random-subspace epsilon-sharpness tends to the constant-function bound as alpha grows (thesis)",
  async run(ctx) {
    const p = await teacherProblem(mlpSpec([3, 5, 2]), 96, ctx.seed + 91);
    const epsilon = 0.05;
    const shrinks = [1, 10, 100, 1000];
    const rows = await withObjective(ctx, p.spec, p.data, "mse", [], async (f) => {
      const out = [];
      for (const shrink of shrinks) {
        const c = await epsilonSharpnessConstruction(f, p.theta, { epsilon, layer: 0, subspaceDim: 24, shrink, seed: ctx.seed });
        out.push({ shrink, bound: c.bound, reached: c.subspace!.reachedValue, gap: c.bound - c.subspace!.reachedValue });
      }
      return out;
    });
    const decreasing = rows.every((r, i) => i === 0 || Math.abs(r.gap) <= Math.abs(rows[i - 1].gap) * 1.01);
    const last = rows.at(-1)!;
    return {
      measured: `gap to the bound ${rows.map((r) => fmt(r.gap)).join(", ")} for 1/alpha_1 = ${shrinks.join(", ")} (p = 24 of ${p.theta.length})`,
      expected: "the gap falls towards 0 as alpha_1 shrinks (below 1% of the bound at the end)",
      pass: decreasing && Math.abs(last.gap) <= 0.01 * Math.abs(last.bound),
      details: { epsilon, subspaceDim: 24, rows },
      plots: [{
        id: "subspace-gap",
        title: "Random-subspace epsilon-sharpness: gap to the constant-function bound",
        xLabel: "1 / alpha_1",
        yLabel: "bound - reached",
        xLog: true,
        yLog: true,
        series: [{ name: "gap", x: rows.map((r) => r.shrink), y: rows.map((r) => Math.abs(r.gap)) }],
      }],
    };
  },
};

export const secondOrder: Claim = {
  id: 10,
  claim: "For small eps, epsilon-sharpness matches ||H||_2 eps^2 / (2(1 + L))",
  async run(ctx) {
    const p = await teacherProblem(teacherSpec("shallow"), 128, ctx.seed + 101);
    const epsilons = [1e-3, 3e-3];
    const rows = await withObjective(ctx, p.spec, p.data, "mse", [p.theta], async (f, [t]) => {
      const lambda = (await lanczosEigenpairs(hessianOperator(f, t), { k: 1, seed: ctx.seed, tol: 1e-7 })).eigenvalues[0];
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
