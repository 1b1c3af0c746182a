/**
 * `flatness bench --metrics`: the curvature metrics at benchmark size (issue: ~100k parameters over
 * 2,048 samples): the top eigenvalue by Lanczos, the trace by Hutch++, and the same deflation-free
 * power iteration run by this engine (vectors on the GPU) and by @jax-js/jax (jvp(grad(f)) HVPs,
 * vectors on the host, as a user of that library would write it), from the same start vector, for
 * the same number of HVPs, in the same runtime and run. The two power iterations must agree before
 * their times are compared.
 */
import { openBackend } from "../backend/mod.ts";
import { initParameters, randomDataset } from "../init.ts";
import { mlpSpec, type ModelSpec } from "../model.ts";
import { withCost } from "../metrics/cost.ts";
import { hessianOperator } from "../metrics/operator.ts";
import { lanczosEigenpairs, powerIteration } from "../metrics/spectrum.ts";
import { hutchPlusPlusTrace } from "../metrics/trace.ts";
import { Rng } from "../random.ts";

export interface MetricBenchOptions {
  /** Layer widths (default [256, 256, 128, 10]: 99,978 parameters). */
  widths?: number[];
  samples?: number;
  /** Power-iteration steps, each one HVP, on both sides (default 20). */
  powerIterations?: number;
  /** Hutch++ matrix-vector products (default 99 on a hardware GPU, 30 on software WebGPU). */
  traceMatvecs?: number;
  jax?: boolean;
  seed?: number;
  log?: (line: string) => void;
}

export interface MetricBenchResult {
  adapter: string;
  software: boolean;
  params: number;
  samples: number;
  lanczos: { eigenvalue: number; residual: number; converged: boolean; steps: number; hvps: number; wallMs: number };
  hutchPlusPlus: { estimate: number; stderr: number; hvps: number; wallMs: number };
  power: { eigenvalue: number; iterations: number; hvps: number; wallMs: number; msPerHvp: number };
  jaxPower?: { backend: string; eigenvalue: number; iterations: number; wallMs: number; msPerHvp: number; relativeDifference: number; speedup: number } | { error: string };
}

export async function runMetricBench(options: MetricBenchOptions = {}): Promise<MetricBenchResult> {
  const log = options.log ?? (() => {});
  const widths = options.widths ?? [256, 256, 128, 10];
  const samples = options.samples ?? 2048;
  const iterations = options.powerIterations ?? 20;
  const seed = options.seed ?? 0;
  const spec = mlpSpec(widths);
  const data = randomDataset(spec, samples, "ce", seed + 1);
  const theta = Float64Array.from(Float32Array.from(initParameters(spec, seed + 2)));
  const backend = await openBackend("webgpu");
  const software = backend.isSoftware;
  const traceMatvecs = options.traceMatvecs ?? (software ? 30 : 99);
  const objective = await backend.objective(spec, data, "ce");
  const th = objective.space.fromArray(theta);
  try {
    log(`metric bench: widths [${widths.join(", ")}], ${objective.space.dim} parameters, ${samples} samples, adapter ${backend.gpu!.describe()}`);
    const op = hessianOperator(objective, th);
    const scratch = objective.space.zeros();
    await objective.hvp(th, th, scratch).finally(() => objective.space.dispose(scratch)); // warm-up: pipelines and plans
    const lz = await withCost(objective, () => lanczosEigenpairs(op, { k: 1, which: "LA", seed, tol: 1e-4 }));
    const lanczos = {
      eigenvalue: lz.result.eigenvalues[0],
      residual: lz.result.residuals[0],
      converged: lz.result.converged[0],
      steps: lz.result.steps,
      hvps: lz.cost.hvps,
      wallMs: lz.cost.wallMs,
    };
    log(`  Lanczos top eigenvalue ${lanczos.eigenvalue.toPrecision(6)} (residual ${lanczos.residual.toExponential(2)}), ${lanczos.hvps} HVPs, ${lanczos.wallMs.toFixed(0)} ms`);
    const tr = await withCost(objective, () => hutchPlusPlusTrace(op, { matvecs: traceMatvecs, seed }));
    const hutchPlusPlus = { estimate: tr.result.estimate, stderr: tr.result.stderr, hvps: tr.cost.hvps, wallMs: tr.cost.wallMs };
    log(`  Hutch++ trace ${hutchPlusPlus.estimate.toPrecision(6)} ± ${hutchPlusPlus.stderr.toPrecision(3)}, ${hutchPlusPlus.hvps} HVPs, ${hutchPlusPlus.wallMs.toFixed(0)} ms`);
    const pw = await withCost(objective, () => powerIteration(op, { k: 1, maxIter: iterations, tol: 1e-30, seed }));
    const power = {
      eigenvalue: pw.result.eigenvalues[0],
      iterations: pw.result.iterations[0],
      hvps: pw.cost.hvps,
      wallMs: pw.cost.wallMs,
      msPerHvp: pw.cost.wallMs / Math.max(1, pw.cost.hvps),
    };
    log(`  power iteration (ours) ${power.eigenvalue.toPrecision(6)} after ${power.iterations} steps, ${power.wallMs.toFixed(0)} ms`);
    const result: MetricBenchResult = { adapter: backend.gpu!.describe(), software, params: objective.space.dim, samples, lanczos, hutchPlusPlus, power };
    if (options.jax !== false) result.jaxPower = await jaxPowerIteration(spec, data, theta, iterations, seed, power, log);
    return result;
  } finally {
    objective.space.dispose(th);
    objective.dispose();
    await backend.close();
  }
}

