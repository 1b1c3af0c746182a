/**
 * Checks the jax-js benchmark peer (src/bench/jaxPeer.ts) against float64 finite differences
 * written here, then times its HVP.
 *
 *   cd /work/main && XDG_RUNTIME_DIR=/tmp npx deno run -A test/deno/jax_peer_check.ts
 *
 * Correctness (tiny nets, fixed numbers, every loss kind, relu and leaky relu, each backend):
 *   loss      vs the float64 loss written here;
 *   gradient  vs central differences of the float64 loss;
 *   HVP       vs central differences of the float64 (hand-derived backprop) gradient along v.
 * Errors are normwise relative: max_i |a_i - r_i| / max_i |r_i|. Exit code 1 if any exceeds 1e-2.
 *
 * Timing: 20 HVPs on widths [64, 256, 256, 10], 1024 samples, ce loss: webgpu with each jit mode
 * ("full" is refused at this size, see src/bench/jaxPeer.ts), and wasm (eager, full jit) for
 * comparison. Not named *_test.ts so `deno test test/deno/` does not pick it up.
 *
 * Flags: --no-timing skips the timing; --backends=webgpu,wasm,cpu picks the checked backends.
 */
import { createJaxPeer, type JaxBackend, type JaxJitMode } from "../../src/bench/jaxPeer.ts";
import { type LossKind, type ModelSpec, mlpSpec, negativeSlope, parameterLayout } from "../../src/model.ts";
import type { Dataset } from "../../src/data.ts";

const TOL = 1e-2;
const args = new Set(Deno.args);
const backendsArg = Deno.args.find((a) => a.startsWith("--backends="));
const backends: JaxBackend[] = backendsArg
  ? (backendsArg.slice("--backends=".length).split(",") as JaxBackend[])
  : ["webgpu", "wasm", "cpu"];

// ---------------------------------------------------------------- float64 reference

/** Loss and (hand-derived backprop) gradient in float64. */
function lossAndGrad64(spec: ModelSpec, data: Dataset, loss: LossKind, theta: Float64Array): { loss: number; grad: Float64Array } {
  const layout = parameterLayout(spec);
  const slope = negativeSlope(spec.activation);
  const n = data.n;
  const K = spec.layers.length;
  const acts: Float64Array[] = [Float64Array.from(data.x)]; // a_0 .. a_{K-1}
  const pre: Float64Array[] = []; // z_0 .. z_{K-1}
  for (let k = 0; k < K; k++) {
    const { inFeatures: fi, outFeatures: fo } = spec.layers[k];
    const { weightOffset: wo, biasOffset: bo } = layout.layers[k];
    const a = acts[k];
    const z = new Float64Array(n * fo);
    for (let i = 0; i < n; i++) {
      for (let o = 0; o < fo; o++) {
        let s = bo >= 0 ? theta[bo + o] : 0;
        for (let j = 0; j < fi; j++) s += a[i * fi + j] * theta[wo + o * fi + j];
        z[i * fo + o] = s;
      }
    }
    pre.push(z);
    if (k < K - 1) acts.push(z.map((v) => (v > 0 ? v : slope * v)));
  }
  const c = spec.layers[K - 1].outFeatures;
  const z = pre[K - 1];
  const dz = new Float64Array(n * c);
  let L = 0;
  if (loss === "ce") {
    for (let i = 0; i < n; i++) {
      let m = -Infinity;
      for (let o = 0; o < c; o++) m = Math.max(m, z[i * c + o]);
      let s = 0;
      for (let o = 0; o < c; o++) s += Math.exp(z[i * c + o] - m);
      const lse = m + Math.log(s);
      const y = data.labels![i];
      L += lse - z[i * c + y];
      for (let o = 0; o < c; o++) dz[i * c + o] = (Math.exp(z[i * c + o] - lse) - (o === y ? 1 : 0)) / n;
    }
    L /= n;
  } else if (loss === "mse") {
    for (let e = 0; e < n * c; e++) {
      const d = z[e] - data.targets![e];
      L += d * d;
      dz[e] = (2 * d) / (n * c);
    }
    L /= n * c;
  } else {
    for (let i = 0; i < n; i++) {
      const zi = z[i];
      const y = data.labels![i];
      const sp = zi > 0 ? zi + Math.log1p(Math.exp(-zi)) : Math.log1p(Math.exp(zi));
      L += sp - y * zi;
      dz[i] = (1 / (1 + Math.exp(-zi)) - y) / n;
    }
    L /= n;
  }
  const g = new Float64Array(layout.dim);
  let delta = dz;
  for (let k = K - 1; k >= 0; k--) {
    const { inFeatures: fi, outFeatures: fo } = spec.layers[k];
    const { weightOffset: wo, biasOffset: bo } = layout.layers[k];
    const a = acts[k];
    for (let i = 0; i < n; i++) {
      for (let o = 0; o < fo; o++) {
        const d = delta[i * fo + o];
        if (bo >= 0) g[bo + o] += d;
        for (let j = 0; j < fi; j++) g[wo + o * fi + j] += d * a[i * fi + j];
      }
    }
    if (k > 0) {
      const zp = pre[k - 1];
      const next = new Float64Array(n * fi);
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < fi; j++) {
          let s = 0;
          for (let o = 0; o < fo; o++) s += delta[i * fo + o] * theta[wo + o * fi + j];
          next[i * fi + j] = s * (zp[i * fi + j] > 0 ? 1 : slope);
        }
      }
      delta = next;
    }
  }
  return { loss: L, grad: g };
}

