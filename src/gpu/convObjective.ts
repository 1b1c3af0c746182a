/**
 * The WebGPU engine for convolutional rectified nets: loss, gradient and exact Hessian-vector
 * products of any valid spec with conv2d layers (and linear layers after them), over a dataset
 * kept on the GPU. It runs the passes of the float64 reference (src/reference/engine.ts, whose
 * header derives them) with, per layer k, a_k its input, z_k = L_k(a_k; W_k) + b_k (a convolution,
 * shaders/conv2d_forward.wgsl, or a product, gemm.wgsl), h_k = phi(z_k) and a_{k+1} = P_k(h_k),
 * P_k the layer's pooling (shaders/pool2d_forward.wgsl, max recording its arg-max) or the identity:
 *   forward      z_k, h_k, a_{k+1};  loss, delta_{K-1} = dL/dz (loss_gradient.wgsl)
 *   backward     delta_{k-1} = phi'(z_{k-1}) ⊙ P_{k-1}^T(L_k^T(delta_k; W_k))
 *                (conv2d_input_grad.wgsl or gemm.wgsl, then pool2d_backward.wgsl),
 *                g_W += L_W^T(delta_k; a_k), g_b += sums of delta_k over samples and positions
 *                (conv2d_weight_grad.wgsl partial sums, then conv2d_grad_reduce.wgsl)
 *   tangent      Rz_k = L(Ra_k; W) + L(a_k; V) + c,  Ra_{k+1} = P_k(phi'(z_k) ⊙ Rz_k)
 *                (max pooling gathers the recorded arg-max)                 (k directions at once)
 *   curvature    Rdelta_{K-1} = d²L/dz² Rz_{K-1} (loss_curvature.wgsl)
 *   R-backward   (Hv)_W += L_W^T(Rdelta_k; a_k) + L_W^T(delta_k; Ra_k), (Hv)_b += sums of Rdelta_k,
 *                Rdelta_{k-1} = phi'(z_{k-1}) ⊙ P^T(L^T(Rdelta_k; W) + L^T(delta_k; V))
 * The data are processed chunk by chunk in a fixed order, products accumulating in place, so
 * results are deterministic. When the whole dataset is one chunk, the forward pass and deltas are
 * kept between calls at the same parameters (as GpuObjective does). minibatchGradient (with the
 * minibatchRows option) mirrors GpuObjective.minibatchGradient.
 */
import { type Dataset, validateDataset } from "../data.ts";
import { DeviceLimitError, InputError } from "../errors.ts";
import {
  type Conv2dLayerSpec,
  isConv,
  layerInputSize,
  layerOutputSize,
  layerPreactivationSize,
  type LayerSpec,
  type LossKind,
  type ModelSpec,
  negativeSlope,
  outputWidth,
  parameterLayout,
  validateSpec,
} from "../model.ts";
import { type Objective, zeroCounters } from "../objective.ts";
import type { GpuContext } from "./context.ts";
import { type Dispatch, DispatchBuilder, encodeDispatches, type Operand } from "./dispatch.ts";
import { ConvDispatchBuilder, weightGradGeometry, weightGradReduceFloats } from "./convDispatch.ts";
import { BufferPool } from "./pool.ts";
import { GpuVector, GpuVectorSpace } from "./vectors.ts";
import { type DataChunk, uploadDataChunks } from "./dataChunks.ts";
import { BufferUsage, MapMode, STORAGE_COPY } from "./usage.ts";

export interface GpuConvObjectiveOptions {
  /** Samples per chunk (default: as many as fit the binding limit and memoryBudget, at most 4096). */
  chunkRows?: number;
  /** Directions per block HVP pass (default 8). Larger blocks are split. */
  maxBlock?: number;
  /** Keep the forward pass and deltas between gradient/HVP calls at the same theta (default true; one chunk only). */
  reuseForwardState?: boolean;
  /** Largest minibatch minibatchGradient will take (enables it), as GpuObjectiveOptions.minibatchRows. */
  minibatchRows?: number;
  /** Bytes of activation buffers the default chunk size may use (default 256 MiB). */
  memoryBudget?: number;
}

const LOSS_CODE: Record<LossKind, number> = { ce: 0, mse: 1, logistic: 2 };
const DEFAULT_BUDGET = 256 * 2 ** 20;

type Chunk = DataChunk;

/** A buffer and the stride between its batch entries (directions), in f32 elements. */
interface View {
  buffer: GPUBuffer;
  stride: number;
}

interface LayerBuffers {
  spec: LayerSpec;
  conv: Conv2dLayerSpec | null;
  hidden: boolean;
  /** Per sample: input, pre-activation and output (after pooling) sizes. */
  inSize: number;
  pre: number;
  out: number;
  z: GPUBuffer; // [rowCapacity, pre]
  h: GPUBuffer | null; // phi(z), hidden layers
  pooled: GPUBuffer | null; // P(h) [rowCapacity, out], pooled layers
  argmax: GPUBuffer | null; // u32 [rowCapacity, out], max pooling
  delta: GPUBuffer; // [rowCapacity, pre]
  rz: GPUBuffer; // [maxBlock, R, pre]: phi'(z) ⊙ Rz for hidden layers, Rz for the output layer
  rpooled: GPUBuffer | null; // [maxBlock, R, out]: Ra_{k+1} of pooled layers
  rdelta: GPUBuffer; // [maxBlock, R, pre]
}

