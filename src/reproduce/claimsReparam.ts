/**
 * Claims 11-14 and 16 of `flatness reproduce`: reparametrizations and input representations
 * (Dinh et al. 2017, section 5 and Appendices A and C), and the measures proposed since as answers
 * (invariant under T_alpha and neuron-wise rescaling).
 */
import { audit } from "../audit/audit.ts";
import { hessianOperator, restrictedOperator } from "../metrics/operator.ts";
import { relativeFlatness } from "../metrics/relativeFlatness.ts";
import { lanczosEigenpairs } from "../metrics/spectrum.ts";
import type { MetricName } from "../metrics/suite.ts";
import { layerUnits, type ModelSpec } from "../model.ts";
import type { Dataset } from "../data.ts";
import type { AffineInputMap } from "../reparam/input.ts";
import { Rng } from "../random.ts";
import { inputGradientRankingFlip, standardizationMseRankingChange } from "../reparam/inputDemos.ts";
import { ReparametrizedObjective } from "../reparam/objective.ts";
import { powerFamily } from "../reparam/powerFamily.ts";
import { type RadialRankingFlipResult, type RankingProblem, radialRankingFlip, teacherMinima } from "../reparam/rankingFlip.ts";
import { WeightNormalization } from "../reparam/weightNorm.ts";
import { neuronScale, randomNeuronFactors } from "../transforms/neuronScale.ts";
import { type Claim, type ReproduceContext, fmt, isControl, normwiseDifference, teacherProblem, teacherSpec, withHvp, withObjective, isF32 } from "./context.ts";
import { type Objective, withVectors } from "../objective.ts";
import { ReferenceObjective } from "../reference/engine.ts";
import type { Reparametrization } from "../reparam/reparametrization.ts";
import { RadialTransformation } from "../reparam/radial.ts";
import { fitAffineInputMap, foldInputMap, transformDataset } from "../reparam/input.ts";
import { inputGradientNorms } from "../metrics/sensitivity.ts";
import { keskarMinima } from "./claimKeskar.ts";

const norm = (x: Float64Array) => Math.hypot(...x);

export const weightNormalization: Claim = {
  id: 11,
  claim: "Weight normalization: scaling v keeps the function and scales the Hessian in v by 1/alpha^2 (infinitely sharp and flat)",
  controls: [{ id: "theta-coordinates", breaks: "the Hessian taken in theta at Phi(alpha v) (no chain rule through Phi) instead of in eta" }],
  async run(ctx) {
    const p = await teacherProblem(teacherSpec("shallow"), 96, ctx.seed + 111);
    const wn = new WeightNormalization(p.spec);
    const eta = wn.inverse(p.theta);
    const scales = [0.1, 1, 10];
    const rows = await withObjective(ctx, p.spec, p.data, "mse", [], async (inner) => {
      const f = new ReparametrizedObjective(inner, wn);
      const mask = wn.directionMask();
      try {
        const out = [];
        for (const a of scales) {
          const e = wn.scaleDirections(eta, a);
          const top = isControl(ctx, "theta-coordinates")
            ? await withVectors(inner, [wn.phi(e)], ([t]) => lanczosEigenpairs(hessianOperator(inner, t), { k: 1, seed: ctx.seed, tol: 1e-7 }))
            : await lanczosEigenpairs(restrictedOperator(hessianOperator(f, e), mask), { k: 1, seed: ctx.seed, tol: 1e-7 });
          out.push({ alpha: a, topEigenvalue: top.eigenvalues[0], thetaDifference: normwiseDifference(wn.phi(e), p.theta) });
        }
        return out;
      } finally {
        f.dispose();
      }
    });
    const at1 = rows[1].topEigenvalue;
    const worst = Math.max(...rows.map((r) => Math.abs(r.topEigenvalue * r.alpha * r.alpha / at1 - 1)));
    const thetaMoved = Math.max(...rows.map((r) => r.thetaDifference));
    const tol = isF32(ctx) ? 1e-3 : 1e-6;
    return {
      measured: `top eigenvalue of the v-block ${rows.map((r) => `${fmt(r.topEigenvalue, 4)} (alpha ${r.alpha})`).join(", ")}; alpha^2 lambda constant to ${fmt(worst)}; theta moved ${fmt(thetaMoved)}`,
      expected: `lambda(alpha v) = lambda(v) / alpha^2 to ${tol}, theta = Phi(eta) unchanged`,
      pass: worst <= tol && thetaMoved <= 1e-12,
      details: { rows },
      plots: [{
        id: "weight-norm",
        title: "Weight normalization: top eigenvalue of the Hessian in v under v -> alpha v",
        xLabel: "alpha",
        yLabel: "lambda_max (v block)",
        xLog: true,
        yLog: true,
        series: [{ name: "lambda_max", x: rows.map((r) => r.alpha), y: rows.map((r) => r.topEigenvalue) }],
      }],
    };
  },
};

