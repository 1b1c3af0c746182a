/**
 * `flatness demo`: the built-in check run by the README's first command. A small ReLU net on
 * seeded data: prints the adapter, the loss, the gradient norm and an HVP, each checked against
 * the float64 reference, the HVP also against central differences of float64 gradients and the
 * T_alpha identity H(T_alpha theta) = D^-1 H D^-1.
 */
import { cpuBackend, openBackend } from "../backend/mod.ts";
import { initParameters, randomDataset } from "../init.ts";
import { mlpSpec } from "../model.ts";
import { Rng } from "../random.ts";
import { alphaScale, alphaScaleDiagonal } from "../transforms/alphaScale.ts";
import { relativeError } from "./format.ts";

export interface DemoResult {
  adapter: string;
  params: number;
  samples: number;
  loss: number;
  gradientNorm: number;
  vHv: number;
  checks: { name: string; relativeError: number; tolerance: number; pass: boolean }[];
}

export async function runDemo(log: (line: string) => void): Promise<DemoResult> {
  const spec = mlpSpec([8, 32, 32, 4]);
  const data = randomDataset(spec, 256, "ce", 1);
  const theta = Float64Array.from(Float32Array.from(initParameters(spec, 2)));
  const backend = await openBackend("webgpu");
  log(`adapter: ${backend.describe()}`);
  const gpu = await backend.objective(spec, data, "ce");
  // The oracle: the float64 engine on the same data.
  const reference = await cpuBackend().objective(spec, data, "ce");
  const s = gpu.space;
  log(`model: widths [8, 32, 32, 4], ReLU, ${s.dim} parameters; data: ${data.n} seeded samples, softmax cross-entropy`);
  const t = s.fromArray(theta);
  const g = s.zeros();
  const v = new Rng(3).normals(s.dim);
  const vg = s.fromArray(v);
  const hv = s.zeros();
  const checks: DemoResult["checks"] = [];
  const add = (name: string, err: number, tolerance: number) => checks.push({ name, relativeError: err, tolerance, pass: err <= tolerance });
  try {
    const loss = await gpu.gradient(t, g);
    const gradientNorm = Math.sqrt(await s.dot(g, g));
    await gpu.hvp(t, vg, hv);
    const vHv = await s.dot(vg, hv);
    const refG = reference.space.zeros();
    const refLoss = await reference.gradient(theta, refG);
    const refHv = reference.space.zeros();
    await reference.hvp(theta, v, refHv);
    add("loss vs float64 reference", Math.abs(loss - refLoss) / Math.abs(refLoss), 1e-5);
    add("gradient vs float64 reference", relativeError(await s.toArray(g), refG), 1e-4);
    add("HVP vs float64 reference", relativeError(await s.toArray(hv), refHv), 1e-4);
    // Central differences of float64 gradients along v: an HVP-free check of the GPU's H v.
    const h = 1e-6;
    const gp = reference.space.zeros();
    const gm = reference.space.zeros();
    await reference.gradient(theta.map((x, i) => x + h * v[i]), gp);
    await reference.gradient(theta.map((x, i) => x - h * v[i]), gm);
    add("HVP vs central differences of gradients", relativeError(await s.toArray(hv), gp.map((x, i) => (x - gm[i]) / (2 * h))), 1e-3);
    const alphas = [10, 0.5, 0.2];
    const d = alphaScaleDiagonal(spec, alphas);
    const scaled = s.fromArray(alphaScale(spec, theta, alphas));
    const hvScaled = s.zeros();
    await gpu.hvp(scaled, s.fromArray(v.map((x, i) => x * d[i])), hvScaled);
    const hvH = await s.toArray(hv);
    add("T_alpha: H(D theta) D v = D^-1 H v", relativeError(await s.toArray(hvScaled), hvH.map((x, i) => x / d[i])), 1e-4);
    log(`loss ${loss.toPrecision(6)}   gradient norm ${gradientNorm.toPrecision(6)}   v·Hv ${vHv.toPrecision(6)}`);
    for (const c of checks) log(`${c.pass ? "pass" : "FAIL"}  ${c.name}: relative error ${c.relativeError.toExponential(2)} (tolerance ${c.tolerance})`);
    return { adapter: backend.gpu!.describe(), params: s.dim, samples: data.n, loss, gradientNorm, vHv, checks };
  } finally {
    gpu.dispose();
    await backend.close();
  }
}
