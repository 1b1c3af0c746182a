/**
 * Claims 1-4 of `flatness reproduce`: what T_alpha does (Dinh et al. 2017, sections 3 and 4.1,
 * Appendix B, and the thesis' Lipschitz remark).
 *  1. Non-negative homogeneity: outputs identical under T_alpha, one hidden layer and deep, biases.
 *  2. grad L(T theta) = D^-1 grad L(theta) and H(T theta) = D^-1 H D^-1 (our theta' = D theta).
 *  3. The gradient norm grows without bound as alpha_1 -> 0 (the loss is not Lipschitz on the orbit).
 *  4. Theorem 2: the epsilon-sublevel set has infinite volume: certified, pairwise disjoint
 *     translates T_alpha^k(B) of an L_inf box B, joined along the orbit, add up without bound.
 */
import { layerGradientNorms } from "../metrics/sensitivity.ts";
import { Rng } from "../random.ts";
import { alphaScaleDiagonal, homogeneousAlphaScale } from "../transforms/alphaScale.ts";
import { type ModelSpec, mlpSpec, parameterLayout } from "../model.ts";
import { type ParameterBox, boxAround, boxesDisjoint, logBoxVolume, mseUpperBound, pointInBox } from "./intervalBounds.ts";
import {
  type Claim,
  type ReproduceContext,
  endAlphas,
  fmt,
  identityTolerance,
  normwiseDifference,
  randomAlphas,
  relativeDifference,
  teacherProblem,
  teacherSpec,
  withObjective, isF32, BIAS_CONTROL, claimAlphaScale, isControl, singleAlphaBiasScale } from "./context.ts";