/** Floats per sample of a layer's buffers (z, h, pooling, delta, and maxBlock tangents). */
function layerFloats(l: LayerSpec, hidden: boolean, maxBlock: number): number {
  const pre = layerPreactivationSize(l);
  const pooled = isConv(l) && l.pool ? layerOutputSize(l) : 0;
  return 2 * pre + (hidden ? pre : 0) + 2 * pooled + maxBlock * (2 * pre + pooled);
}

export class GpuConvObjective implements Objective<GpuVector> {
  readonly counters = zeroCounters();
  readonly sampleCount: number;
  readonly dim: number;
  private readonly layout;
  private readonly slope: number;
  private readonly buffers: GPUBuffer[] = [];
  private readonly builder: DispatchBuilder;
  private readonly conv: ConvDispatchBuilder;
  private readonly plans = new Map<string, Promise<Dispatch[]>>();
  private chunks: Chunk[] = [];
  private layers: LayerBuffers[] = [];
  private theta!: GPUBuffer;
  private directions!: GPUBuffer;
  private products!: GPUBuffer;
  private sampleLosses!: GPUBuffer;
  private partials!: GPUBuffer;
  private scalars!: GPUBuffer;
  /** The gradient at a pooled layer's output, before the pooling's transpose: [max(maxBlock R, rowCapacity), widest pooled output]. */
  private poolScratch: GPUBuffer | null = null;
  /** Stage-1 partial sums of the conv parameter gradients (conv2d_weight_grad.wgsl), and a spare for multi-pass reductions. */
  private gradPartials: GPUBuffer | null = null;
  private gradSpare: GPUBuffer | null = null;
  private cachedState: { vector: GpuVector; version: number } | null = null;
  private disposed = false;
  private rowCapacity: number;
  private minibatch: {
    data: Dataset;
    rows: number;
    x: GPUBuffer;
    targets: GPUBuffer;
    losses: GPUBuffer;
    xScratch: Float32Array;
    targetScratch: Float32Array;
  } | null = null;

  private constructor(
    readonly ctx: GpuContext,
    readonly spec: ModelSpec,
    readonly lossKind: LossKind,
    readonly space: GpuVectorSpace,
    readonly chunkRows: number,
    readonly maxBlock: number,
    private readonly reuseForwardState: boolean,
  ) {
    this.layout = parameterLayout(spec);
    this.dim = this.layout.dim;
    this.slope = negativeSlope(spec.activation);
    this.sampleCount = 0;
    this.rowCapacity = chunkRows;
    this.builder = new DispatchBuilder(ctx);
    this.conv = new ConvDispatchBuilder(ctx, this.builder);
  }

  static async create(ctx: GpuContext, spec: ModelSpec, data: Dataset, lossKind: LossKind, options: GpuConvObjectiveOptions = {}): Promise<GpuConvObjective> {
    validateSpec(spec);
    validateDataset(spec, data, lossKind);
    const maxBlock = options.maxBlock ?? 8;
    if (!Number.isInteger(maxBlock) || maxBlock < 1) throw new InputError(`maxBlock must be a positive integer, got ${maxBlock}`);
    const budget = options.memoryBudget ?? DEFAULT_BUDGET;
    if (!(budget > 0)) throw new InputError(`memoryBudget must be positive, got ${budget}`);
    const K = spec.layers.length;
    // The widest per-sample tensor of any binding: maxBlock tangents of a layer's input, z or output.
    let widest = 0;
    let widestLayer = 0;
    spec.layers.forEach((l, k) => {
      const w = Math.max(layerInputSize(l), layerPreactivationSize(l), layerOutputSize(l));
      if (w > widest) [widest, widestLayer] = [w, k];
    });
    const bindingLimit = ctx.limits.maxStorageBufferBindingSize;
    const fitRows = Math.floor(bindingLimit / (4 * maxBlock * widest));
    if (fitRows < 1) {
      throw new DeviceLimitError(
        `one sample of layer ${widestLayer} (${widest} values) with ${maxBlock} HVP directions does not fit one storage binding ` +
          `(${bindingLimit} bytes, maxStorageBufferBindingSize); lower maxBlock or use smaller images`,
      );
    }
    const perSample = spec.layers.reduce((s, l, k) => s + layerFloats(l, k + 1 < K, maxBlock), 0) +
      maxBlock * Math.max(0, ...spec.layers.map((l) => (isConv(l) && l.pool ? layerOutputSize(l) : 0)));
    const budgetRows = Math.max(1, Math.floor(budget / (4 * perSample)));
    let chunkRows = Math.min(data.n, fitRows, budgetRows, 4096);
    if (options.chunkRows !== undefined) {
      if (!Number.isInteger(options.chunkRows) || options.chunkRows < 1) throw new InputError(`chunkRows must be a positive integer, got ${options.chunkRows}`);
      if (options.chunkRows > fitRows) {
        throw new DeviceLimitError(`chunkRows ${options.chunkRows} needs bindings past maxStorageBufferBindingSize (${bindingLimit} bytes); at most ${fitRows} fit`);
      }
      chunkRows = Math.min(options.chunkRows, data.n);
    }
    let minibatchRows = 0;
    if (options.minibatchRows !== undefined) {
      if (!Number.isInteger(options.minibatchRows) || options.minibatchRows < 1) throw new InputError(`minibatchRows must be a positive integer, got ${options.minibatchRows}`);
      minibatchRows = Math.min(options.minibatchRows, data.n);
      if (minibatchRows * widest * 4 > bindingLimit) {
        throw new DeviceLimitError(`a minibatch of ${minibatchRows} samples needs bindings past maxStorageBufferBindingSize (${bindingLimit} bytes)`);
      }
    }
    const space = await GpuVectorSpace.create(ctx, parameterLayout(spec).dim);
    const objective = new GpuConvObjective(ctx, spec, lossKind, space, chunkRows, maxBlock, options.reuseForwardState ?? true);
    (objective as { sampleCount: number }).sampleCount = data.n;
    objective.rowCapacity = Math.max(chunkRows, minibatchRows);
    try {
      await ctx.withErrorScope("uploading the model's data", () => objective.allocate(data, minibatchRows));
    } catch (e) {
      objective.dispose();
      throw e;
    }
    return objective;
  }