/** Phi with its second-order term dropped (negative control of claim 12): the HVP in eta is then J^T H J alone. */
function withoutSecondOrder(phi: Reparametrization): Reparametrization {
  return {
    name: `${phi.name} without its second-order term`,
    dimEta: phi.dimEta,
    dimTheta: phi.dimTheta,
    phi: (e) => phi.phi(e),
    inverse: (t) => phi.inverse!(t),
    jvp: (e, v) => phi.jvp(e, v),
    vjp: (e, u) => phi.vjp(e, u),
    curvature: () => new Float64Array(phi.dimEta),
  } as Reparametrization;
}

export const criticalPoint: Claim = {
  id: 12,
  claim: "At a critical point the Hessian in eta is J^T H J: the second-order term of Phi vanishes (section 5.1); away from it the term is there",
  controls: [
    { id: "no-second-order", breaks: "the HVP in eta drops its second-order term (sum_i g_i hess Phi_i) v everywhere" },
    { id: "gauss-newton", breaks: "the HVP of L in theta is the Gauss-Newton product J^T (d2L/dz2) J (float64 reference) instead of the Hessian" },
  ],
  async run(ctx) {
    const p = await teacherProblem(teacherSpec("shallow"), 96, ctx.seed + 121);
    const rng = new Rng(ctx.seed + 122);
    const off = p.theta.map((t) => t + 0.2 * rng.normal());
    const raw = new Rng(ctx.seed + 123).normals(p.theta.length);
    const rawNorm = Math.hypot(...raw);
    const v = raw.map((x) => x / rawNorm);
    const exact = powerFamily({ centre: p.theta.map((t) => t + 0.5), a: 0.5, b: 1, mode: "coordinatewise" });
    const phi = isControl(ctx, "no-second-order") ? withoutSecondOrder(exact) : exact;
    // The independent value: central differences of the eta-gradient (J^T grad L, first order only).
    const h = isF32(ctx) ? 1e-3 : 1e-5;
    const inspect = async (inner: Objective<unknown>) => {
      const f = new ReparametrizedObjective(inner, phi);
      try {
        const at = async (theta: Float64Array) => {
          const eta = phi.inverse!(theta);
          const terms = await f.hvpTerms(eta, v);
          const full = new Float64Array(eta.length);
          await f.hvp(eta, v, full);
          const gp = new Float64Array(eta.length), gm = new Float64Array(eta.length);
          await f.gradient(eta.map((x, i) => x + h * v[i]), gp);
          await f.gradient(eta.map((x, i) => x - h * v[i]), gm);
          const fd = gp.map((x, i) => (x - gm[i]) / (2 * h));
          return {
            curvatureRatio: norm(terms.curvature) / norm(terms.pullback),
            fullError: normwiseDifference(full, fd),
            pullbackError: normwiseDifference(terms.pullback, fd),
          };
        };
        return { atMinimum: await at(p.theta), away: await at(off) };
      } finally {
        f.dispose();
      }
    };
    const reference = isControl(ctx, "gauss-newton") ? new ReferenceObjective(p.spec, p.data, "mse") : null;
    const r = reference
      ? await inspect(withHvp(reference, (t, x, out) => reference.gaussNewtonProduct(t, x, out)) as Objective<unknown>)
      : await withObjective(ctx, p.spec, p.data, "mse", [], (inner) => inspect(inner));
    const tol = isF32(ctx) ? 1e-4 : 1e-8;
    const fdTol = isF32(ctx) ? 2e-2 : 1e-5;
    const pass = r.atMinimum.curvatureRatio <= tol && r.atMinimum.pullbackError <= fdTol && r.atMinimum.fullError <= fdTol &&
      r.away.fullError <= fdTol && r.away.pullbackError > 10 * fdTol;
    return {
      measured: `at the minimum: second-order / J^T H J ${fmt(r.atMinimum.curvatureRatio)}, J^T H J v vs finite differences of the eta-gradient ${fmt(r.atMinimum.pullbackError)}; ` +
        `away: full HVP vs finite differences ${fmt(r.away.fullError)}, J^T H J v alone ${fmt(r.away.pullbackError)}`,
      expected: `at the minimum the term <= ${tol} and J^T H J v equal to the finite differences (<= ${fdTol}); away the full HVP equal to them (<= ${fdTol}) and J^T H J v alone not (> ${10 * fdTol})`,
      pass,
      details: { ...r, step: h, reparametrization: "eta = (|theta - c|^2 + 1)^0.5 (theta - c), coordinate-wise" },
    };
  },
};