/**
 * The same power iteration with @jax-js/jax HVPs: v <- Hv / ||Hv||, lambda = v·Hv, from the start
 * vector powerIteration draws (Gaussian from Rng(seed), normalised), for `iterations` HVPs.
 */
async function jaxPowerIteration(
  spec: ModelSpec,
  data: ReturnType<typeof randomDataset>,
  theta: Float64Array,
  iterations: number,
  seed: number,
  ours: { eigenvalue: number; wallMs: number },
  log: (l: string) => void,
): Promise<MetricBenchResult["jaxPower"]> {
  try {
    const { createJaxPeer } = await import("./jaxPeer.ts");
    const peer = await createJaxPeer(spec, data, "ce", { backend: "webgpu" });
    try {
      const th = Float32Array.from(theta);
      let v = Float32Array.from(new Rng(seed).normals(theta.length));
      const normalise = (a: Float32Array) => {
        let s = 0;
        for (const x of a) s += x * x;
        const inv = 1 / Math.sqrt(s);
        return a.map((x) => x * inv);
      };
      v = normalise(v);
      await peer.hvp(th, v); // warm-up
      let lambda = 0;
      const t0 = performance.now();
      for (let i = 0; i < iterations; i++) {
        const hv = await peer.hvp(th, v);
        lambda = 0;
        for (let j = 0; j < v.length; j++) lambda += v[j] * hv[j];
        v = normalise(hv);
      }
      const wallMs = performance.now() - t0;
      const relativeDifference = Math.abs(lambda - ours.eigenvalue) / Math.max(Math.abs(ours.eigenvalue), 1e-30);
      log(`  power iteration (jax-js ${peer.backend}) ${lambda.toPrecision(6)} after ${iterations} steps, ${wallMs.toFixed(0)} ms`);
      if (!(relativeDifference < 1e-2)) {
        return { error: `jax-js power iteration disagrees with ours (${lambda} vs ${ours.eigenvalue}); not compared` };
      }
      return { backend: peer.backend, eigenvalue: lambda, iterations, wallMs, msPerHvp: wallMs / iterations, relativeDifference, speedup: wallMs / ours.wallMs };
    } finally {
      peer.dispose();
    }
  } catch (e) {
    return { error: `jax-js peer failed: ${(e as Error).message}` };
  }
}