/** Smallest |pre-activation| of the hidden layers: finite differences need it well above eps. */
function minHiddenPreact(spec: ModelSpec, data: Dataset, theta: Float64Array): number {
  const layout = parameterLayout(spec);
  const slope = negativeSlope(spec.activation);
  let a = Float64Array.from(data.x);
  let m = Infinity;
  for (let k = 0; k < spec.layers.length - 1; k++) {
    const { inFeatures: fi, outFeatures: fo } = spec.layers[k];
    const { weightOffset: wo, biasOffset: bo } = layout.layers[k];
    const z = new Float64Array(data.n * fo);
    for (let i = 0; i < data.n; i++) {
      for (let o = 0; o < fo; o++) {
        let s = bo >= 0 ? theta[bo + o] : 0;
        for (let j = 0; j < fi; j++) s += a[i * fi + j] * theta[wo + o * fi + j];
        z[i * fo + o] = s;
        m = Math.min(m, Math.abs(s));
      }
    }
    a = z.map((v) => (v > 0 ? v : slope * v));
  }
  return m;
}

function relErr(a: ArrayLike<number>, ref: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    num = Math.max(num, Math.abs(a[i] - ref[i]));
    den = Math.max(den, Math.abs(ref[i]));
  }
  return num / Math.max(den, 1e-30);
}

// ---------------------------------------------------------------- fixed problems

