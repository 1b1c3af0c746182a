/**
 * `flatness bench`: times forward, gradient, HVP and block HVP (k = 8) on a few MLP and CNN sizes,
 * on every available backend (WebGPU where an adapter comes, and the wasm CPU engine), beside the
 * same HVP by @jax-js/jax (jvp(grad(f))) in the same runtime and run (its WebGPU backend beside
 * ours, its wasm backend beside the wasm engine), after checking that the two agree. Every figure of a row is taken in the same run, so the ratios compare like with like.
 */
import { type Backend, type BackendName, openBackend, probeAdapter, webgpuPresent } from "../backend/mod.ts";
import { passFlops } from "../flops.ts";
import { initParameters, randomDataset } from "../init.ts";
import { parseArchitecture } from "../architecture.ts";
import type { Dataset } from "../data.ts";
import { type ModelSpec, mlpSpec } from "../model.ts";
import { Rng } from "../random.ts";
import { relativeError } from "../format.ts";

/** One benchmark net: an MLP by its widths, or any net by its architecture text on an input shape. */
export interface BenchSize {
  name: string;
  widths?: number[];
  arch?: string;
  input?: number[];
  batch: number;
}

/**
 * MLPs of ~10k, ~100k and ~1M parameters; an MNIST-sized CNN (two 3x3 conv layers with max
 * pooling and a linear head, Keskar et al.'s C1 shape scaled down) and a larger CIFAR-sized one.
 */
export const BENCH_SIZES: BenchSize[] = [
  { name: "10k", widths: [64, 128, 10], batch: 256 },
  { name: "100k", widths: [256, 256, 128, 10], batch: 1024 },
  { name: "1M", widths: [784, 1024, 256, 10], batch: 4096 },
  { name: "cnn-mnist", arch: "conv(8,3,padding=1),relu,maxpool(2),conv(16,3,padding=1),relu,maxpool(2),flatten,linear(10)", input: [1, 28, 28], batch: 256 },
  { name: "cnn-cifar", arch: "conv(16,3,padding=1),relu,maxpool(2),conv(32,3,padding=1),relu,maxpool(2),conv(64,3,padding=1),relu,maxpool(2),flatten,linear(10)", input: [3, 32, 32], batch: 256 },
];

/** The spec of a benchmark size. */
export function benchSpec(size: BenchSize): ModelSpec {
  return size.arch ? parseArchitecture(size.arch, size.input!) : mlpSpec(size.widths!);
}

function describeSize(size: BenchSize): string {
  return size.arch ? `${size.arch} on ${size.input!.join("x")}` : `widths [${size.widths}]`;
}

export interface BenchRow {
  name: string;
  /** The backend timed ("webgpu" or "wasm"). */
  backend: string;
  /** The net: "widths [..]" or its architecture on its input shape. */
  net: string;
  params: number;
  batch: number;
  forwardMs: number;
  gradientMs: number;
  hvpMs: number;
  /** HVP at a theta whose forward pass and deltas are kept from the previous call (Lanczos-style use). */
  hvpReuseMs: number;
  blockHvpMs: number;
  blockSize: number;
  hvpOverGradient: number;
  blockOverHvp: number;
  forwardGflops: number;
  gradientGflops: number;
  hvpGflops: number;
  blockHvpGflops: number;
  /**
   * The same HVP by @jax-js/jax. Both sides are timed host-to-host for this comparison (upload v,
   * HVP, read Hv back), since the peer's API returns host arrays: `oursMs` is ours timed that way.
   */
  jax?: { backend: string; hvpMs: number; oursMs: number; relativeError: number; speedup: number; note?: string } | { error: string };
}

async function timeIt(repeats: number, run: () => Promise<unknown>, settle: () => Promise<unknown>): Promise<number> {
  await run(); // warm-up: pipelines, plans, caches
  await settle();
  const times: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    await run();
    await settle();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]; // median
}

