/**
 * Claims 1-4 of `flatness reproduce`: what T_alpha does (Dinh et al. 2017, sections 3 and 4.1,
 * Appendix B, and the thesis' Lipschitz remark).
 *  1. Non-negative homogeneity: outputs identical under T_alpha, one hidden layer and deep, biases.
 *  2. grad L(T theta) = D^-1 grad L(theta) and H(T theta) = D^-1 H D^-1 (our theta' = D theta).
 *  3. The gradient norm grows without bound as alpha_1 -> 0 (the loss is not Lipschitz on the orbit).
 *  4. Volume epsilon-flatness grows without bound along the orbit (Theorem 2): the sublevel set
 *     around D theta is D times the one around theta, so its volume grows as |det D|.
 */
import { logUnitBallVolume, volumeFlatness } from "../metrics/volume.ts";
import { layerGradientNorms } from "../metrics/sensitivity.ts";
import { Rng } from "../random.ts";
import { alphaScaleDiagonal, homogeneousAlphaScale } from "../transforms/alphaScale.ts";
import { logVolumeFactor } from "../transforms/flatten.ts";
import { mlpSpec } from "../model.ts";
import {
  type Claim,
  endAlphas,
  fmt,
  identityTolerance,
  normwiseDifference,
  randomAlphas,
  relativeDifference,
  teacherProblem,
  teacherSpec,
  withObjective, isF32 } from "./context.ts";

export const observationalEquivalence: Claim = {
  id: 1,
  claim: "Non-negative homogeneity: T_alpha keeps every output (one hidden layer and deep, with biases scaled as Appendix B)",
  async run(ctx) {
    const rows = [];
    let loss: { a: number; distance: number; loss: number; randomDirectionLoss: number }[] = [];
    for (const depth of ["shallow", "deep"] as const) {
      const p = await teacherProblem(teacherSpec(depth), 128, ctx.seed + 11);
      const alphas = randomAlphas(p.spec.layers.length, ctx.seed + 12);
      const moved = homogeneousAlphaScale(p.spec, p.theta, alphas);
      const orbit = [1e-2, 1e-1, 1, 10, 100];
      const r = await withObjective(ctx, p.spec, p.data, "mse", [p.theta, moved], async (f, [t, m]) => {
        const before = await f.outputs(t);
        const after = await f.outputs(m);
        // The loss along the orbit, and along a random direction at the same distance from theta.
        const u = new Rng(ctx.seed + 13).normals(p.theta.length);
        const uNorm = Math.hypot(...u);
        const losses = [];
        for (const a of orbit) {
          const onOrbit = homogeneousAlphaScale(p.spec, p.theta, endAlphas(p.spec.layers.length, a));
          const distance = Math.hypot(...onOrbit.map((x, i) => x - p.theta[i]));
          const random = p.theta.map((x, i) => x + (distance * u[i]) / uNorm);
          const vs = [f.space.fromArray(onOrbit), f.space.fromArray(random)];
          try {
            losses.push({ a, distance, loss: await f.loss(vs[0]), randomDirectionLoss: await f.loss(vs[1]) });
          } finally {
            vs.forEach((v) => f.space.dispose(v));
          }
        }
        return { difference: relativeDifference(after, before), losses };
      });
      if (depth === "deep") loss = r.losses;
      rows.push({ depth, layers: p.spec.layers.length, alphas, relativeOutputDifference: r.difference });
    }
    const worst = Math.max(...rows.map((r) => r.relativeOutputDifference));
    const tol = isF32(ctx) ? 1e-5 : 1e-12;
    return {
      measured: `max relative output difference ${fmt(worst)} (1 hidden layer: ${fmt(rows[0].relativeOutputDifference)}, 4 layers: ${fmt(rows[1].relativeOutputDifference)})`,
      expected: `<= ${tol} (${isF32(ctx) ? "f32" : "float64"} rounding)`,
      pass: worst <= tol,
      details: { nets: rows, lossAlongOrbit: loss },
      plots: [{
        id: "orbit-loss",
        title: "Loss along the T_alpha orbit (deep teacher net at its minimum)",
        xLabel: "alpha_1 (alpha_K = 1/alpha_1)",
        yLabel: "loss",
        xLog: true,
        yLog: true,
        series: [
          { name: "L(T_alpha theta)", x: loss.map((l) => l.a), y: loss.map((l) => l.loss) },
          { name: "L at the same distance along a random direction", x: loss.map((l) => l.a), y: loss.map((l) => l.randomDirectionLoss) },
        ],
        caption: "Every point of the orbit is the same function: the loss stays at its minimum (f32 rounding, ~1e-14) however far T_alpha moves theta.",
      }],
    };
  },
};

