/// <reference lib="dom" />
/**
 * Page 4, the geometry of reparametrization (Dinh et al. 2017, section 3 and Figure 2, section 5.1
 * and Figure 5, Appendix A and Figure 6), interactive: sliders move T_alpha along the curves of
 * observationally equivalent parameters, reshape the Figure 5 family eta = (|theta - theta-hat|^2
 * + b)^a (theta - theta-hat) and the radial map. Everything is float64 on the CPU
 * (model.ts: the reference engine and src/reparam), so no WebGPU is needed.
 */
import { byId, el } from "../shared/dom.ts";
import { installErrorHandlers, showError } from "../shared/errors.ts";
import { formatNumber } from "../shared/format.ts";
import { numberParam } from "../shared/params.ts";
import { linePlot, PALETTE } from "../shared/plots.ts";
import { markBusy, publish } from "../shared/record.ts";
import { coalesce } from "../shared/tasks.ts";
import { type XYPlot, xyPlot, type XYSeries } from "../shared/xyPlot.ts";
import {
  FIG2_BASE,
  FIG2_LEVELS,
  fig2Objective,
  fig2Point,
  type Fig2Point,
  fig5,
  fig5Loss,
  fig5Minima,
  FIG5_RANGE,
  type Fig5Result,
  type Fig5Settings,
  levelCurve,
  radial,
  type RadialResult,
  type RadialSettings,
} from "./model.ts";

const f = formatNumber;
const objective = fig2Objective();
const MINIMA = fig5Minima();
const FIG2_MAX = 3.6;
const LEVEL_COLOURS = ["#56B4E9", "#009E73", "#D55E00", "#CC79A7", "#E69F00"];

interface State {
  fig2: Fig2Point | null;
  fig2Curve: { alpha: number[]; lambdaMax: number[]; loss: number[] } | null;
  fig5: Fig5Result | null;
  radial: RadialResult | null;
  /** L on each level curve of FIG2_LEVELS (at (c, 1)). */
  levelLoss: number[];
}
const state: State = { fig2: null, fig2Curve: null, fig5: null, radial: null, levelLoss: [] };

function publishAll(): void {
  if (!state.fig2 || !state.fig5 || !state.radial || !state.fig2Curve) return;
  const r = state.fig5;
  const q = state.radial;
  publish({
    fig2: state.fig2,
    fig2Curve: state.fig2Curve,
    fig5: {
      a: r.a,
      b: r.b,
      centre: r.centre,
      gridTheta: r.gridTheta,
      gridEta: r.gridEta,
      gridLoss: r.gridLoss,
      probes: r.probes,
      minima: r.minima,
      flattestTheta: r.flattestTheta,
      sharpestTheta: r.sharpestTheta,
      flattestEta: r.flattestEta,
      sharpestEta: r.sharpestEta,
    },
    radial: { delta: q.delta, rHat: q.rHat, rho: q.rho, probes: q.probes, hessianFactor: q.hessianFactor },
  });
}

function slider(id: string): HTMLInputElement {
  return byId<HTMLInputElement>(id);
}

function rows(host: HTMLElement, entries: [string, string][]): void {
  host.replaceChildren(...entries.map(([k, v]) => el("tr", {}, [el("th", { scope: "row" }, k), el("td", {}, v)])));
}

// ---------------------------------------------------------------------------------------------
// Figure 2

let fig2Plot: XYPlot | null = null;
let fig2Lambda: ReturnType<typeof linePlot> | null = null;
let fig2Request = 0;

function fig2Series(p: Fig2Point): XYSeries[] {
  // The loss is constant on each curve: it is a function of theta1 theta2 only.
  const curves = FIG2_LEVELS.map((c, i): XYSeries => {
    const { x, y } = levelCurve(c, 0.05, FIG2_MAX, FIG2_MAX);
    const loss = state.levelLoss[i];
    return { name: c === 1 ? `θ₁θ₂ = 1: the minima, L = ${f(loss, 3)}` : `θ₁θ₂ = ${c}: L = ${f(loss, 3)}`, x, y, color: LEVEL_COLOURS[i], width: c === 1 ? 3 : 2 };
  });
  const circle = Array.from({ length: 121 }, (_, i) => (2 * Math.PI * i) / 120);
  return [
    ...curves,
    { name: `ε-ball, ε = ${f(p.epsilon)}`, x: circle.map((t) => p.theta[0] + p.epsilon * Math.cos(t)), y: circle.map((t) => p.theta[1] + p.epsilon * Math.sin(t)), color: "#000", width: 1.5, dash: true },
    { name: "T_α(θ*)", x: [p.theta[0]], y: [p.theta[1]], color: "#b3261e", width: 0, points: 11 },
    { name: "worst point in the ball", x: [p.epsilonArgmax[0]], y: [p.epsilonArgmax[1]], color: "#000", width: 0, points: 7 },
  ];
}