export interface BenchOptions {
  sizes?: string[];
  repeats?: number;
  blockSize?: number;
  jax?: boolean;
  /** Backends to time, in order (default: webgpu where an adapter comes, then wasm). */
  backends?: BackendName[];
  log?: (line: string) => void;
}

/** The backends `bench` times by default: WebGPU where an adapter comes, and the wasm engine. */
async function defaultBenchBackends(): Promise<BackendName[]> {
  const names: BackendName[] = [];
  if (webgpuPresent() && (await probeAdapter())) names.push("webgpu");
  names.push("wasm");
  return names;
}

export async function runBench(options: BenchOptions = {}): Promise<{ adapter: string; software: boolean; backends: { name: string; describe: string }[]; rows: BenchRow[] }> {
  const log = options.log ?? (() => {});
  const names = options.backends ?? (await defaultBenchBackends());
  const k = options.blockSize ?? 8;
  const rows: BenchRow[] = [];
  let adapter = "none";
  let software = true;
  const opened: { name: string; describe: string }[] = [];
  for (const name of names) {
    // Every backend timed is opened through the seam, one at a time.
    const backend = await openBackend(name);
    try {
      const isGpu = backend.gpu !== null;
      if (isGpu) {
        adapter = backend.gpu!.describe();
        software = backend.gpu!.isSoftware;
      }
      opened.push({ name: backend.name, describe: backend.describe() });
      log(`backend ${backend.name}: ${backend.describe()}`);
      const slow = backend.isSoftware;
      const wanted = options.sizes ?? (slow ? ["10k", "100k", "cnn-mnist"] : BENCH_SIZES.map((s) => s.name));
      const sizes = BENCH_SIZES.filter((s) => wanted.includes(s.name));
      const repeats = options.repeats ?? (isGpu && slow ? 3 : isGpu ? 10 : 5);
      for (const size of sizes) {
        log(`bench ${size.name} on ${backend.name}: ${describeSize(size)}, batch ${size.batch}`);
        rows.push(await benchOne(backend, benchSpec(size), size, repeats, k, options.jax ?? true, log));
      }
    } finally {
      await backend.close();
    }
  }
  return { adapter, software, backends: opened, rows };
}