  private buffer(label: string, floats: number): GPUBuffer {
    this.ctx.checkBindingSize(label, floats * 4);
    const b = this.ctx.device.createBuffer({ label: `flatness:${label}`, size: Math.max(16, floats * 4), usage: STORAGE_COPY });
    this.buffers.push(b);
    return b;
  }

  private allocate(data: Dataset, minibatchRows: number) {
    const n = this.dim;
    const d = data.features;
    const c = outputWidth(this.spec);
    const B = this.maxBlock;
    this.theta = this.buffer(`theta[${n}]`, n);
    this.directions = this.buffer(`directions[${B}x${n}]`, B * n);
    this.products = this.buffer(`products[${B}x${n}]`, B * n);
    this.sampleLosses = this.buffer(`sample-losses[${data.n}]`, data.n);
    this.partials = this.buffer("loss-partials", 256);
    this.scalars = this.buffer("scalars", 4);
    this.chunks = uploadDataChunks(this.ctx.device.queue, this.spec, data, this.lossKind, this.chunkRows, (label, floats) => this.buffer(label, floats));
    if (minibatchRows > 0) {
      const M = minibatchRows;
      const t = this.lossKind === "mse" ? M * c : M;
      this.minibatch = {
        data,
        rows: M,
        x: this.buffer(`minibatch x[${M}x${d}]`, M * d),
        targets: this.buffer(`minibatch targets[${t}]`, t),
        losses: this.buffer(`minibatch losses[${M}]`, M),
        xScratch: new Float32Array(M * d),
        targetScratch: new Float32Array(t),
      };
    }
    const R = this.chunkRows;
    const cap = this.rowCapacity;
    const K = this.spec.layers.length;
    let widestPooled = 0;
    this.layers = this.spec.layers.map((l, k) => {
      const hidden = k + 1 < K;
      const conv = isConv(l) ? l : null;
      const pre = layerPreactivationSize(l);
      const out = layerOutputSize(l);
      const pool = conv?.pool;
      if (pool) widestPooled = Math.max(widestPooled, out);
      return {
        spec: l,
        conv,
        hidden,
        inSize: layerInputSize(l),
        pre,
        out,
        z: this.buffer(`z${k}[${cap}x${pre}]`, cap * pre),
        h: hidden ? this.buffer(`h${k}[${cap}x${pre}]`, cap * pre) : null,
        pooled: pool ? this.buffer(`pooled${k}[${cap}x${out}]`, cap * out) : null,
        argmax: pool?.kind === "max" ? this.buffer(`argmax${k}[${cap}x${out}]`, cap * out) : null,
        delta: this.buffer(`delta${k}[${cap}x${pre}]`, cap * pre),
        rz: this.buffer(`${hidden ? "Ra" : "Rz"}${k}[${B}x${R}x${pre}]`, B * R * pre),
        rpooled: pool ? this.buffer(`Rpooled${k}[${B}x${R}x${out}]`, B * R * out) : null,
        rdelta: this.buffer(`Rdelta${k}[${B}x${R}x${pre}]`, B * R * pre),
      };
    });
    let partials = 0;
    let spare = 0;
    for (const l of this.spec.layers) {
      if (!isConv(l)) continue;
      for (let batch = 1; batch <= B; batch++) {
        const g = weightGradGeometry(l, cap, batch, true);
        partials = Math.max(partials, g.partialFloats);
        spare = Math.max(spare, weightGradReduceFloats(g, batch));
      }
    }
    if (partials > 0) this.gradPartials = this.buffer(`conv-gradient-partials[${partials}]`, partials);
    if (spare > 0) this.gradSpare = this.buffer(`conv-gradient-partials-spare[${spare}]`, spare);
    if (widestPooled > 0) this.poolScratch = this.buffer(`pool-gradient[${Math.max(B * R, cap)}x${widestPooled}]`, Math.max(B * R, cap) * widestPooled);
  }

  // ---- dispatch lists --------------------------------------------------------------------

  private plan(key: string, build: () => Promise<Dispatch[]>): Promise<Dispatch[]> {
    let p = this.plans.get(key);
    if (!p) {
      p = build();
      this.plans.set(key, p);
      p.catch(() => this.plans.delete(key));
    }
    return p;
  }

