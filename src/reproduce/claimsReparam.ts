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
import { layerUnits } from "../model.ts";
import { Rng } from "../random.ts";
import { inputGradientRankingFlip, standardizationMseRankingChange } from "../reparam/inputDemos.ts";
import { ReparametrizedObjective } from "../reparam/objective.ts";
import { powerFamily } from "../reparam/powerFamily.ts";
import { radialRankingFlip } from "../reparam/rankingFlip.ts";
import { WeightNormalization } from "../reparam/weightNorm.ts";
import { neuronScale, randomNeuronFactors } from "../transforms/neuronScale.ts";
import { type Claim, fmt, normwiseDifference, teacherProblem, teacherSpec, withObjective, isF32 } from "./context.ts";

export const weightNormalization: Claim = {
  id: 11,
  claim: "Weight normalization: scaling v keeps the function and scales the Hessian in v by 1/alpha^2 (infinitely sharp and flat)",
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
          const op = restrictedOperator(hessianOperator(f, e), mask);
          const top = await lanczosEigenpairs(op, { k: 1, seed: ctx.seed, tol: 1e-7 });
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

export const criticalPoint: Claim = {
  id: 12,
  claim: "At a critical point the Hessian in eta is J^T H J: the second-order term of Phi vanishes (section 5.1)",
  async run(ctx) {
    const p = await teacherProblem(teacherSpec("shallow"), 96, ctx.seed + 121);
    const rng = new Rng(ctx.seed + 122);
    const off = p.theta.map((t) => t + 0.2 * rng.normal());
    const v = new Rng(ctx.seed + 123).normals(p.theta.length);
    const phi = powerFamily({ centre: p.theta.map((t) => t + 0.5), a: 0.5, b: 1, mode: "coordinatewise" });
    const r = await withObjective(ctx, p.spec, p.data, "mse", [], async (inner) => {
      const f = new ReparametrizedObjective(inner, phi);
      try {
        const ratio = async (theta: Float64Array) => {
          const terms = await f.hvpTerms(phi.inverse!(theta), v);
          const norm = (x: Float64Array) => Math.hypot(...x);
          return norm(terms.curvature) / norm(terms.pullback);
        };
        return { atMinimum: await ratio(p.theta), away: await ratio(off) };
      } finally {
        f.dispose();
      }
    });
    const tol = isF32(ctx) ? 1e-4 : 1e-8;
    return {
      measured: `||(sum_i g_i hess Phi_i) v|| / ||J^T H J v|| = ${fmt(r.atMinimum)} at the minimum, ${fmt(r.away)} away from it`,
      expected: `<= ${tol} at the minimum (gradient 0), not small elsewhere (> 1e-2)`,
      pass: r.atMinimum <= tol && r.away > 1e-2,
      details: { ...r, reparametrization: "eta = (|theta - c|^2 + 1)^0.5 (theta - c), coordinate-wise" },
    };
  },
};

export const radialFlip: Claim = {
  id: 13,
  claim: "A radial reparametrization flips the flatness ranking of two minima (Appendix A, Figure 5)",
  async run(ctx) {
    const r = await radialRankingFlip(undefined, { seed: ctx.seed + 1 });
    const [a, b] = r.minima;
    return {
      measured: `top eigenvalues theta: ${fmt(a.topEigenvalueTheta, 4)} vs ${fmt(b.topEigenvalueTheta, 4)}; eta: ${fmt(a.topEigenvalueEta, 4)} vs ${fmt(b.topEigenvalueEta, 4)}`,
      expected: "the flatter minimum in theta is the sharper one in eta (same functions, same losses)",
      pass: r.flipped && Math.abs(a.lossEta - a.loss) <= 1e-12 && Math.abs(b.lossEta - b.loss) <= 1e-12,
      details: { problem: r.problem, radial: r.radial, flatterInTheta: r.flatterInTheta, flatterInEta: r.flatterInEta, minima: r.minima },
      plots: [{
        id: "radial-flip",
        title: "Radial reparametrization: top Hessian eigenvalue of two minima",
        xLabel: "minimum",
        yLabel: "lambda_max",
        kind: "bar",
        yLog: true,
        categories: ["minimum A", "minimum B"],
        series: [
          { name: "in theta", x: [0, 1], y: [a.topEigenvalueTheta, b.topEigenvalueTheta] },
          { name: "in eta", x: [0, 1], y: [a.topEigenvalueEta, b.topEigenvalueEta] },
        ],
      }],
    };
  },
};

export const inputRepresentation: Claim = {
  id: 14,
  claim: "Input whitening flips the input-gradient ranking of two models with unchanged predictions (section 5.2); standardization changes an MSE ranking (Appendix C)",
  async run(ctx) {
    const flip = await inputGradientRankingFlip({ kind: "zca", seed: ctx.seed + 141 });
    const mse = await standardizationMseRankingChange({ seed: ctx.seed + 142 });
    const predictions = Math.max(flip.maxOutputChange.a, flip.maxOutputChange.b);
    return {
      measured: `mean ||df/dx||: A ${fmt(flip.original.a)} vs B ${fmt(flip.original.b)} -> whitened A ${fmt(flip.transformed.a)} vs B ${fmt(flip.transformed.b)} (predictions moved ${fmt(predictions)}); ` +
        `MSE A ${fmt(mse.raw.a)} vs B ${fmt(mse.raw.b)} -> standardized ${fmt(mse.standardized.a)} vs ${fmt(mse.standardized.b)}`,
      expected: "both rankings flip, predictions unchanged (<= 1e-9)",
      pass: flip.flipped && mse.changed && predictions <= 1e-9,
      details: { whitening: flip, standardization: mse },
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
  async run(ctx) {
    const p = await teacherProblem(teacherSpec("deep"), 64, ctx.seed + 161);
    const rng = new Rng(ctx.seed + 162);
    const theta = p.theta.map((t) => t + 0.2 * rng.normal()); // off the minimum: sharpness values not 0
    const metrics: MetricName[] = ["adaptive", "fisher-rao", "path-norm", "normalized-sharpness", "relative-flatness", "spectrum"];
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
