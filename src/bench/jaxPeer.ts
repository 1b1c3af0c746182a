/**
 * Benchmark peer: the same loss, gradient and exact Hessian-vector product as the WebGPU engine,
 * computed with jax-js (`jvp(grad(f))`, forward-over-reverse), on jax-js's WebGPU backend or its
 * CPU backends ("wasm": WebAssembly kernels; "cpu": interpreted JS, debugging only).
 *
 * Layout: the flat parameter vector of src/model.ts. The jax function slices theta into
 * W_k [out, in] (row-major; [out, in/groups, kh, kw] for a convolution, run by
 * lax.convGeneralDilated on NCHW images, pooled by lax.reduceWindow) and b_k [out] itself, so gradients and HVPs are taken with respect to
 * the whole flat vector and come back in the same layout with no repacking.
 *
 * Activation: phi(z) = z > 0 ? z : slope * z, written with `where(z > 0, ...)` so that
 * phi'(0) = slope (0 for ReLU), as in PyTorch and the engine. (jax-js's nn.relu is maximum(z, 0),
 * whose derivative at a tie differs, and its nn.leakyRelu tests z < 0, giving phi'(0) = 1.)
 *
 * Losses (all means, as the torch modules):
 *   "ce":       mean_i [ logsumexp(z_i) - z_i[y_i] ]  (one-hot labels built once on the host)
 *   "mse":      mean over N*C elements of (z - t)^2
 *   "logistic": mean_i [ softplus(z_i) - y_i z_i ]     (one output; overflow-safe softplus)
 *
 * Device residency: x and the float target (one-hot / targets / labels as float) are uploaded once
 * at creation and kept on the device; each call uploads only theta (and v), runs, and reads the
 * result back (awaiting the device). dispose() frees them and the jit caches.
 *
 * jax-js reference counting: every jax-js function (and every jitted or transformed function)
 * consumes one reference of each Array argument. The persistent data arrays are therefore passed
 * as `x.ref` / `t.ref`; inside the traced function every array used more than once is `.ref`'d on
 * all uses but the last; `Array.data()` consumes the array it reads.
 */
import { type Device, defaultDevice, getWebGPUDevice, grad, init, jit, jvp, lax, nn, numpy as np } from "@jax-js/jax";
import { isConv, type LossKind, type ModelSpec, negativeSlope, outputWidth, parameterLayout, weightShape } from "../model.ts";
import type { Dataset } from "../data.ts";
import { validateDataset } from "../data.ts";

export type JaxBackend = "webgpu" | "wasm" | "cpu";

export interface JaxPeer {
  backend: string;
  /** Which part is wrapped in jax-js `jit` (see JaxJitMode). */
  jit: JaxJitMode;
  loss(theta: Float32Array): Promise<number>;
  gradient(theta: Float32Array): Promise<Float32Array>;
  hvp(theta: Float32Array, v: Float32Array): Promise<Float32Array>;
  dispose(): void;
}

export interface JaxPeerOptions {
  backend?: JaxBackend;
  /** What to wrap in jax-js `jit` (see JaxJitMode; default DEFAULT_JIT_MODE). */
  jit?: JaxJitMode;
}

/**
 * "none": eager (the default); "head": only the loss head h(z, t) is jitted (the matmuls run
 * eagerly); "full": loss, gradient and HVP are each one jitted function.
 *
 * Measured with jax-js 0.1.25 under Deno (lavapipe WebGPU, 16-core wasm), net [64,256,256,10],
 * N = 1024, ce: jit does not help. "full" makes the wasm HVP ~3x slower (266 vs 77 ms) and on
 * webgpu gives wrong HVPs there (a 256 MiB [N,256,256] operand over the 128 MiB binding limit;
 * createJaxPeer refuses such sizes); "head" is ~10% slower than eager. Eager's one flaw:
 * jax-js's eager jvp-of-grad leaks a few small device buffers per HVP call when the head uses
 * log / max-reductions (ce: 6 buffers of N floats per call; logistic: 1; mse: none), so a long
 * benchmark loses ~24 KB per HVP at N = 1024. "full" has no leak.
 */
export type JaxJitMode = "none" | "head" | "full";
export const DEFAULT_JIT_MODE: JaxJitMode = "none";

type Arr = np.Array;

const initialized = new Set<Device>();

async function ensureBackend(backend: JaxBackend): Promise<void> {
  if (initialized.has(backend)) return;
  const available = await init(backend);
  if (!available.includes(backend)) {
    throw new Error(`jax-js backend "${backend}" is not available here (init gave [${available.join(", ")}])`);
  }
  initialized.add(backend);
}