  /** a_k for a chunk: the data for k = 0, else P_{k-1}(h_{k-1}). [rows, in_k]. */
  private input(chunk: Chunk, k: number): GPUBuffer {
    if (k === 0) return chunk.x;
    const prev = this.layers[k - 1];
    return prev.pooled ?? prev.h!;
  }

  /** Ra_k (k >= 1) for every direction: [maxBlock, R, in_k]. */
  private tangentInput(k: number): View {
    const prev = this.layers[k - 1];
    return prev.rpooled ? { buffer: prev.rpooled, stride: this.chunkRows * prev.out } : { buffer: prev.rz, stride: this.chunkRows * prev.pre };
  }

  private rowMajor(buffer: GPUBuffer, cols: number, strideBatch = 0, offset = 0): Operand {
    return { buffer, offset, strideRow: cols, strideCol: 1, strideBatch };
  }

  /**
   * out[b] = mask'(L_k(x[b]; W[b]) (+ out_old) (+ bias[b])), W read inside `w.buffer` (theta or
   * directions) at the layer's offset: conv2d_forward.wgsl or gemm.wgsl.
   */
  private async layerMap(
    label: string,
    k: number,
    rows: number,
    batch: number,
    x: View,
    w: View,
    out: View,
    opts: { bias?: View; mask?: GPUBuffer; accumulate?: boolean; second?: { x: View; w: View } } = {},
  ): Promise<Dispatch> {
    const L = this.layers[k];
    const { weightOffset, biasOffset } = this.layout.layers[k];
    const second = opts.second;
    const bias = opts.bias && biasOffset >= 0 ? { buffer: opts.bias.buffer, offset: biasOffset, strideBatch: opts.bias.stride } : undefined;
    if (L.conv) {
      return await this.conv.forward(
        { label, layer: L.conv, rows, batch },
        { buffer: x.buffer, strideBatch: x.stride },
        { buffer: w.buffer, offset: weightOffset, strideBatch: w.stride },
        { buffer: out.buffer, strideBatch: out.stride },
        {
          bias,
          mask: opts.mask ? { buffer: opts.mask } : undefined,
          slope: this.slope,
          accumulate: opts.accumulate,
          second: second
            ? { x: { buffer: second.x.buffer, strideBatch: second.x.stride }, w: { buffer: second.w.buffer, offset: weightOffset, strideBatch: second.w.stride } }
            : undefined,
        },
      );
    }
    if (second) throw new Error("fused second products are for conv layers");
    return await this.builder.gemm({
      label,
      m: rows, n: L.pre, k: L.inSize, batch,
      a: this.rowMajor(x.buffer, L.inSize, x.stride),
      b: { buffer: w.buffer, offset: weightOffset, strideRow: 1, strideCol: L.inSize, strideBatch: w.stride },
      c: this.rowMajor(out.buffer, L.pre, out.stride),
      bias,
      mask: opts.mask ? this.rowMajor(opts.mask, L.pre) : undefined,
      slope: this.slope,
      accumulate: opts.accumulate,
    });
  }

  /** out[b] = mask'(L_k^T(d[b]; W[b]) (+ out_old)), input-shaped: conv2d_input_grad.wgsl or gemm.wgsl. */
  private async layerTranspose(
    label: string,
    k: number,
    rows: number,
    batch: number,
    d: View,
    w: View,
    out: View,
    opts: { mask?: GPUBuffer; accumulate?: boolean; second?: { d: View; w: View } } = {},
  ): Promise<Dispatch> {
    const L = this.layers[k];
    const { weightOffset } = this.layout.layers[k];
    const second = opts.second;
    if (L.conv) {
      return await this.conv.inputGrad(
        { label, layer: L.conv, rows, batch },
        { buffer: d.buffer, strideBatch: d.stride },
        { buffer: w.buffer, offset: weightOffset, strideBatch: w.stride },
        { buffer: out.buffer, strideBatch: out.stride },
        {
          mask: opts.mask ? { buffer: opts.mask } : undefined,
          slope: this.slope,
          accumulate: opts.accumulate,
          second: second
            ? { d: { buffer: second.d.buffer, strideBatch: second.d.stride }, w: { buffer: second.w.buffer, offset: weightOffset, strideBatch: second.w.stride } }
            : undefined,
        },
      );
    }
    if (second) throw new Error("fused second products are for conv layers");
    return await this.builder.gemm({
      label,
      m: rows, n: L.inSize, k: L.pre, batch,
      a: this.rowMajor(d.buffer, L.pre, d.stride),
      b: { buffer: w.buffer, offset: weightOffset, strideRow: L.inSize, strideCol: 1, strideBatch: w.stride },
      c: this.rowMajor(out.buffer, L.inSize, out.stride),
      mask: opts.mask ? this.rowMajor(opts.mask, L.inSize) : undefined,
      slope: this.slope,
      accumulate: opts.accumulate,
    });
  }