async function updateFig2(): Promise<void> {
  const request = ++fig2Request;
  const alpha = 10 ** Number(slider("alpha").value);
  const epsilon = Number(slider("epsilon").value);
  byId("alpha-out").textContent = f(alpha, 3);
  byId("epsilon-out").textContent = f(epsilon, 3);
  markBusy();
  const p = await fig2Point(objective, alpha, epsilon);
  if (request !== fig2Request) return; // a newer slider position is on its way
  state.fig2 = p;
  const series = fig2Series(p);
  if (!fig2Plot) {
    fig2Plot = xyPlot(byId("fig2-plot"), { title: "Level curves of L: observationally equivalent (θ₁, θ₂)", xLabel: "θ₁ (input weight)", yLabel: "θ₂ (output weight)", xRange: [0, FIG2_MAX], yRange: [0, FIG2_MAX], series, equalAspect: true });
  } else {
    fig2Plot.update(series);
  }
  rows(byId("fig2-numbers"), [
    ["T_α(θ*)", `(${f(p.theta[0])}, ${f(p.theta[1])}), α = ${f(alpha, 3)}`],
    ["function", `f(x) = ${f(p.theta[0] * p.theta[1], 6)}·relu(x): unchanged`],
    ["loss L", f(p.loss, 6)],
    ["Hessian eigenvalues", `${f(p.eigenvalues[0], 5)} and ${f(p.eigenvalues[1], 3)}`],
    ["‖H‖₂ = λ_max", f(p.eigenvalues[0], 5)],
    [`ε-sharpness, ε = ${f(epsilon)}`, f(p.epsilonSharpness, 5)],
  ]);
  if (state.fig2Curve) {
    const c = state.fig2Curve;
    fig2Lambda?.update([
      { name: "λ_max of the Hessian at T_α(θ*)", x: c.alpha, y: c.lambdaMax },
      { name: "current α", x: [alpha], y: [p.eigenvalues[0]], style: "points", color: "#b3261e" },
    ]);
  }
  publishAll();
}

async function fig2AlphaCurve(): Promise<void> {
  const alpha = Array.from({ length: 61 }, (_, i) => 10 ** (-1 + (2 * i) / 60));
  const lambdaMax: number[] = [];
  const loss: number[] = [];
  for (const a of alpha) {
    const theta = Float64Array.of(a * FIG2_BASE[0], FIG2_BASE[1] / a);
    const h1 = new Float64Array(2);
    const h2 = new Float64Array(2);
    await objective.hvp(theta, Float64Array.of(1, 0), h1);
    await objective.hvp(theta, Float64Array.of(0, 1), h2);
    const [p, q, r] = [h1[0], (h1[1] + h2[0]) / 2, h2[1]];
    lambdaMax.push((p + r) / 2 + Math.hypot((p - r) / 2, q));
    loss.push(await objective.loss(theta));
  }
  state.fig2Curve = { alpha, lambdaMax, loss };
  for (const c of FIG2_LEVELS) state.levelLoss.push(await objective.loss(Float64Array.of(c, 1)));
  fig2Lambda = linePlot(byId("fig2-lambda"), {
    title: "Theorem 4: the same function, any sharpness",
    xLabel: "α",
    yLabel: "λ_max",
    xLog: true,
    yLog: true,
    height: 240,
    series: [
      { name: "λ_max of the Hessian at T_α(θ*)", x: alpha, y: lambdaMax },
      { name: "current α", x: [1], y: [lambdaMax[30]], style: "points", color: "#b3261e" },
    ],
  });
}

// ---------------------------------------------------------------------------------------------
// Figure 5

let fig5Plot: XYPlot | null = null;
let fig5Default: XYPlot | null = null;

function fig5Settings(): Fig5Settings {
  return { a: Number(slider("fig5-a").value), b: Number(slider("fig5-b").value), centre: MINIMA[Number(byId<HTMLSelectElement>("fig5-centre").value)] };
}

function lossRange(values: number[]): [number, number] {
  const hi = Math.max(...values);
  return [-0.05 * hi, 1.08 * hi];
}