export const gradientHessianScaling: Claim = {
  id: 2,
  claim: "Gradient and Hessian under T_alpha: grad L(D theta) = D^-1 grad L(theta), H(D theta) = D^-1 H(theta) D^-1",
  async run(ctx) {
    const p = await teacherProblem(teacherSpec("deep"), 96, ctx.seed + 21);
    // Move off the minimum so the gradient is not zero.
    const rng = new Rng(ctx.seed + 22);
    const theta = p.theta.map((t) => t + 0.3 * rng.normal());
    const alphas = randomAlphas(p.spec.layers.length, ctx.seed + 23);
    const d = alphaScaleDiagonal(p.spec, alphas);
    const moved = theta.map((t, i) => t * d[i]);
    const v = new Rng(ctx.seed + 24).normals(theta.length);
    const vScaled = v.map((x, i) => x * d[i]);
    const r = await withObjective(ctx, p.spec, p.data, "mse", [theta, moved, v, vScaled], async (f, [t, m, vv, vs]) => {
      const s = f.space;
      const g = s.zeros(), gm = s.zeros(), hv = s.zeros(), hmv = s.zeros();
      try {
        await f.gradient(t, g);
        await f.gradient(m, gm);
        await f.hvp(t, vv, hv);
        await f.hvp(m, vs, hmv); // H(D theta) D v  should equal  D^-1 H(theta) v
        const [G, GM, HV, HMV] = await Promise.all([g, gm, hv, hmv].map((x) => s.toArray(x)));
        return {
          gradient: normwiseDifference(GM, G.map((x, i) => x / d[i])),
          hessian: normwiseDifference(HMV, HV.map((x, i) => x / d[i])),
        };
      } finally {
        for (const x of [g, gm, hv, hmv]) s.dispose(x);
      }
    });
    const tol = identityTolerance(ctx);
    return {
      measured: `relative error: gradient ${fmt(r.gradient)}, Hessian (through HVPs) ${fmt(r.hessian)}`,
      expected: `both <= ${tol}`,
      pass: r.gradient <= tol && r.hessian <= tol,
      details: { alphas, ...r },
    };
  },
};

export const notLipschitz: Claim = {
  id: 3,
  claim: "The loss is not Lipschitz: the gradient norm grows without bound as alpha_1 -> 0 (thesis)",
  async run(ctx) {
    const p = await teacherProblem(teacherSpec("shallow"), 96, ctx.seed + 31);
    const rng = new Rng(ctx.seed + 32);
    const theta = p.theta.map((t) => t + 0.3 * rng.normal());
    const scales = [1, 1e-1, 1e-2, 1e-3, 1e-4];
    const norms = await withObjective(ctx, p.spec, p.data, "mse", [], async (f) => {
      const out = [];
      for (const a of scales) {
        const t = f.space.fromArray(homogeneousAlphaScale(p.spec, theta, endAlphas(2, a)));
        try {
          const r = await layerGradientNorms(f, t);
          out.push({ alpha: a, norm: r.total, firstLayerWeight: r.layers[0].weight });
        } finally {
          f.space.dispose(t);
        }
      }
      return out;
    });
    // grad_{W_1} scales as 1/alpha_1 exactly: alpha * ||grad_{W_1}|| is constant along the orbit.
    const base = norms[0].firstLayerWeight;
    const worst = Math.max(...norms.map((n) => Math.abs(n.alpha * n.firstLayerWeight - base) / base));
    const growth = norms.at(-1)!.norm / norms[0].norm;
    const tol = isF32(ctx) ? 1e-3 : 1e-9;
    return {
      measured: `||grad L|| grows ${fmt(growth)}x from alpha_1 = 1 to 1e-4; alpha_1 ||grad_W1 L|| constant to ${fmt(worst)}`,
      expected: `growth >= 1e3 and ||grad_W1 L|| proportional to 1/alpha_1 (to ${tol})`,
      pass: growth >= 1e3 && worst <= tol,
      details: { norms },
      plots: [{
        id: "gradient-norm",
        title: "Gradient norm along the T_alpha orbit (same function)",
        xLabel: "alpha_1 (alpha_2 = 1/alpha_1)",
        yLabel: "||grad L||",
        xLog: true,
        yLog: true,
        series: [{ name: "||grad L||", x: norms.map((n) => n.alpha), y: norms.map((n) => n.norm) }],
      }],
    };
  },
};