  /**
   * products[b][W_k] += L_W^T(d[b]; x[b]) (+ L_W^T(second.d[b]; second.x[b]), conv layers only) and,
   * with `withBias`, products[b][b_k] += sums of d[b].
   */
  private async parameterGradient(label: string, k: number, rows: number, batch: number, d: View, x: View, withBias: boolean, second?: { d: View; x: View }): Promise<Dispatch[]> {
    const L = this.layers[k];
    const { weightOffset, biasOffset } = this.layout.layers[k];
    const n = this.dim;
    const out: Dispatch[] = [];
    if (L.conv) {
      return await this.conv.weightGrad(
        { label, layer: L.conv, rows, batch },
        { buffer: d.buffer, strideBatch: d.stride },
        { buffer: x.buffer, strideBatch: x.stride },
        { buffer: this.products, offset: weightOffset, strideBatch: n },
        {
          bias: withBias && biasOffset >= 0 ? { buffer: this.products, offset: biasOffset, strideBatch: n } : undefined,
          second: second ? { d: { buffer: second.d.buffer, strideBatch: second.d.stride }, x: { buffer: second.x.buffer, strideBatch: second.x.stride } } : undefined,
          accumulate: true,
          partials: this.gradPartials!,
          spare: this.gradSpare,
        },
      );
    }
    if (second) throw new Error("fused second products are for conv layers");
    out.push(await this.builder.gemm({
      label,
      m: L.pre, n: L.inSize, k: rows, batch,
      a: { buffer: d.buffer, offset: 0, strideRow: 1, strideCol: L.pre, strideBatch: d.stride },
      b: this.rowMajor(x.buffer, L.inSize, x.stride),
      c: { buffer: this.products, offset: weightOffset, strideRow: L.inSize, strideCol: 1, strideBatch: n },
      accumulate: true,
    }));
    if (withBias && biasOffset >= 0) {
      out.push(await this.builder.columnSum(`${label} bias`, d.buffer, 0, d.stride, this.products, biasOffset, n, rows, L.pre, batch, true));
    }
    return out;
  }

  private lossScale(rows: number): number {
    return this.lossKind === "mse" ? 1 / (rows * outputWidth(this.spec)) : 1 / rows;
  }

  private forwardPlan(ci: number): Promise<Dispatch[]> {
    const chunk = this.chunks[ci];
    return this.plan(`forward:${ci}`, () => this.forwardDispatches(chunk, `chunk${ci}`, this.lossScale(this.sampleCount), this.sampleLosses, chunk.start));
  }

  /** Forward pass and loss of one chunk: per-sample losses into lossOut[lossOffset..], delta_{K-1} scaled by `scale`. */
  private async forwardDispatches(chunk: Chunk, name: string, scale: number, lossOut: GPUBuffer, lossOffset: number): Promise<Dispatch[]> {
    const out: Dispatch[] = [];
    const K = this.spec.layers.length;
    const rows = chunk.rows;
    for (let k = 0; k < K; k++) {
      const L = this.layers[k];
      const theta = { buffer: this.theta, stride: 0 };
      out.push(await this.layerMap(`forward z${k} ${name}`, k, rows, 1, { buffer: this.input(chunk, k), stride: 0 }, theta, { buffer: L.z, stride: 0 }, { bias: theta }));
      if (!L.h) continue;
      out.push(await this.builder.activate(`forward h${k} ${name}`, L.z, 0, L.h, 0, rows * L.pre, this.slope));
      if (L.conv?.pool) {
        const mode = L.conv.pool.kind === "max" ? "record" : "avg";
        out.push(await this.conv.poolForward(`forward pool${k} ${name}`, L.conv, mode, rows, 1, { buffer: L.h }, { buffer: L.pooled! }, L.argmax));
      }
    }
    const last = this.layers[K - 1];
    out.push(await this.builder.lossGradient(`loss ${name}`, LOSS_CODE[this.lossKind], last.z, chunk.targets, lossOut, lossOffset, last.delta, rows, outputWidth(this.spec), scale));
    return out;
  }

  private backwardPlan(ci: number, withGradient: boolean): Promise<Dispatch[]> {
    return this.plan(`backward:${ci}:${withGradient}`, () => this.backwardDispatches(this.chunks[ci], `chunk${ci}`, withGradient));
  }

  /** delta_{k-1} = phi'(z_{k-1}) ⊙ P^T(L_k^T(delta_k; W_k)) for k = K-1..1; with `withGradient`, also g_W and g_b. */
  private async backwardDispatches(chunk: Chunk, name: string, withGradient: boolean): Promise<Dispatch[]> {
    const out: Dispatch[] = [];
    const rows = chunk.rows;
    const theta = { buffer: this.theta, stride: 0 };
    for (let k = this.spec.layers.length - 1; k >= 0; k--) {
      const L = this.layers[k];
      if (withGradient) {
        out.push(...(await this.parameterGradient(`grad layer${k} ${name}`, k, rows, 1, { buffer: L.delta, stride: 0 }, { buffer: this.input(chunk, k), stride: 0 }, true)));
      }
      if (k === 0) continue;
      const prev = this.layers[k - 1];
      const pooled = prev.conv?.pool !== undefined;
      const target = pooled ? this.poolScratch! : prev.delta;
      out.push(await this.layerTranspose(`backward delta${k - 1} ${name}`, k, rows, 1, { buffer: L.delta, stride: 0 }, theta, { buffer: target, stride: 0 }, { mask: pooled ? undefined : prev.z }));
      if (pooled) {
        out.push(await this.conv.poolBackward(`backward unpool${k - 1} ${name}`, prev.conv!, rows, 1, { buffer: target }, prev.argmax, prev.z, { buffer: prev.delta }, this.slope));
      }
    }
    return out;
  }