function fig5Series(r: Fig5Result, xs: number[], points: number[], curveX: number[], centreX: number): XYSeries[] {
  const minimaX = r.minima.map((m) => (xs === r.gridEta ? m.eta : m.theta));
  const top = Math.max(...r.curveLoss, ...r.gridLoss) * 1.08;
  return [
    { name: "loss", x: curveX, y: curveX === r.curveEta ? r.curveLoss : curveX.map(fig5Loss), color: PALETTE[0] },
    { name: "a regular grid in θ", x: xs, y: points, color: PALETTE[0], width: 0, points: 6 },
    { name: "θ̂ (centre of the map)", x: [centreX, centreX], y: [-0.05 * top, top], color: "#d62728", width: 1.5 },
    { name: "minima", x: minimaX, y: r.minima.map((m) => m.loss), color: "#000", width: 0, points: 8 },
  ];
}

function updateFig5(): void {
  const s = fig5Settings();
  byId("fig5-a-out").textContent = f(s.a, 3);
  byId("fig5-b-out").textContent = f(s.b, 3);
  markBusy();
  let r: Fig5Result;
  try {
    r = fig5(s);
  } catch (e) {
    showError(e);
    return;
  }
  state.fig5 = r;
  const xr: [number, number] = [r.gridEta[0], r.gridEta[r.gridEta.length - 1]];
  const yr = lossRange(r.curveLoss);
  const series = fig5Series(r, r.gridEta, r.gridLoss, r.curveEta, r.centre);
  if (!fig5Plot) {
    fig5Plot = xyPlot(byId("fig5-plot"), { title: "The same loss in η = θ̂ + (|θ − θ̂|² + b)^a (θ − θ̂)", xLabel: "η", yLabel: "L_η(η) = L(θ)", xRange: xr, yRange: yr, series, height: 300 });
  } else {
    fig5Plot.update(series, { x: xr, y: yr });
  }
  if (!fig5Default) {
    const fine = Array.from({ length: 401 }, (_, i) => FIG5_RANGE[0] + ((FIG5_RANGE[1] - FIG5_RANGE[0]) * i) / 400);
    const identity = fig5({ a: 0, b: 1, centre: r.centre });
    fig5Default = xyPlot(byId("fig5-default"), {
      title: "Default parametrization: L(θ) = sin²θ + 0.02 θ²",
      xLabel: "θ",
      yLabel: "L(θ)",
      xRange: FIG5_RANGE,
      yRange: lossRange(fine.map(fig5Loss)),
      series: fig5Series(identity, identity.gridTheta, identity.gridLoss, fine, r.centre),
      height: 300,
    });
  } else {
    const fine = Array.from({ length: 401 }, (_, i) => FIG5_RANGE[0] + ((FIG5_RANGE[1] - FIG5_RANGE[0]) * i) / 400);
    const identity = fig5({ a: 0, b: 1, centre: r.centre });
    fig5Default.update(fig5Series(identity, identity.gridTheta, identity.gridLoss, fine, r.centre));
  }
  const tag = (i: number, kind: "Theta" | "Eta") => {
    const flat = kind === "Theta" ? r.flattestTheta : r.flattestEta;
    const sharp = kind === "Theta" ? r.sharpestTheta : r.sharpestEta;
    return i === flat ? " (flattest)" : i === sharp ? " (sharpest)" : "";
  };
  byId("fig5-minima").replaceChildren(
    ...r.minima.map((m, i) =>
      el("tr", {}, [
        el("th", { scope: "row" }, ["left", "middle", "right"][i]),
        el("td", {}, f(m.theta, 5)),
        el("td", {}, f(m.loss, 4)),
        el("td", {}, `${f(m.curvatureTheta, 4)}${tag(i, "Theta")}`),
        el("td", {}, f(m.eta, 5)),
        el("td", {}, `${f(m.curvatureEta, 4)}${tag(i, "Eta")}`),
      ])
    ),
  );
  publishAll();
}

function preset(a: number, b: number, centre: number): void {
  slider("fig5-a").value = String(a);
  slider("fig5-b").value = String(b);
  byId<HTMLSelectElement>("fig5-centre").value = String(centre);
  updateFig5();
}

// ---------------------------------------------------------------------------------------------
// Appendix A

let psiPlot: XYPlot | null = null;
let gridPlot: XYPlot | null = null;

function radialSettings(): RadialSettings {
  const delta = Number(slider("delta").value);
  return { delta, rHat: Number(slider("rhat").value) * delta, rho: Number(slider("rho").value) * delta };
}