export const volumeGrows: Claim = {
  id: 4,
  claim: "Volume epsilon-flatness grows without bound along the T_alpha orbit (Theorem 2)",
  async run(ctx) {
    // Theorem 2's argument: if the ball B_r(theta) lies in the epsilon-sublevel set, so does its
    // image D_alpha B_r(theta) (L(D x) = L(x)), and the orbit joins them into one connected set, so
    // vol C(L, theta, eps) >= |det D_alpha| vol(B_r), which has no bound in alpha. Here: r is the
    // shortest of the Monte-Carlo rays' exit radii at theta; the inclusion of D_alpha B_r is then
    // checked on the engine at fresh random points of its boundary sphere.
    // One hidden layer of 6 units on 2 inputs: |det D_alpha| = a^(12 + 6 - 6) = a^12.
    const spec = mlpSpec([2, 6, 1]);
    const p = await teacherProblem(spec, 64, ctx.seed + 41);
    const epsilon = 0.01;
    const scales = ctx.quick ? [1, 4, 16] : [1, 4, 16, 64, 256];
    const rays = ctx.quick ? 24 : 64;
    const probes = ctx.quick ? 32 : 128;
    const n = p.theta.length;
    const r = await withObjective(ctx, spec, p.data, "mse", [p.theta], async (f, [t]) => {
      const base = await f.loss(t);
      const v = await volumeFlatness(f, t, { epsilon, rays, seed: ctx.seed + 42 });
      const radius = 0.5 * Math.min(...v.radii); // half the shortest ray: a margin for the directions the rays missed
      const rng = new Rng(ctx.seed + 43);
      const rows = [];
      for (const a of scales) {
        const alphas = endAlphas(2, a);
        let worst = -Infinity;
        for (let j = 0; j < probes; j++) {
          const u = rng.normals(n);
          const norm = Math.hypot(...u);
          const x = p.theta.map((th, i) => th + (radius * u[i]) / norm);
          const point = f.space.fromArray(homogeneousAlphaScale(spec, x, alphas));
          try {
            worst = Math.max(worst, (await f.loss(point)) - base);
          } finally {
            f.space.dispose(point);
          }
        }
        const logDet = logVolumeFactor(spec, alphas);
        rows.push({ alpha: a, logDetD: logDet, logVolumeLowerBound: logDet + logUnitBallVolume(n) + n * Math.log(radius), worstLossIncrease: worst });
      }
      return { base, radius, starShapedLogVolume: v.logVolume, rows };
    });
    const inside = r.rows.every((x) => x.worstLossIncrease < epsilon);
    const growing = r.rows.every((x, i) => i === 0 || x.logVolumeLowerBound > r.rows[i - 1].logVolumeLowerBound);
    return {
      measured: `inscribed radius ${fmt(r.radius)}; log vol >= ${r.rows.map((x) => `${fmt(x.logVolumeLowerBound)} (alpha ${x.alpha})`).join(", ")}; ` +
        `largest loss increase on D_alpha(sphere) ${fmt(Math.max(...r.rows.map((x) => x.worstLossIncrease)))}`,
      expected: `D_alpha B_r inside the set (increase < eps = ${epsilon}) at every alpha, so log vol >= log|det D_alpha| + log vol(B_r) grows as 12 log alpha without bound`,
      pass: inside && growing,
      details: { epsilon, rays, probes, radius: r.radius, starShapedLogVolumeAtTheta: r.starShapedLogVolume, rows: r.rows },
      plots: [{
        id: "volume",
        title: "Volume epsilon-flatness along the T_alpha orbit: certified lower bound",
        xLabel: "alpha_1 (alpha_2 = 1/alpha_1)",
        yLabel: "log volume lower bound (natural log)",
        xLog: true,
        series: [{ name: "log|det D| + log vol(B_r)", x: r.rows.map((x) => x.alpha), y: r.rows.map((x) => x.logVolumeLowerBound) }],
        caption: "Every point of D_alpha B_r was checked to lie in the epsilon-sublevel set; the orbit connects them.",
      }],
    };
  },
};