export const observationalEquivalence: Claim = {
  id: 1,
  claim: "Non-negative homogeneity: T_alpha keeps every output (one hidden layer and deep, with biases scaled as Appendix B)",
  controls: [BIAS_CONTROL],
  async run(ctx) {
    const rows = [];
    let loss: { a: number; distance: number; loss: number; randomDirectionLoss: number }[] = [];
    for (const depth of ["shallow", "deep"] as const) {
      const p = await teacherProblem(teacherSpec(depth), 128, ctx.seed + 11);
      const alphas = randomAlphas(p.spec.layers.length, ctx.seed + 12);
      const moved = claimAlphaScale(ctx, p.spec, p.theta, alphas);
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
  controls: [BIAS_CONTROL],
  async run(ctx) {
    const p = await teacherProblem(teacherSpec("deep"), 96, ctx.seed + 21);
    // Move off the minimum so the gradient is not zero.
    const rng = new Rng(ctx.seed + 22);
    const theta = p.theta.map((t) => t + 0.3 * rng.normal());
    const alphas = randomAlphas(p.spec.layers.length, ctx.seed + 23);
    const d = alphaScaleDiagonal(p.spec, alphas);
    const moved = isControl(ctx, BIAS_CONTROL.id) ? singleAlphaBiasScale(p.spec, theta, alphas) : theta.map((t, i) => t * d[i]);
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
  controls: [BIAS_CONTROL],
  async run(ctx) {
    const p = await teacherProblem(teacherSpec("shallow"), 96, ctx.seed + 31);
    const rng = new Rng(ctx.seed + 32);
    const theta = p.theta.map((t) => t + 0.3 * rng.normal());
    const scales = [1, 1e-1, 1e-2, 1e-3, 1e-4];
    const norms = await withObjective(ctx, p.spec, p.data, "mse", [], async (f) => {
      const out = [];
      for (const a of scales) {
        const t = f.space.fromArray(claimAlphaScale(ctx, p.spec, theta, endAlphas(2, a)));
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

/** The negative control of claim 4 whose translates overlap, so their volumes cannot be summed. */
const OVERLAP_CONTROL = {
  id: "overlapping-translates",
  breaks: "alpha of the translates T_alpha^k(B) taken a quarter of the way from 1 to (|theta|_inf + r') / (|theta|_inf - r') instead of the paper's 2 (|theta_1|_inf + r') / (|theta_1|_inf - r'), so the boxes overlap",
};

interface VolumeNet {
  name: string;
  spec: ModelSpec;
  /** alphas of T_alpha for a given alpha (product 1). */
  alphas: (a: number) => number[];
}

/**
 * One net of claim 4: the certified L_inf box B = B_inf(r', theta), its translates T_alpha^k(B)
 * (k = 0..m-1, boxes built from the per-coordinate scales, then certified by interval arithmetic and
 * sampled at independent uniform points on the engine), their pairwise disjointness, and a chain of
 * overlapping certified boxes along the orbit joining each translate to the next.
 */
async function volumeOfNet(ctx: ReproduceContext, net: VolumeNet, seed: number, epsilon: number, translates: number, probes: number) {
  const p = await teacherProblem(net.spec, 64, seed);
  const n = p.theta.length;
  const layout = parameterLayout(net.spec);
  const first = layout.views.find((v) => v.layer === 0 && v.role === "weight")!;
  const theta1Max = Math.max(...Array.from(p.theta.subarray(first.offset, first.offset + first.size), Math.abs));
  const base = await withObjective(ctx, net.spec, p.data, "mse", [p.theta], (f, [t]) => f.loss(t));
  // The largest certified r (bisection in log r): bound(B_inf(r, theta)) below L(theta) + eps / 2.
  const certified = (r: number) => mseUpperBound(net.spec, p.data, boxAround(p.theta, new Float64Array(n).fill(r))) < base + epsilon / 2;
  let lo = 1e-8, hi = theta1Max;
  for (let i = 0; i < 30; i++) {
    const mid = Math.sqrt(lo * hi);
    if (certified(mid)) lo = mid;
    else hi = mid;
  }
  const r = Math.min(lo, 0.5 * theta1Max);
  const paperAlpha = (2 * (theta1Max + r)) / (theta1Max - r);
  // The control: a quarter of the way to the alpha at which even the largest coordinate separates.
  const largest = p.theta.reduce((m, t) => Math.max(m, Math.abs(t)), 0);
  const alpha = isControl(ctx, OVERLAP_CONTROL.id) ? 1 + ((largest + r) / (largest - r) - 1) / 4 : paperAlpha;
  // The box T_a(B): centre D_a theta, half-widths D_a r (D_a: T_a's per-coordinate scales).
  const scaledBox = (a: number) => {
    const alphas = net.alphas(a);
    const centre = claimAlphaScale(ctx, net.spec, p.theta, alphas);
    return boxAround(centre, alphaScaleDiagonal(net.spec, alphas).map((d) => d * r));
  };
  const rng = new Rng(seed + 7);
  const boxes: { k: number; box: ParameterBox; logVolume: number; lossUpperBound: number; largestSampledLoss: number }[] = [];
  for (let k = 0; k < translates; k++) {
    const box = scaledBox(alpha ** k);
    const bound = mseUpperBound(net.spec, p.data, box);
    const points = Array.from({ length: probes }, () => pointInBox(box, Array.from({ length: n }, () => rng.uniform())));
    const sampled = await withObjective(ctx, net.spec, p.data, "mse", points, async (f, vs) => {
      let worst = -Infinity;
      for (const v of vs) worst = Math.max(worst, await f.loss(v));
      return worst;
    });
    boxes.push({ k, box, logVolume: logBoxVolume(box), lossUpperBound: bound, largestSampledLoss: sampled });
  }
  let disjoint = true;
  for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) disjoint &&= boxesDisjoint(boxes[i].box, boxes[j].box);
  // The chain: boxes at alpha^(k + j / J), J the fewest steps for which consecutive boxes overlap.
  let chainBoxes = 0, chainWorst = -Infinity, chainOverlaps = true;
  if (translates > 1) {
    const ratio = (largest + r) / (largest - r); // consecutive boxes overlap when their scales differ by less
    const steps = Math.min(4000, Math.ceil(Math.log(alpha) / Math.log(ratio)) + 1);
    let previous = boxes[0].box;
    for (let k = 0; k + 1 < translates; k++) {
      for (let j = 1; j <= steps; j++) {
        const box = j === steps ? boxes[k + 1].box : scaledBox(alpha ** (k + j / steps));
        chainOverlaps &&= !boxesDisjoint(previous, box);
        chainWorst = Math.max(chainWorst, j === steps ? boxes[k + 1].lossUpperBound : mseUpperBound(net.spec, p.data, box));
        chainBoxes++;
        previous = box;
      }
    }
  }
  // Disjoint boxes add up: the volume lower bound after the first m translates.
  const logLower = boxes.map((_, m) => logSumExp(boxes.slice(0, m + 1).map((b) => b.logVolume)));
  const limit = base + epsilon;
  const certifiedAll = boxes.every((b) => b.lossUpperBound < limit) && chainWorst < limit;
  const sampledInside = boxes.every((b) => b.largestSampledLoss < limit && b.largestSampledLoss <= b.lossUpperBound * (1 + 1e-3) + 1e-6);
  return {
    name: net.name,
    parameters: n,
    baseLoss: base,
    radius: r,
    alpha,
    paperAlpha,
    translates: boxes.map(({ box: _b, ...x }) => x),
    disjoint,
    chainBoxes,
    chainOverlaps,
    chainWorstUpperBound: chainWorst,
    logVolumeLowerBound: logLower,
    certifiedAll,
    sampledInside,
    ok: certifiedAll && sampledInside && disjoint && chainOverlaps,
  };
}

function logSumExp(xs: number[]): number {
  const m = Math.max(...xs);
  return m + Math.log(xs.reduce((s, x) => s + Math.exp(x - m), 0));
}

export const volumeGrows: Claim = {
  id: 4,
  claim: "Theorem 2: the epsilon-sublevel set C(L, theta, eps) has infinite volume: certified disjoint translates T_alpha^k(B) add up without bound (n1 = n2, and a deep net)",
  controls: [BIAS_CONTROL, OVERLAP_CONTROL],
  async run(ctx) {
    // Theorem 2's proof (Figure 3): an L_inf ball B = B_inf(r', theta) inside C, and its images
    // T_alpha^k(B), k = 0, 1, 2, ..., which are boxes (centre D^k theta, half-widths D^k r'), pairwise
    // disjoint for the paper's alpha, all inside C and joined by the orbit: vol C >= sum_k vol T_alpha^k(B).
    // Here each box is CERTIFIED to lie in C by interval arithmetic over the box itself (no use of
    // L(D x) = L(x)), also sampled at independent uniform points on the engine; disjointness and a
    // chain of overlapping certified boxes along the orbit (connectedness) are checked coordinate by
    // coordinate, and each box's volume is measured from its side lengths.
    const epsilon = 0.01;
    const translates = ctx.quick ? 3 : 5;
    const probes = ctx.quick ? 8 : 24;
    const nets: VolumeNet[] = [
      // n1 = n2 = 12 (bias-free, 2 inputs, 6 hidden units, 2 outputs): |det D_alpha| = 1, Figure 3's case.
      { name: "one hidden layer, n1 = n2 = 12", spec: mlpSpec([2, 6, 2], { bias: false }), alphas: (a) => [a, 1 / a] },
      { name: "deep [4, 12, 12, 12, 2] with biases", spec: teacherSpec("deep"), alphas: (a) => endAlphas(4, a) },
    ];
    const rows: Awaited<ReturnType<typeof volumeOfNet>>[] = [];
    for (const [j, net] of nets.entries()) {
      ctx.progress(`${net.name}: certified box and ${translates} translates`);
      rows.push(await volumeOfNet(ctx, net, ctx.seed + 41 + 10 * j, epsilon, translates, probes));
    }
    const pass = rows.every((r) => r.ok);
    const describe = (r: (typeof rows)[number]) =>
      `${r.name}: r' ${fmt(r.radius)}, alpha ${fmt(r.alpha)}, ${r.translates.length} translates ${r.disjoint ? "disjoint" : "OVERLAPPING"}, ` +
      `certified loss bound ${fmt(Math.max(...r.translates.map((t) => t.lossUpperBound)))} (chain of ${r.chainBoxes} boxes ${r.chainOverlaps ? "connected" : "BROKEN"}, worst ${fmt(r.chainWorstUpperBound)}), ` +
      `largest sampled loss ${fmt(Math.max(...r.translates.map((t) => t.largestSampledLoss)))}; log vol C >= ${r.logVolumeLowerBound.map((x) => fmt(x, 4)).join(", ")}`;
    return {
      measured: rows.map(describe).join("; "),
      expected: `every translate certified inside C (loss bound < L(theta) + eps, eps = ${epsilon}), pairwise disjoint, joined by overlapping certified boxes; the summed volume grows with every translate (n1 = n2: by the same volume each time; deep: by |det D_alpha| each time)`,
      pass,
      details: { epsilon, probesPerBox: probes, nets: rows.map(({ ok: _o, ...r }) => r) },
      plots: [{
        id: "volume",
        title: "Volume of C(L, theta, eps): certified lower bound from disjoint translates T_alpha^k(B)",
        xLabel: "translates summed",
        yLabel: "log volume lower bound (natural log)",
        series: rows.map((r) => ({ name: r.name, x: r.logVolumeLowerBound.map((_, i) => i + 1), y: r.logVolumeLowerBound })),
        caption: `Each box is certified by interval arithmetic over the whole box to lie in the eps-sublevel set, and ${probes} independent uniform points of it were evaluated on the engine; the boxes are pairwise disjoint and a chain of overlapping certified boxes joins them along the orbit.`,
      }],
    };
  },
};