function updateRadial(): void {
  const s = radialSettings();
  byId("delta-out").textContent = f(s.delta, 3);
  byId("rhat-out").textContent = f(s.rHat, 3);
  byId("rho-out").textContent = f(s.rho, 3);
  markBusy();
  let r: RadialResult;
  try {
    r = radial(s);
  } catch (e) {
    showError(e);
    return;
  }
  state.radial = r;
  const d = s.delta;
  const ext: [number, number] = [-1.5 * d, 1.5 * d];
  const psiSeries: XYSeries[] = [
    { name: "ψ(r, r̂, δ, ρ)", x: r.r, y: r.psi, color: PALETTE[0], width: 2.5 },
    { name: "identity", x: [0, 1.5 * d], y: [0, 1.5 * d], color: "#888", width: 1, dash: true },
    { name: "r = r̂ and r = δ", x: [s.rHat, s.rHat, NaN, d, d], y: [0, 1.5 * d, NaN, 0, 1.5 * d], color: "#d62728", width: 1 },
  ];
  const gridSeries: XYSeries[] = [
    { name: "g⁻¹ of a regular grid in θ", x: r.gridX, y: r.gridY, color: "#9aa3b2", width: 1 },
    { name: `‖θ − θ̂‖ = r̂ → ‖η − θ̂‖ = ρ`, x: r.inner.x, y: r.inner.y, color: "#0072B2", width: 2.5 },
    { name: `‖θ − θ̂‖ = δ (fixed)`, x: r.outer.x, y: r.outer.y, color: "#d62728", width: 2.5 },
  ];
  if (!psiPlot) {
    psiPlot = xyPlot(byId("psi-plot"), { title: "(a) the radius map ψ", xLabel: "r = ‖θ − θ̂‖", yLabel: "ψ(r) = ‖η − θ̂‖", xRange: [0, 1.5 * d], yRange: [0, 1.5 * d], series: psiSeries, equalAspect: true });
    gridPlot = xyPlot(byId("grid-plot"), { title: "(b) g⁻¹(θ) on the plane", xLabel: "η₁", yLabel: "η₂", xRange: ext, yRange: ext, series: gridSeries, equalAspect: true });
  } else {
    psiPlot.update(psiSeries, { x: [0, 1.5 * d], y: [0, 1.5 * d] });
    gridPlot!.update(gridSeries, { x: ext, y: ext });
  }
  rows(byId("radial-numbers"), [
    ["inside ‖θ − θ̂‖ < r̂", `η − θ̂ = (ρ/r̂)(θ − θ̂): Φ = g has Jacobian (r̂/ρ) I = ${f(s.rHat / s.rho, 4)} I`],
    ["Hessian at a minimum θ̂", `multiplied by (r̂/ρ)² = ${f(r.hessianFactor, 5)} in η (${r.hessianFactor > 1 ? "sharper" : r.hessianFactor < 1 ? "flatter" : "unchanged"})`],
    ["outside ‖θ − θ̂‖ > δ", "g is the identity: other minima keep their Hessian"],
  ]);
  publishAll();
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const root = byId("main");
  installErrorHandlers(root);
  // Initial positions, from the query string where given (tests and shared links).
  slider("alpha").value = String(numberParam("alphaLog", 0, { min: -0.55, max: 0.55 }));
  slider("epsilon").value = String(numberParam("epsilon", 0.25, { min: 0.05, max: 0.5 }));
  slider("fig5-a").value = String(numberParam("a", 0.5, { min: -0.45, max: 2 }));
  slider("fig5-b").value = String(numberParam("b", 0.05, { min: 0.01, max: 2 }));
  byId<HTMLSelectElement>("fig5-centre").value = String(numberParam("centre", 1, { min: 0, max: 2, integer: true }));
  slider("delta").value = String(numberParam("delta", 1, { min: 0.2, max: 1.5 }));
  slider("rhat").value = String(numberParam("rhat", 0.6, { min: 0.05, max: 0.95 }));
  slider("rho").value = String(numberParam("rho", 0.2, { min: 0.05, max: 0.95 }));

  await fig2AlphaCurve();
  const fig2 = coalesce(() => void updateFig2().catch(showError));
  for (const id of ["alpha", "epsilon"]) slider(id).addEventListener("input", fig2);
  await updateFig2();

  const f5 = coalesce(updateFig5);
  for (const id of ["fig5-a", "fig5-b"]) slider(id).addEventListener("input", f5);
  byId("fig5-centre").addEventListener("change", f5);
  byId("preset-identity").addEventListener("click", () => preset(0, 1, 1));
  byId("preset-sharpen").addEventListener("click", () => preset(0.5, 0.05, 1));
  byId("preset-flatten").addEventListener("click", () => preset(-0.4, 0.01, 1));
  updateFig5();

  const rad = coalesce(updateRadial);
  for (const id of ["delta", "rhat", "rho"]) slider(id).addEventListener("input", rad);
  updateRadial();
}

main().catch((e) => showError(e));