/**
 * The top eigenvalue of the eta-Hessian at both minima for the radial map of `r` with its radii
 * r-hat and rho exchanged (negative control of claim 13: the map then flattens the minimum it should sharpen).
 */
async function invertedRadialTops<V>(objective: Objective<V>, minima: [Float64Array, Float64Array], r: RadialRankingFlipResult, tol: number, seed: number): Promise<[number, number]> {
  const radial = new RadialTransformation({ centre: minima[r.radial.centreIndex], delta: r.radial.delta, rHat: r.radial.rho, rho: r.radial.rHat });
  const f = new ReparametrizedObjective(objective, radial);
  try {
    const tops: number[] = [];
    for (const m of minima) {
      const eta = radial.inverse(m);
      tops.push((await lanczosEigenpairs(hessianOperator(f, eta), { k: 1, which: "LA", tol, seed, maxSteps: Math.min(f.space.dim, 200) })).eigenvalues[0]);
    }
    return [tops[0], tops[1]];
  } finally {
    f.dispose();
  }
}

/** Claim 13's verdict on one pair of minima: the flip, under the control computed with the inverted radial map. */
async function radialCase<V>(ctx: ReproduceContext, problem: RankingProblem<V>, tol: number) {
  const r = await radialRankingFlip(problem, { seed: ctx.seed + 1, tol });
  const [a, b] = r.minima;
  let etaTops: [number, number] = [a.topEigenvalueEta, b.topEigenvalueEta];
  if (isControl(ctx, "radial-inverted")) etaTops = await invertedRadialTops(problem.objective, problem.minima, r, tol, ctx.seed + 1);
  const flatterInEta = etaTops[0] <= etaTops[1] ? 0 : 1;
  const lossTol = isF32(ctx) ? 1e-6 : 1e-12;
  const sameLosses = Math.abs(a.lossEta - a.loss) <= lossTol * (1 + a.loss) && Math.abs(b.lossEta - b.loss) <= lossTol * (1 + b.loss);
  return { r, etaTops, flipped: flatterInEta !== r.flatterInTheta, sameLosses };
}