/** Deterministic "random" numbers in [-1, 1). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  };
}

interface Problem {
  name: string;
  spec: ModelSpec;
  data: Dataset;
  loss: LossKind;
  theta: Float64Array;
  v: Float64Array;
}

function tinyProblem(loss: LossKind, leaky: boolean, seed: number): Problem {
  const out = loss === "logistic" ? 1 : 2;
  const spec = mlpSpec([3, 4, out], {
    bias: true,
    activation: leaky ? { kind: "leaky_relu", slope: 0.1 } : { kind: "relu" },
  });
  const n = 5;
  const rnd = lcg(seed);
  const x = new Float32Array(n * 3).map(() => rnd());
  const data: Dataset = { n, features: 3, x };
  if (loss === "mse") data.targets = new Float32Array(n * out).map(() => rnd());
  else data.labels = Int32Array.from({ length: n }, (_, i) => (loss === "ce" ? i % out : (i * 7) % 2));
  const dim = parameterLayout(spec).dim;
  // theta and v are float32-representable so the jax-js (f32) and float64 runs see the same point.
  const theta = Float64Array.from(new Float32Array(dim).map(() => rnd()));
  const v = Float64Array.from(new Float32Array(dim).map(() => rnd()));
  return { name: `${loss}/${leaky ? "leaky_relu(0.1)" : "relu"} [3,4,${out}] N=${n}`, spec, data, loss, theta, v };
}

// ---------------------------------------------------------------- correctness

let failed = false;

async function checkProblem(p: Problem, backend: JaxBackend, jitMode: JaxJitMode): Promise<void> {
  const margin = minHiddenPreact(p.spec, p.data, p.theta);
  const eps = 1e-6;
  const ref = lossAndGrad64(p.spec, p.data, p.loss, p.theta);
  // Gradient by central differences of the float64 loss.
  const fdGrad = new Float64Array(p.theta.length);
  for (let i = 0; i < p.theta.length; i++) {
    const tp = Float64Array.from(p.theta);
    const tm = Float64Array.from(p.theta);
    tp[i] += eps;
    tm[i] -= eps;
    fdGrad[i] = (lossAndGrad64(p.spec, p.data, p.loss, tp).loss - lossAndGrad64(p.spec, p.data, p.loss, tm).loss) / (2 * eps);
  }
  // HVP by central differences of the float64 gradient along v.
  const tp = p.theta.map((t, i) => t + eps * p.v[i]);
  const tm = p.theta.map((t, i) => t - eps * p.v[i]);
  const gp = lossAndGrad64(p.spec, p.data, p.loss, tp).grad;
  const gm = lossAndGrad64(p.spec, p.data, p.loss, tm).grad;
  const fdHvp = gp.map((g, i) => (g - gm[i]) / (2 * eps));

  const peer = await createJaxPeer(p.spec, p.data, p.loss, { backend, jit: jitMode });
  try {
    const theta32 = Float32Array.from(p.theta);
    const v32 = Float32Array.from(p.v);
    const L = await peer.loss(theta32);
    const g = await peer.gradient(theta32);
    const hv = await peer.hvp(theta32, v32);
    // Second call: the data must still be alive (ref-counting) and give the same result.
    const hv2 = await peer.hvp(theta32, v32);
    const eLoss = Math.abs(L - ref.loss) / Math.max(Math.abs(ref.loss), 1e-30);
    const eGrad = relErr(g, fdGrad);
    const eHvp = relErr(hv, fdHvp);
    const eRepeat = relErr(hv2, hv);
    const eBackprop = relErr(ref.grad, fdGrad); // sanity of the reference itself
    const bad = !(eLoss <= TOL && eGrad <= TOL && eHvp <= TOL && eRepeat <= TOL && eBackprop <= TOL);
    if (bad) failed = true;
    console.log(
      `${bad ? "FAIL" : "ok  "} ${backend.padEnd(6)} jit=${jitMode.padEnd(4)} ${p.name.padEnd(34)} loss ${eLoss.toExponential(2)}  grad ${
        eGrad.toExponential(2)
      }  hvp ${eHvp.toExponential(2)}  repeat ${eRepeat.toExponential(2)}  (ref backprop-vs-fd ${
        eBackprop.toExponential(2)
      }, min|z| ${margin.toFixed(3)})`,
    );
  } finally {
    peer.dispose();
  }
}

console.log(`max relative errors (normwise: max|a-ref| / max|ref|), tolerance ${TOL}`);
for (const backend of backends) {
  // Every jit mode on webgpu; the default (eager) and "full" on the CPU backends.
  const modes: JaxJitMode[] = backend === "webgpu" ? ["none", "head", "full"] : ["none", "full"];
  for (const jitMode of modes) {
    let seed = 1;
    for (const loss of ["ce", "mse", "logistic"] as LossKind[]) {
      for (const leaky of [false, true]) {
        try {
          await checkProblem(tinyProblem(loss, leaky, seed++), backend, jitMode);
        } catch (e) {
          failed = true;
          console.log(`FAIL ${backend} jit=${jitMode} ${loss}: ${e instanceof Error ? e.stack ?? e.message : e}`);
        }
      }
    }
  }
}

// ---------------------------------------------------------------- timing

async function timeHvp(backend: JaxBackend, jitMode: JaxJitMode, reps: number): Promise<void> {
  const widths = [64, 256, 256, 10];
  const n = 1024;
  const spec = mlpSpec(widths, { bias: true });
  const rnd = lcg(12345);
  const data: Dataset = {
    n,
    features: widths[0],
    x: new Float32Array(n * widths[0]).map(() => rnd()),
    labels: Int32Array.from({ length: n }, (_, i) => i % 10),
  };
  const dim = parameterLayout(spec).dim;
  const theta = new Float32Array(dim).map(() => rnd() * 0.1);
  const v = new Float32Array(dim).map(() => rnd());
  const t0 = performance.now();
  const peer = await createJaxPeer(spec, data, "ce", { backend, jit: jitMode });
  try {
    const tCreate = performance.now() - t0;
    const tw = performance.now();
    await peer.hvp(theta, v); // warm-up: compiles kernels (and traces, with jit)
    const tWarm = performance.now() - tw;
    const times: number[] = [];
    const t1 = performance.now();
    let last: Float32Array = new Float32Array();
    for (let r = 0; r < reps; r++) {
      const s = performance.now();
      last = await peer.hvp(theta, v);
      times.push(performance.now() - s);
    }
    const total = performance.now() - t1;
    times.sort((a, b) => a - b);
    let finite = true;
    for (const x of last) if (!Number.isFinite(x)) finite = false;
    console.log(
      `${backend.padEnd(6)} jit=${jitMode.padEnd(4)} [${widths}] N=${n} n=${dim}: ${(total / reps).toFixed(2)} ms/HVP mean over ${reps} (median ${
        times[reps >> 1].toFixed(2)
      }, min ${times[0].toFixed(2)}); first call ${tWarm.toFixed(0)} ms, create ${tCreate.toFixed(0)} ms${finite ? "" : "  NON-FINITE"}`,
    );
  } finally {
    peer.dispose();
  }
}

if (!args.has("--no-timing")) {
  console.log("timing (ce loss, each HVP call uploads theta and v, runs, and reads H v back):");
  const runs: [JaxBackend, JaxJitMode][] = [["webgpu", "none"], ["webgpu", "head"], ["webgpu", "full"], ["wasm", "none"], ["wasm", "full"]];
  for (const [backend, jitMode] of runs) {
    if (!backends.includes(backend) && backend !== "webgpu") continue;
    try {
      await timeHvp(backend, jitMode, 20);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      if (backend === "webgpu" && jitMode === "full" && msg.includes("maxStorageBufferBindingSize")) {
        console.log(`webgpu jit=full refused (expected): ${msg}`);
        continue;
      }
      if (backend === "webgpu" && jitMode === "none") failed = true;
      console.log(`timing ${backend} jit=${jitMode} failed: ${e instanceof Error ? e.stack ?? e.message : e}`);
    }
  }
}

if (failed) {
  console.log("jax peer check FAILED");
  Deno.exit(1);
}
console.log("jax peer check passed");
// jax-js's backends (the WebGPU device, wasm workers) keep Deno's event loop alive: exit explicitly.
Deno.exit(0);