  private minibatchPlan(rows: number): Promise<Dispatch[]> {
    return this.plan(`minibatch:${rows}`, async () => {
      const mb = this.minibatch!;
      const chunk: Chunk = { start: 0, rows, x: mb.x, targets: mb.targets };
      const name = `minibatch[${rows}]`;
      return [...(await this.forwardDispatches(chunk, name, this.lossScale(rows), mb.losses, 0)), ...(await this.backwardDispatches(chunk, name, true))];
    });
  }

  /** Tangent forward pass, loss curvature and R-backward pass for `dirs` directions. */
  private hvpPlan(ci: number, dirs: number): Promise<Dispatch[]> {
    return this.plan(`hvp:${ci}:${dirs}`, async () => {
      const chunk = this.chunks[ci];
      const R = this.chunkRows;
      const rows = chunk.rows;
      const K = this.spec.layers.length;
      const n = this.dim;
      const theta = { buffer: this.theta, stride: 0 };
      const directions = { buffer: this.directions, stride: n };
      const out: Dispatch[] = [];
      // Tangent forward: Rz_k = L(a_k; V) + c + L(Ra_k; W), masked by phi'(z_k) on hidden layers, then pooled.
      for (let k = 0; k < K; k++) {
        const L = this.layers[k];
        const target = { buffer: L.rz, stride: R * L.pre };
        const mask = L.hidden ? L.z : undefined;
        if (L.conv && k > 0) {
          // One pass for both products (conv2d_forward.wgsl, CONV_PAIR).
          out.push(await this.layerMap(`tangent L(a; V) + L(Ra; W) layer${k} chunk${ci}`, k, rows, dirs, { buffer: this.input(chunk, k), stride: 0 }, directions, target, {
            bias: directions,
            mask,
            second: { x: this.tangentInput(k), w: theta },
          }));
        } else {
          out.push(await this.layerMap(`tangent L(a; V) layer${k} chunk${ci}`, k, rows, dirs, { buffer: this.input(chunk, k), stride: 0 }, directions, target, {
            bias: directions,
            mask: k === 0 ? mask : undefined,
          }));
        }
        if (k > 0 && !L.conv) {
          out.push(await this.layerMap(`tangent L(Ra; W) layer${k} chunk${ci}`, k, rows, dirs, this.tangentInput(k), theta, target, { mask, accumulate: true }));
        }
        if (L.conv?.pool) {
          const mode = L.conv.pool.kind === "max" ? "gather" : "avg";
          out.push(await this.conv.poolForward(`tangent pool${k} chunk${ci}`, L.conv, mode, rows, dirs, { buffer: L.rz, strideBatch: R * L.pre }, { buffer: L.rpooled!, strideBatch: R * L.out }, L.argmax));
        }
      }
      // loss_curvature.wgsl addresses direction b at b * rows * C: give it the buffers' row count R
      // (rows past the chunk's are stale but finite, and nothing reads their Rdelta).
      const last = this.layers[K - 1];
      out.push(await this.builder.lossCurvature(`loss curvature chunk${ci}`, LOSS_CODE[this.lossKind], last.z, last.rz, last.rdelta, R, outputWidth(this.spec), dirs, this.lossScale(this.sampleCount)));
      // R-backward.
      for (let k = K - 1; k >= 0; k--) {
        const L = this.layers[k];
        const rdelta = { buffer: L.rdelta, stride: R * L.pre };
        const delta = { buffer: L.delta, stride: 0 };
        const input = { buffer: this.input(chunk, k), stride: 0 };
        if (L.conv && k > 0) {
          // Both weight terms in one pass (conv2d_weight_grad.wgsl, CONV_PAIR).
          out.push(...(await this.parameterGradient(`Hv L_W^T(Rdelta; a) + L_W^T(delta; Ra) layer${k} chunk${ci}`, k, rows, dirs, rdelta, input, true, { d: delta, x: this.tangentInput(k) })));
        } else {
          out.push(...(await this.parameterGradient(`Hv L_W^T(Rdelta; a) layer${k} chunk${ci}`, k, rows, dirs, rdelta, input, true)));
        }
        if (k === 0) continue; // Ra_0 = 0 and no Rdelta_{-1} is needed
        if (!L.conv) out.push(...(await this.parameterGradient(`Hv L_W^T(delta; Ra) layer${k} chunk${ci}`, k, rows, dirs, delta, this.tangentInput(k), false)));
        const prev = this.layers[k - 1];
        const pooled = prev.conv?.pool !== undefined;
        const target = pooled ? { buffer: this.poolScratch!, stride: R * prev.out } : { buffer: prev.rdelta, stride: R * prev.pre };
        const rmask = pooled ? undefined : prev.z;
        if (L.conv) {
          // Both terms in one pass (conv2d_input_grad.wgsl, CONV_PAIR).
          out.push(await this.layerTranspose(`R-backward L^T(delta; V) + L^T(Rdelta; W) layer${k} chunk${ci}`, k, rows, dirs, delta, directions, target, { mask: rmask, second: { d: rdelta, w: theta } }));
        } else {
          out.push(await this.layerTranspose(`R-backward L^T(delta; V) layer${k} chunk${ci}`, k, rows, dirs, delta, directions, target));
          out.push(await this.layerTranspose(`R-backward L^T(Rdelta; W) layer${k} chunk${ci}`, k, rows, dirs, rdelta, theta, target, { accumulate: true, mask: rmask }));
        }
        if (pooled) {
          out.push(await this.conv.poolBackward(`R-backward unpool${k - 1} chunk${ci}`, prev.conv!, rows, dirs, { buffer: target.buffer, strideBatch: target.stride }, prev.argmax, prev.z, { buffer: prev.rdelta, strideBatch: R * prev.pre }, this.slope));
        }
      }
      return out;
    });
  }