export const radialFlip: Claim = {
  id: 13,
  claim: "A radial reparametrization flips the flatness ranking of two minima (Appendix A, Figure 5): a hand-built pair and claim 15's trained small- and large-batch nets",
  controls: [{ id: "radial-inverted", breaks: "the radial map's radii r-hat and rho exchanged, so it flattens the minimum it should sharpen" }],
  async run(ctx) {
    // The hand-built pair: a teacher net and its T_alpha image (float64 reference, exact minima).
    const built = await radialCase(ctx, teacherMinima(), 1e-10);
    // The trained pair of claim 15 (not exact minima: the gradient is small, not 0; inside the
    // inner ball the map is linear, so hess L_eta = (r-hat/rho)^2 H there all the same).
    let trained: Awaited<ReturnType<typeof radialCase>> | null = null;
    if (!ctx.control) {
      const k = await keskarMinima(ctx);
      trained = await withObjective(ctx, k.spec, k.split.train, "ce", [], (f) =>
        radialCase(ctx, { objective: f, minima: [k.trained[0].theta, k.trained[1].theta], description: "claim 15's small- and large-batch nets" }, isF32(ctx) ? 1e-4 : 1e-8));
    }
    const cases = trained ? [built, trained] : [built];
    const [a, b] = built.r.minima;
    const text = (c: typeof built, name: string) =>
      `${name}: lambda_max in theta ${fmt(c.r.minima[0].topEigenvalueTheta, 4)} vs ${fmt(c.r.minima[1].topEigenvalueTheta, 4)}; in eta ${fmt(c.etaTops[0], 4)} vs ${fmt(c.etaTops[1], 4)} (${c.flipped ? "flipped" : "NOT flipped"})`;
    return {
      measured: [text(built, "hand-built pair"), ...(trained ? [text(trained, "trained small/large-batch pair")] : [])].join("; "),
      expected: "for each pair, the flatter minimum in theta is the sharper one in eta (same functions, same losses)",
      pass: cases.every((c) => c.flipped && c.sameLosses),
      details: {
        handBuilt: { problem: built.r.problem, radial: built.r.radial, flatterInTheta: built.r.flatterInTheta, etaTopEigenvalues: built.etaTops, minima: built.r.minima },
        trained: trained ? { radial: trained.r.radial, flatterInTheta: trained.r.flatterInTheta, etaTopEigenvalues: trained.etaTops, minima: trained.r.minima } : null,
      },
      plots: [{
        id: "radial-flip",
        title: "Radial reparametrization: top Hessian eigenvalue of two minima",
        xLabel: "minimum",
        yLabel: "lambda_max",
        kind: "bar",
        yLog: true,
        categories: ["hand-built A", "hand-built B", ...(trained ? ["small batch", "large batch"] : [])],
        series: [
          { name: "in theta", x: cases.flatMap((_, i) => [2 * i, 2 * i + 1]), y: cases.flatMap((c) => [c.r.minima[0].topEigenvalueTheta, c.r.minima[1].topEigenvalueTheta]) },
          { name: "in eta", x: cases.flatMap((_, i) => [2 * i, 2 * i + 1]), y: cases.flatMap((c) => c.etaTops) },
        ],
        caption: `Hand-built: ${fmt(a.topEigenvalueTheta, 4)} / ${fmt(b.topEigenvalueTheta, 4)} in theta.`,
      }],
    };
  },
};

/** Mean input-gradient norms of two models in x, and after the input map `map` (folded into each first layer). */
async function inputFlip(spec: ModelSpec, thetas: Float64Array[], data: Dataset, map: AffineInputMap, chainRule: boolean) {
  const u = transformDataset(map, data);
  const before = [], after = [];
  for (const theta of thetas) {
    before.push((await inputGradientNorms(spec, theta, data)).mean);
    const folded = foldInputMap(spec, theta, map);
    // Without the chain rule (control): df/du taken as df/dx.
    after.push(chainRule ? (await inputGradientNorms(folded.spec, folded.theta, u)).mean : before.at(-1)!);
  }
  return { before, after, flipped: (before[0] <= before[1]) !== (after[0] <= after[1]) };
}

