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
 * minibatchRows option) mirrors GpuObjective.minibatchGradient. Those operations, the shared
 * buffers and the plan cache are PassObjective's (src/gpu/passObjective.ts), the same code as
 * GpuObjective's; this class sizes the chunks, allocates the layer buffers and builds the passes.
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
  outputWidth,
  parameterLayout,
  validateSpec,
} from "../model.ts";
import type { GpuContext } from "./context.ts";
import type { Dispatch } from "./dispatch.ts";
import { ConvDispatchBuilder, type Strided, weightGradGeometry, weightGradReduceFloats } from "./convDispatch.ts";
import type { DataChunk } from "./dataChunks.ts";
import { chunkRowsOption, maxBlockOption, minibatchRowsOption, PassObjective, type PassSizes } from "./passObjective.ts";
import { DEFAULT_MEMORY_BUDGET, LOSS_CODE } from "./engineParts.ts";
import { GpuVectorSpace } from "./vectors.ts";

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

/** A buffer and the stride between its batch entries (directions), in f32 elements. */
interface View {
  buffer: GPUBuffer;
  stride: number;
}

/** A View as a conv kernel's operand. */
function strided(v: View): Strided {
  return { buffer: v.buffer, strideBatch: v.stride };
}

/** A layer's weights inside a View of theta or the directions, at `offset`. */
function weightsAt(w: View, offset: number): Strided {
  return { buffer: w.buffer, offset, strideBatch: w.stride };
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

export class GpuConvObjective extends PassObjective {
  private readonly conv: ConvDispatchBuilder;
  private layers: LayerBuffers[] = [];
  /** The gradient at a pooled layer's output, before the pooling's transpose: [max(maxBlock R, rowCapacity), widest pooled output]. */
  private poolScratch: GPUBuffer | null = null;
  /** Stage-1 partial sums of the conv parameter gradients (conv2d_weight_grad.wgsl), and a spare for multi-pass reductions. */
  private gradPartials: GPUBuffer | null = null;
  private gradSpare: GPUBuffer | null = null;

  private constructor(ctx: GpuContext, spec: ModelSpec, lossKind: LossKind, space: GpuVectorSpace, sizes: PassSizes) {
    super("GpuConvObjective", "flatness:conv-", ctx, spec, lossKind, space, sizes);
    this.conv = new ConvDispatchBuilder(ctx, this.builder);
  }

  static async create(ctx: GpuContext, spec: ModelSpec, data: Dataset, lossKind: LossKind, options: GpuConvObjectiveOptions = {}): Promise<GpuConvObjective> {
    validateSpec(spec);
    validateDataset(spec, data, lossKind);
    const maxBlock = maxBlockOption(options.maxBlock);
    const budget = options.memoryBudget ?? DEFAULT_MEMORY_BUDGET;
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
    const chunkRows = chunkRowsOption(options.chunkRows, Math.min(data.n, fitRows, budgetRows, 4096), fitRows, bindingLimit, data.n);
    const minibatchRows = minibatchRowsOption(options.minibatchRows, data.n);
    if (minibatchRows * widest * 4 > bindingLimit) {
      throw new DeviceLimitError(`a minibatch of ${minibatchRows} samples needs bindings past maxStorageBufferBindingSize (${bindingLimit} bytes)`);
    }
    const space = await GpuVectorSpace.create(ctx, parameterLayout(spec).dim);
    const objective = new GpuConvObjective(ctx, spec, lossKind, space, { sampleCount: data.n, chunkRows, maxBlock, minibatchRows, reuseForwardState: options.reuseForwardState ?? true });
    await objective.upload(data);
    return objective;
  }

  protected allocateLayers() {
    const B = this.maxBlock;
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

  /** a_k for a chunk: the data for k = 0, else P_{k-1}(h_{k-1}). [rows, in_k]. */
  private input(chunk: DataChunk, k: number): GPUBuffer {
    if (k === 0) return chunk.x;
    const prev = this.layers[k - 1];
    return prev.pooled ?? prev.h!;
  }

  /** Ra_k (k >= 1) for every direction: [maxBlock, R, in_k]. */
  private tangentInput(k: number): View {
    const prev = this.layers[k - 1];
    return prev.rpooled ? { buffer: prev.rpooled, stride: this.chunkRows * prev.out } : { buffer: prev.rz, stride: this.chunkRows * prev.pre };
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
      return await this.conv.forward({ label, layer: L.conv, rows, batch }, strided(x), weightsAt(w, weightOffset), strided(out), {
        bias,
        mask: opts.mask ? { buffer: opts.mask } : undefined,
        slope: this.slope,
        accumulate: opts.accumulate,
        second: second ? { x: strided(second.x), w: weightsAt(second.w, weightOffset) } : undefined,
      });
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
      return await this.conv.inputGrad({ label, layer: L.conv, rows, batch }, strided(d), weightsAt(w, weightOffset), strided(out), {
        mask: opts.mask ? { buffer: opts.mask } : undefined,
        slope: this.slope,
        accumulate: opts.accumulate,
        second: second ? { d: strided(second.d), w: weightsAt(second.w, weightOffset) } : undefined,
      });
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
        strided(d),
        strided(x),
        { buffer: this.products, offset: weightOffset, strideBatch: n },
        {
          bias: withBias && biasOffset >= 0 ? { buffer: this.products, offset: biasOffset, strideBatch: n } : undefined,
          second: second ? { d: strided(second.d), x: strided(second.x) } : undefined,
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

  /** Forward pass and loss of one chunk: per-sample losses into lossOut[lossOffset..], delta_{K-1} scaled by `scale`. */
  protected async forwardDispatches(chunk: DataChunk, name: string, scale: number, lossOut: GPUBuffer, lossOffset: number): Promise<Dispatch[]> {
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

  /** delta_{k-1} = phi'(z_{k-1}) ⊙ P^T(L_k^T(delta_k; W_k)) for k = K-1..1; with `withGradient`, also g_W and g_b. */
  protected async backwardDispatches(chunk: DataChunk, name: string, withGradient: boolean): Promise<Dispatch[]> {
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

  /** Tangent forward pass, loss curvature and R-backward pass for `dirs` directions. */
  protected async hvpDispatches(ci: number, dirs: number): Promise<Dispatch[]> {
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
        out.push(await this.conv.poolBackward(`R-backward unpool${k - 1} chunk${ci}`, prev.conv!, rows, dirs, strided(target), prev.argmax, prev.z, { buffer: prev.rdelta, strideBatch: R * prev.pre }, this.slope));
      }
    }
    return out;
  }

  protected outputBuffer(): GPUBuffer {
    return this.layers[this.layers.length - 1].z;
  }

  protected override disposeEngine(): void {
    this.conv.destroy();
  }
}