  private lossReducePlan(): Promise<Dispatch[]> {
    return this.plan("loss-reduce", () => this.builder.reduce("loss sum", this.sampleLosses, 0, null, 0, this.sampleCount, this.partials, this.scalars, 0));
  }

  // ---- operations ------------------------------------------------------------------------

  private get canReuse(): boolean {
    return this.reuseForwardState && this.chunks.length === 1;
  }

  private check(theta: GpuVector, what = "theta") {
    if (this.disposed) throw new InputError("this GpuConvObjective was disposed");
    this.space.check(theta, what);
  }

  private copyIn(encoder: GPUCommandEncoder, theta: GpuVector) {
    encoder.copyBufferToBuffer(theta.buffer, 0, this.theta, 0, this.dim * 4);
  }

  private async readLoss(): Promise<number> {
    const sum = (await this.ctx.readFloats(this.scalars, 0, 1))[0];
    const loss = sum / this.sampleCount;
    if (!Number.isFinite(loss)) throw new InputError(`the loss is not finite (${loss}): check theta and the data for huge or non-finite values`);
    return loss;
  }

  async loss(theta: GpuVector): Promise<number> {
    this.check(theta);
    this.counters.forward++;
    await this.ctx.withErrorScope("computing the loss", async () => {
      const encoder = this.ctx.device.createCommandEncoder({ label: "flatness:conv-loss" });
      this.copyIn(encoder, theta);
      for (let ci = 0; ci < this.chunks.length; ci++) encodeDispatches(encoder, await this.forwardPlan(ci), `forward chunk${ci}`);
      encodeDispatches(encoder, await this.lossReducePlan(), "loss reduce");
      this.ctx.device.queue.submit([encoder.finish()]);
    });
    this.cachedState = null;
    return await this.readLoss();
  }

  async gradient(theta: GpuVector, out: GpuVector): Promise<number> {
    this.check(theta);
    this.check(out, "gradient output");
    if (out === theta) throw new InputError("gradient output must be a different vector from theta");
    this.counters.gradient++;
    await this.ctx.withErrorScope("computing the gradient", async () => {
      const encoder = this.ctx.device.createCommandEncoder({ label: "flatness:conv-gradient" });
      this.copyIn(encoder, theta);
      encoder.clearBuffer(this.products, 0, this.dim * 4);
      for (let ci = 0; ci < this.chunks.length; ci++) {
        encodeDispatches(encoder, [...(await this.forwardPlan(ci)), ...(await this.backwardPlan(ci, true))], `gradient chunk${ci}`);
      }
      encodeDispatches(encoder, await this.lossReducePlan(), "loss reduce");
      encoder.copyBufferToBuffer(this.products, 0, out.buffer, 0, this.dim * 4);
      this.ctx.device.queue.submit([encoder.finish()]);
    });
    out.version++;
    this.cachedState = this.canReuse ? { vector: theta, version: theta.version } : null;
    return await this.readLoss();
  }

  hvp(theta: GpuVector, v: GpuVector, out: GpuVector): Promise<void> {
    return this.hvpBlockInternal(theta, [v], [out], false);
  }

  hvpBlock(theta: GpuVector, vs: GpuVector[], outs: GpuVector[]): Promise<void> {
    return this.hvpBlockInternal(theta, vs, outs, true);
  }

  private async hvpBlockInternal(theta: GpuVector, vs: GpuVector[], outs: GpuVector[], block: boolean): Promise<void> {
    this.check(theta);
    if (vs.length !== outs.length) throw new InputError(`hvpBlock got ${vs.length} vectors but ${outs.length} outputs`);
    vs.forEach((v, j) => this.check(v, `direction ${j}`));
    outs.forEach((o, j) => {
      this.check(o, `output ${j}`);
      if (o === theta) throw new InputError(`output ${j} must be a different vector from theta`);
    });
    if (block) this.counters.blockHvpDirections += vs.length;
    else this.counters.hvp++;
    const n = this.dim;
    for (let first = 0; first < vs.length; first += this.maxBlock) {
      const dirs = Math.min(this.maxBlock, vs.length - first);
      const reuse = this.cachedState !== null && this.cachedState.vector === theta && this.cachedState.version === theta.version;
      await this.ctx.withErrorScope("computing Hessian-vector products", async () => {
        const encoder = this.ctx.device.createCommandEncoder({ label: "flatness:conv-hvp" });
        if (!reuse) this.copyIn(encoder, theta);
        for (let j = 0; j < dirs; j++) encoder.copyBufferToBuffer(vs[first + j].buffer, 0, this.directions, j * n * 4, n * 4);
        encoder.clearBuffer(this.products, 0, dirs * n * 4);
        for (let ci = 0; ci < this.chunks.length; ci++) {
          const state = reuse ? [] : [...(await this.forwardPlan(ci)), ...(await this.backwardPlan(ci, false))];
          encodeDispatches(encoder, [...state, ...(await this.hvpPlan(ci, dirs))], `hvp chunk${ci}`);
        }
        for (let j = 0; j < dirs; j++) encoder.copyBufferToBuffer(this.products, j * n * 4, outs[first + j].buffer, 0, n * 4);
        this.ctx.device.queue.submit([encoder.finish()]);
      });
      for (let j = 0; j < dirs; j++) outs[first + j].version++;
      this.cachedState = this.canReuse ? { vector: theta, version: theta.version } : null;
    }
  }