/** The input map u = S x, S = I + (s - 1) w w^T (inputs scaled by s along the unit direction w). */
function directionScaling(w: Float64Array, scale: number): AffineInputMap {
  const d = w.length;
  const matrix = new Float64Array(d * d), inverseMatrix = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) {
      matrix[i * d + j] = (i === j ? 1 : 0) + (scale - 1) * w[i] * w[j];
      inverseMatrix[i * d + j] = (i === j ? 1 : 0) + (1 / scale - 1) * w[i] * w[j];
    }
  }
  return { kind: "standardize", features: d, mean: new Float64Array(d), matrix, inverseMatrix, variances: new Float64Array(d).fill(1), epsilon: 0 };
}

export const inputRepresentation: Claim = {
  id: 14,
  claim: "Input whitening flips the input-gradient ranking of two models with unchanged predictions (section 5.2); standardization changes an MSE ranking (Appendix C); the same on claim 15's trained nets",
  controls: [{ id: "no-chain-rule", breaks: "the input gradient in the new coordinates taken as df/dx (no chain rule through the input map)" }],
  async run(ctx) {
    const broken = isControl(ctx, "no-chain-rule");
    const flip0 = await inputGradientRankingFlip({ kind: "zca", seed: ctx.seed + 141 });
    const flip = broken ? { ...flip0, transformed: flip0.original, flipped: false } : flip0;
    const mse = await standardizationMseRankingChange({ seed: ctx.seed + 142 });
    const predictions = Math.max(flip.maxOutputChange.a, flip.maxOutputChange.b);
    // Claim 15's trained nets on the test set: ZCA whitening as measured (it need not flip them),
    // and an input rescaling found to flip them: one coordinate scaled by 1/10 or 1/100.
    const k = await keskarMinima(ctx);
    const thetas = [k.trained[0].theta, k.trained[1].theta];
    const d = k.split.test.features;
    const zca = await inputFlip(k.spec, thetas, k.split.test, fitAffineInputMap(k.split.test.x, d, "zca"), !broken);
    // Searched: the coordinate axes, then 24 seeded random directions, each scaled by 1/100. (A linear
    // map can flip the pair only if one model is more sensitive than the other along some direction.)
    let found: { direction: string; scale: number; before: number[]; after: number[] } | null = null;
    const rng = new Rng(ctx.seed + 143);
    const directions = [
      ...Array.from({ length: d }, (_, j) => ({ name: `x_${j}`, w: Float64Array.from({ length: d }, (_, i) => (i === j ? 1 : 0)) })),
      ...Array.from({ length: 24 }, (_, j) => {
        const w = Float64Array.from(rng.normals(d));
        const n = Math.hypot(...w);
        return { name: `random direction ${j}`, w: w.map((x) => x / n) };
      }),
    ];
    for (const { name, w } of directions) {
      const r = await inputFlip(k.spec, thetas, k.split.test, directionScaling(w, 0.01), !broken);
      if (r.flipped) {
        found = { direction: name, scale: 0.01, before: r.before, after: r.after };
        break;
      }
    }
    return {
      measured: `hand-built: mean ||df/dx|| A ${fmt(flip.original.a)} vs B ${fmt(flip.original.b)} -> whitened A ${fmt(flip.transformed.a)} vs B ${fmt(flip.transformed.b)} (predictions moved ${fmt(predictions)}); ` +
        `MSE A ${fmt(mse.raw.a)} vs B ${fmt(mse.raw.b)} -> standardized ${fmt(mse.standardized.a)} vs ${fmt(mse.standardized.b)}; ` +
        `trained pair: ${fmt(zca.before[0])} vs ${fmt(zca.before[1])}, whitened ${fmt(zca.after[0])} vs ${fmt(zca.after[1])} (${zca.flipped ? "flipped" : "not flipped"}, as measured); ` +
        (found ? `inputs scaled by ${found.scale} along ${found.direction}: ${fmt(found.after[0])} vs ${fmt(found.after[1])} (flipped)` : `no input rescaling among ${directions.length} directions flips it`) + " (trained pair reported as measured)",
      expected: "the hand-built rankings flip with predictions unchanged (<= 1e-9); the trained pair is reported as measured (a flip by a linear input map exists only if each model is the more sensitive along some direction)",
      pass: flip.flipped && mse.changed && predictions <= 1e-9,
      details: { whitening: flip, standardization: mse, trained: { zca, rescaling: found } },
      plots: [{
        id: "input-flip",
        title: "Input-gradient norm of two models before and after ZCA whitening",
        xLabel: "representation",
        yLabel: "mean ||df/dx||",
        kind: "bar",
        categories: ["original x", "whitened"],
        series: [
          { name: "model A", x: [0, 1], y: [flip.original.a, flip.transformed.a] },
          { name: "model B", x: [0, 1], y: [flip.original.b, flip.transformed.b] },
        ],
      }],
    };
  },
};