/** The loss head h(z, t) -> scalar mean loss, for outputs z [N, C]; consumes both arguments. */
export function makeLossHead(n: number, c: number, loss: LossKind): (z: Arr, t: Arr) => Arr {
  if (loss === "ce") {
    // -(1/N) sum_i sum_c onehot[i,c] * logsoftmax(z)[i,c]
    return (z, t) => nn.logSoftmax(z, -1).mul(t).sum().mul(-1 / n);
  }
  if (loss === "mse") {
    return (z, t) => {
      const d = z.sub(t);
      return d.ref.mul(d).sum().mul(1 / (n * c));
    };
  }
  // logistic: mean softplus(z) - y z, z: [N, 1], t: [N, 1]. softplus(z) = max(z, 0) + log1p(exp(-|z|))
  // (jax-js's nn.softplus is log(exp(z) + 1), which overflows to inf for z > 88 in float32).
  return (z, t) => {
    const sp = np.maximum(z.ref, 0).add(np.log1p(np.exp(np.abs(z.ref).neg())));
    return sp.sub(z.mul(t)).sum().mul(1 / n);
  };
}

/**
 * Builds the scalar loss f(theta, x, t) = head(net(theta, x), t) for the spec; consumes its three
 * arguments. `head` defaults to makeLossHead(...) (pass a jitted one to fuse only the head).
 */
export function makeLossFn(
  spec: ModelSpec,
  n: number,
  loss: LossKind,
  head: (z: Arr, t: Arr) => Arr = makeLossHead(n, outputWidth(spec), loss),
): (theta: Arr, x: Arr, t: Arr) => Arr {
  const layout = parameterLayout(spec);
  const slope = negativeSlope(spec.activation);
  const last = spec.layers.length - 1;
  return (theta: Arr, x: Arr, t: Arr): Arr => {
    let a = x;
    spec.layers.forEach((l, k) => {
      const { weightOffset, biasOffset } = layout.layers[k];
      const shape = weightShape(l);
      const wSize = shape.reduce((p, q) => p * q, 1);
      const w = theta.ref.slice([weightOffset, weightOffset + wSize]).reshape(shape);
      let z: Arr;
      if (isConv(l)) {
        if (k === 0) a = a.reshape([n, l.inChannels, l.inHeight, l.inWidth]);
        z = lax.convGeneralDilated(a, w, l.stride, [[l.padding[0], l.padding[0]], [l.padding[1], l.padding[1]]], {
          rhsDilation: l.dilation,
          featureGroupCount: l.groups,
        }); // [N, out, H', W']
        if (biasOffset >= 0) z = z.add(theta.ref.slice([biasOffset, biasOffset + l.outChannels]).reshape([1, l.outChannels, 1, 1]));
      } else {
        if (a.ndim !== 2) a = a.reshape([n, l.inFeatures]); // Flatten (NCHW order)
        z = np.matmul(a, w.transpose()); // [N, out]
        if (biasOffset >= 0) z = z.add(theta.ref.slice([biasOffset, biasOffset + l.outFeatures]));
      }
      if (k < last) {
        // phi(z) = z > 0 ? z : slope * z
        a = slope === 0
          ? np.where(z.ref.greater(0), z, 0)
          : np.where(z.ref.greater(0), z.ref, z.mul(slope));
        if (isConv(l) && l.pool) {
          const p = l.pool;
          if (p.padding[0] || p.padding[1]) throw new Error("the jax-js peer pools without padding only (lax.reduceWindow has none)");
          a = lax.reduceWindow(a, (win: Arr) => (p.kind === "max" ? np.max(win) : np.mean(win)), p.kernel, p.stride);
        }
      } else {
        a = z.ndim === 2 ? z : z.reshape([n, outputWidth(spec)]);
      }
    });
    theta.dispose();
    return head(a, t);
  };
}

/** The float target uploaded once: one-hot [N, C] for "ce", targets [N, C] for "mse", y [N, 1] for "logistic". */
function floatTarget(spec: ModelSpec, data: Dataset, loss: LossKind): { values: Float32Array<ArrayBuffer>; shape: number[] } {
  const n = data.n;
  const c = outputWidth(spec);
  if (loss === "mse") return { values: new Float32Array(data.targets!), shape: [n, c] };
  const labels = data.labels!;
  if (loss === "logistic") return { values: Float32Array.from(labels, (y) => y), shape: [n, 1] };
  const onehot = new Float32Array(n * c);
  for (let i = 0; i < n; i++) onehot[i * c + labels[i]] = 1;
  return { values: onehot, shape: [n, c] };
}