  async outputs(theta: GpuVector): Promise<Float64Array> {
    this.check(theta);
    this.counters.forward++;
    const c = outputWidth(this.spec);
    const result = new Float64Array(this.sampleCount * c);
    const last = this.layers[this.layers.length - 1].z;
    const bytes = this.sampleCount * c * 4;
    this.cachedState = null;
    if (BufferPool.bucketSize(bytes) <= this.ctx.limits.maxBufferSize) {
      this.ctx.checkAlive();
      const staging = this.ctx.pool.acquire(bytes, BufferUsage.MAP_READ | BufferUsage.COPY_DST, `outputs[${this.sampleCount}x${c}]`);
      try {
        await this.ctx.withErrorScope("computing outputs", async () => {
          const encoder = this.ctx.device.createCommandEncoder({ label: "flatness:conv-outputs" });
          this.copyIn(encoder, theta);
          for (let ci = 0; ci < this.chunks.length; ci++) {
            const chunk = this.chunks[ci];
            encodeDispatches(encoder, await this.forwardPlan(ci), `forward chunk${ci}`);
            encoder.copyBufferToBuffer(last, 0, staging, chunk.start * c * 4, chunk.rows * c * 4);
          }
          this.ctx.device.queue.submit([encoder.finish()]);
        });
        await staging.mapAsync(MapMode.READ, 0, bytes);
        result.set(new Float32Array(staging.getMappedRange(0, bytes)));
        staging.unmap();
      } finally {
        this.ctx.pool.release(staging);
      }
      return result;
    }
    for (let ci = 0; ci < this.chunks.length; ci++) {
      await this.ctx.withErrorScope("computing outputs", async () => {
        const encoder = this.ctx.device.createCommandEncoder({ label: "flatness:conv-outputs" });
        if (ci === 0) this.copyIn(encoder, theta);
        encodeDispatches(encoder, await this.forwardPlan(ci), `forward chunk${ci}`);
        this.ctx.device.queue.submit([encoder.finish()]);
      });
      const chunk = this.chunks[ci];
      result.set(await this.ctx.readFloats(last, 0, chunk.rows * c), chunk.start * c);
    }
    return result;
  }

  /**
   * Writes the gradient of the mean loss over the samples at `indices` into `out` (needs the
   * minibatchRows option); queued, not awaited. As GpuObjective.minibatchGradient; float64 twin:
   * ReferenceObjective.minibatchGradient.
   */
  async minibatchGradient(theta: GpuVector, indices: ArrayLike<number>, out: GpuVector): Promise<void> {
    this.check(theta);
    this.check(out, "gradient output");
    if (out === theta) throw new InputError("gradient output must be a different vector from theta");
    const mb = this.minibatch;
    if (!mb) throw new InputError("minibatchGradient needs a GpuConvObjective created with the minibatchRows option");
    const rows = indices.length;
    if (rows < 1 || rows > mb.rows) throw new InputError(`a minibatch must have 1 to ${mb.rows} samples (minibatchRows), got ${rows}`);
    const d = mb.data.features;
    const c = outputWidth(this.spec);
    const mse = this.lossKind === "mse";
    for (let r = 0; r < rows; r++) {
      const i = indices[r];
      if (!(Number.isInteger(i) && i >= 0 && i < this.sampleCount)) throw new InputError(`minibatch index ${i} is outside the dataset's ${this.sampleCount} samples`);
      mb.xScratch.set(mb.data.x.subarray(i * d, (i + 1) * d), r * d);
      if (mse) mb.targetScratch.set(mb.data.targets!.subarray(i * c, (i + 1) * c), r * c);
      else mb.targetScratch[r] = mb.data.labels![i];
    }
    this.counters.gradient++;
    await this.ctx.withErrorScope("computing a minibatch gradient", async () => {
      const queue = this.ctx.device.queue;
      queue.writeBuffer(mb.x, 0, mb.xScratch.buffer as ArrayBuffer, 0, rows * d * 4);
      queue.writeBuffer(mb.targets, 0, mb.targetScratch.buffer as ArrayBuffer, 0, (mse ? rows * c : rows) * 4);
      const encoder = this.ctx.device.createCommandEncoder({ label: "flatness:conv-minibatch-gradient" });
      this.copyIn(encoder, theta);
      encoder.clearBuffer(this.products, 0, this.dim * 4);
      encodeDispatches(encoder, await this.minibatchPlan(rows), `minibatch gradient [${rows}]`);
      encoder.copyBufferToBuffer(this.products, 0, out.buffer, 0, this.dim * 4);
      queue.submit([encoder.finish()]);
    });
    out.version++;
    this.cachedState = null;
  }

  /** Frees every GPU buffer this objective made (vectors from `space` are the caller's). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const b of this.buffers) b.destroy();
    this.buffers.length = 0;
    this.builder.destroy();
    this.conv.destroy();
    this.space.destroy();
    this.plans.clear();
    this.minibatch = null;
  }
}