export const invariantMeasures: Claim = {
  id: 16,
  claim: "The reparametrization-invariant measures (adaptive sharpness, Fisher-Rao norm, path norm, relative flatness, normalized sharpness) do not move under T_alpha or neuron-wise rescaling",
  controls: [{ id: "adaptive-without-theta", breaks: "adaptive sharpness without its |theta| scaling (plain epsilon-sharpness, Definition 2) checked in its place" }],
  async run(ctx) {
    const p = await teacherProblem(teacherSpec("deep"), 64, ctx.seed + 161);
    const rng = new Rng(ctx.seed + 162);
    const theta = p.theta.map((t) => t + 0.2 * rng.normal()); // off the minimum: sharpness values not 0
    const metrics: MetricName[] = isControl(ctx, "adaptive-without-theta")
      ? ["epsilon-sharpness", "spectrum"]
      : ["adaptive", "fisher-rao", "path-norm", "normalized-sharpness", "relative-flatness", "spectrum"];
    const report = await audit({ spec: p.spec, theta, data: p.data, loss: "mse" }, ctx.backend, {
      transforms: ["alpha", "neuron"],
      metrics,
      seed: ctx.seed,
      tolerance: isF32(ctx) ? 1e-3 : 1e-6,
      measure: { topK: 1 },
    });
    // Relative flatness is per layer (Petzka et al.): rescaling the units of hidden layer 0 keeps
    // kappa_0, the layer those units belong to, and changes kappa_1 (see relativeFlatness.ts).
    const kappa0 = await withObjective(ctx, p.spec, p.data, "mse", [theta, neuronScale(p.spec, theta, 0, randomNeuronFactors(layerUnits(p.spec.layers[0]), ctx.seed))], async (f, [a, b]) => {
      const before = await relativeFlatness(f, a, { layers: [0] });
      const after = await relativeFlatness(f, b, { layers: [0] });
      return { before: before.layers[0].value, after: after.layers[0].value };
    });
    const rows = report.transforms.flatMap((t) => t.metrics.map((m) => ({ transform: t.transform, metric: m.metric, before: m.before, after: m.after, ratio: m.ratio, verdict: m.verdict })));
    const invariantOk = rows.filter((r) => r.metric !== "spectrum" && !(r.transform === "neuron" && r.metric === "relative-flatness")).every((r) => r.verdict === "invariant");
    const spectrumMoved = rows.filter((r) => r.metric === "spectrum").every((r) => r.verdict === "moved");
    const kappaOk = Math.abs(kappa0.after - kappa0.before) <= (isF32(ctx) ? 1e-3 : 1e-6) * Math.abs(kappa0.before);
    return {
      measured: rows.filter((r) => r.metric !== "spectrum").map((r) => `${r.transform} ${r.metric} x${fmt(r.ratio ?? NaN, 5)}`).join(", ") +
        `; relative flatness of the rescaled layer x${fmt(kappa0.after / kappa0.before, 5)}; top eigenvalue moved (control)`,
      expected: "every ratio 1 within tolerance (relative flatness: of the layer whose units are rescaled); the top eigenvalue moves",
      pass: invariantOk && spectrumMoved && kappaOk,
      details: { rows, relativeFlatnessLayer0: kappa0, functionChecks: report.transforms.map((t) => ({ transform: t.transform, ...t.functionCheck })) },
    };
  },
};