async function benchOne(backend: Backend, spec: ModelSpec, size: BenchSize, repeats: number, k: number, withJax: boolean, log: (l: string) => void): Promise<BenchRow> {
  const data = randomDataset(spec, size.batch, "ce", 1);
  const theta0 = Float32Array.from(initParameters(spec, 2));
  const full = await backend.objective(spec, data, "ce", { maxBlock: k, reuseForwardState: false });
  const reuse = await backend.objective(spec, data, "ce", { maxBlock: 1 });
  const s = full.space;
  const rng = new Rng(3);
  const theta = s.fromArray(theta0);
  const thetaR = reuse.space.fromArray(theta0);
  const g = s.zeros();
  const dim = s.dim;
  const v = rng.normals(dim);
  const vs = Array.from({ length: k }, (_, j) => s.fromArray(j === 0 ? v : rng.normals(dim)));
  const outs = vs.map(() => s.zeros());
  const vR = reuse.space.fromArray(v);
  const outR = reuse.space.zeros();
  const ctx = backend.gpu;
  const settle = () => (ctx ? ctx.device.queue.onSubmittedWorkDone() : Promise.resolve());
  try {
    const forwardMs = await timeIt(repeats, () => full.loss(theta), settle);
    const gradientMs = await timeIt(repeats, () => full.gradient(theta, g), settle);
    const hvpMs = await timeIt(repeats, () => full.hvp(theta, vs[0], outs[0]), settle);
    const hvpReuseMs = await timeIt(repeats, () => reuse.hvp(thetaR, vR, outR), settle);
    const blockHvpMs = await timeIt(repeats, () => full.hvpBlock(theta, vs, outs), settle);
    const flops = passFlops(spec, size.batch);
    const row: BenchRow = {
      name: size.name,
      backend: backend.name,
      net: describeSize(size),
      params: dim,
      batch: size.batch,
      forwardMs, gradientMs, hvpMs, hvpReuseMs, blockHvpMs, blockSize: k,
      hvpOverGradient: hvpMs / gradientMs,
      blockOverHvp: blockHvpMs / hvpMs,
      forwardGflops: flops.forward / forwardMs / 1e6,
      gradientGflops: flops.gradient / gradientMs / 1e6,
      hvpGflops: flops.hvp / hvpMs / 1e6,
      blockHvpGflops: flops.block(k) / blockHvpMs / 1e6,
    };
    if (withJax) {
      await full.hvp(theta, vs[0], outs[0]);
      const v32 = Float32Array.from(v);
      const oursMs = await timeIt(repeats, async () => {
        s.write(vs[0], v32);
        await full.hvp(theta, vs[0], outs[0]);
        return await s.toArray(outs[0]);
      }, settle);
      // The peer on the same kind of engine: jax-js's WebGPU backend beside ours, its wasm backend beside the wasm engine.
      const jaxBackend = backend.name === "webgpu" ? "webgpu" : "wasm";
      row.jax = await benchJax(spec, data, theta0, v, await s.toArray(outs[0]), oursMs, repeats, jaxBackend, log);
    }
    log(`  ${backend.name}: forward ${forwardMs.toFixed(2)} ms, gradient ${gradientMs.toFixed(2)} ms, HVP ${hvpMs.toFixed(2)} ms (${row.hvpOverGradient.toFixed(2)} gradients, ${row.hvpGflops.toFixed(1)} GFLOP/s), ` +
      `block of ${k} ${blockHvpMs.toFixed(2)} ms (${row.blockOverHvp.toFixed(2)} HVPs)`);
    return row;
  } finally {
    for (const x of [theta, g, ...vs, ...outs]) s.dispose(x);
    reuse.space.dispose(thetaR);
    reuse.space.dispose(vR);
    reuse.space.dispose(outR);
    full.dispose();
    reuse.dispose();
  }
}

async function benchJax(
  spec: ModelSpec,
  data: Dataset,
  theta: Float32Array,
  v: Float64Array,
  ours: Float64Array,
  oursMs: number,
  repeats: number,
  jaxBackend: "webgpu" | "wasm",
  log: (l: string) => void,
): Promise<BenchRow["jax"]> {
  try {
    const { createJaxPeer } = await import("./jaxPeer.ts");
    // jax-js on WebGPU first (the same runtime and device as ours); where its HVP is wrong (on
    // lavapipe, any of its kernels that loops past 65,535 steps in one invocation is cut short:
    // its conv gradients at batch >= 84 here), its WebAssembly backend, named in the row.
    // Beside the wasm engine, jax-js's WebAssembly backend only (CPU against CPU).
    const rejected: string[] = [];
    for (const backend of jaxBackend === "wasm" ? (["wasm"] as const) : (["webgpu", "wasm"] as const)) {
      const peer = await createJaxPeer(spec, data, "ce", { backend });
      try {
        const v32 = Float32Array.from(v);
        const theirs = await peer.hvp(theta, v32);
        const err = relativeError(theirs, ours);
        if (!(err < 1e-3)) {
          rejected.push(`jax-js ${peer.backend} HVP disagrees with ours (relative error ${err.toExponential(2)}); not timed`);
          continue;
        }
        const hvpMs = await timeIt(repeats, () => peer.hvp(theta, v32), () => Promise.resolve());
        log(`  jax-js (${peer.backend}) HVP ${hvpMs.toFixed(2)} ms, relative difference ${err.toExponential(2)}`);
        return { backend: peer.backend, hvpMs, oursMs, relativeError: err, speedup: hvpMs / oursMs, ...(rejected.length ? { note: rejected.join("; ") } : {}) };
      } finally {
        peer.dispose();
      }
    }
    return { error: rejected.join("; ") };
  } catch (e) {
    return { error: `jax-js peer failed: ${(e as Error).message}` };
  }
}