export async function createJaxPeer(
  spec: ModelSpec,
  data: Dataset,
  loss: LossKind,
  options: JaxPeerOptions = {},
): Promise<JaxPeer> {
  validateDataset(spec, data, loss);
  const backend: JaxBackend = options.backend ?? "webgpu";
  const jitMode: JaxJitMode = options.jit ?? DEFAULT_JIT_MODE;
  await ensureBackend(backend);
  const dim = parameterLayout(spec).dim;
  const n = data.n;
  if (jitMode === "full" && backend === "webgpu") {
    // The jitted HVP program materializes broadcast [N, out, in] operands of the weight-gradient
    // dots (the eager path keeps them as lazy views); a binding larger than the device limit fails
    // validation and the HVP comes back wrong, with only "Uncaptured error" lines on the console.
    const limit = getWebGPUDevice().limits.maxStorageBufferBindingSize;
    const largest = 4 * n * Math.max(...spec.layers.map((l) => (isConv(l) ? 0 : l.inFeatures * l.outFeatures)));
    if (largest > limit) {
      throw new Error(
        `jax-js jit "full" on webgpu needs a ${largest}-byte buffer (N x out x in floats) for this net and data, ` +
          `over the device's maxStorageBufferBindingSize ${limit}: use jit "none" or fewer samples`,
      );
    }
  }

  const x: Arr = np.array(new Float32Array(data.x), { shape: [n, data.features], dtype: np.float32, device: backend });
  const tgt = floatTarget(spec, data, loss);
  const t: Arr = np.array(tgt.values, { shape: tgt.shape, dtype: np.float32, device: backend });
  // Realize the uploads now so that the first timed call does not pay for them.
  await x.blockUntilReady();
  await t.blockUntilReady();

  const plainHead = makeLossHead(n, outputWidth(spec), loss);
  const head = jitMode === "head" ? jit(plainHead) : plainHead;
  const f = makeLossFn(spec, n, loss, head);
  const gradF = grad(f); // d/d theta (argnum 0)
  const hvpF = (theta: Arr, v: Arr, xx: Arr, tt: Arr): Arr => {
    // Forward-over-reverse: the tangent of grad f along v is H v. x and t are closed over: the
    // closure runs once per trace, so it consumes exactly one reference of each.
    const [g, hv] = jvp((th: Arr) => gradF(th, xx, tt), [theta], [v]);
    g.dispose();
    return hv;
  };

  const full = jitMode === "full";
  const lossFn = full ? jit(f) : f;
  const gradFn = full ? jit(gradF) : gradF;
  const hvpFn = full ? jit(hvpF) : hvpF;

  let disposed = false;
  const check = (name: string, a: Float32Array) => {
    if (disposed) throw new Error("jax peer used after dispose()");
    if (a.length !== dim) throw new Error(`${name} has ${a.length} entries, the model has ${dim} parameters`);
  };
  // (copied: np.array wants an ArrayBuffer-backed array, and the caller keeps ownership of its own)
  const upload = (a: Float32Array): Arr => np.array(new Float32Array(a), { shape: [dim], dtype: np.float32, device: backend });
  /** Runs `body` with jax-js's default device set to this peer's backend (for scalar literals). */
  const onDevice = <T>(body: () => T): T => {
    const prev = defaultDevice();
    defaultDevice(backend);
    try {
      return body();
    } finally {
      defaultDevice(prev);
    }
  };

  return {
    backend,
    jit: jitMode,
    async loss(theta) {
      check("theta", theta);
      const out = onDevice(() => lossFn(upload(theta), x.ref, t.ref));
      const d = await out.data(); // consumes out
      return d[0];
    },
    async gradient(theta) {
      check("theta", theta);
      const out = onDevice(() => gradFn(upload(theta), x.ref, t.ref));
      return toF32(await out.data());
    },
    async hvp(theta, v) {
      check("theta", theta);
      check("v", v);
      const out = onDevice(() => hvpFn(upload(theta), upload(v), x.ref, t.ref));
      return toF32(await out.data());
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      x.dispose();
      t.dispose();
      for (const fn of [head, lossFn, gradFn, hvpFn]) (fn as { dispose?: () => void }).dispose?.();
    },
  };
}

function toF32(d: ArrayLike<number>): Float32Array {
  return d instanceof Float32Array ? d : Float32Array.from(d);
}
