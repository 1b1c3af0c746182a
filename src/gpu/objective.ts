/**
 * The WebGPU engine: loss, gradient and exact Hessian-vector products of a rectified MLP over a
 * dataset kept on the GPU. It runs the same passes as the float64 reference
 * (src/reference/engine.ts, whose header derives them), with every product done by gemm.wgsl:
 *   forward      z_k = a_{k-1} W_k^T + b_k,  a_k = phi(z_k)
 *   loss         per-sample loss, delta_{K-1} = dL/dz
 *   backward     delta_{k-1} = (delta_k W_k) ⊙ phi'(z_{k-1}),  g_W += delta_k^T a_{k-1},  g_b += colsum delta_k
 *   tangent      Ra_k = phi'(z_k) ⊙ (Ra_{k-1} W_k^T + a_{k-1} V_k^T + c_k)           (k directions at once)
 *   R-backward   Rdelta_{k-1} = (Rdelta_k W_k + delta_k V_k) ⊙ phi'(z_{k-1})
 *                (Hv)_W += Rdelta_k^T a_{k-1} + delta_k^T Ra_{k-1},  (Hv)_b += colsum Rdelta_k
 * Data larger than one chunk is processed chunk by chunk in a fixed order, gradients accumulating
 * in place, so results are deterministic. When the whole dataset is one chunk, the forward pass
 * and the deltas are kept between calls at the same parameters (same vector, same version), so a
 * run of HVPs at one point (Lanczos, Hutchinson) skips them.
 *
 * Minibatches (training): with `minibatchRows`, minibatchGradient(theta, indices, out) writes the
 * gradient of the mean loss over the samples at `indices` (a minibatch, in any order). Their rows
 * are gathered on the host and written into a batch buffer of that many rows (B·(d + C) floats a
 * step, what a data loader uploads), then the same forward and backward kernels run on it with
 * the loss scaled by 1/B; the dispatch lists are built once per batch size, and no readback
 * happens, so a training loop queues work without waiting for the GPU. The full-data chunks are
 * left as they are, so loss, gradient, hvp and outputs over the whole dataset are unchanged.
 *
 * The operations themselves (loss, gradient, hvp, outputs, minibatchGradient), the shared buffers
 * and the plan cache are PassObjective's (src/gpu/passObjective.ts), which GpuConvObjective shares;
 * this class sizes the chunks, allocates the layer buffers and builds the dispatch lists.
 */
import { type Dataset, validateDataset } from "../data.ts";
import { DeviceLimitError } from "../errors.ts";
import { type LinearLayerSpec, type LossKind, type MlpSpec, type ModelSpec, outputWidth, parameterLayout, requireMlp, validateSpec } from "../model.ts";
import type { GpuContext } from "./context.ts";
import type { Dispatch, Operand } from "./dispatch.ts";
import type { DataChunk } from "./dataChunks.ts";
import { chunkRowsOption, maxBlockOption, minibatchRowsOption, PassObjective, type PassSizes } from "./passObjective.ts";
import { LOSS_CODE } from "./engineParts.ts";
import { GpuVectorSpace } from "./vectors.ts";

export interface GpuObjectiveOptions {
  /** Samples per chunk (default: as many as fit, at most 4096). */
  chunkRows?: number;
  /** Directions per block HVP pass (default 8). Larger blocks are split. */
  maxBlock?: number;
  /**
   * Keep the forward pass and deltas between gradient/HVP calls at the same theta (default true;
   * only when the data is one chunk). Benchmarks turn it off to time full HVPs.
   */
  reuseForwardState?: boolean;
  /**
   * Largest minibatch minibatchGradient will take (enables it; clamped to the sample count). The
   * objective then keeps a reference to the dataset's arrays to gather minibatch rows from:
   * do not change them while it lives.
   */
  minibatchRows?: number;
}

interface LayerBuffers {
  z: GPUBuffer; // [rows, out]
  a: GPUBuffer | null; // phi(z), hidden layers only
  delta: GPUBuffer; // [rows, out]
  ra: GPUBuffer; // [maxBlock, rows, out]: Ra_k for hidden layers, Rz for the output layer
  rdelta: GPUBuffer; // [maxBlock, rows, out]
}

export class GpuObjective extends PassObjective {
  declare readonly spec: MlpSpec;
  private layers: LayerBuffers[] = [];

  private constructor(ctx: GpuContext, spec: MlpSpec, lossKind: LossKind, space: GpuVectorSpace, sizes: PassSizes) {
    super("GpuObjective", "flatness:", ctx, spec, lossKind, space, sizes);
  }

  static async create(ctx: GpuContext, spec: ModelSpec, data: Dataset, lossKind: LossKind, options: GpuObjectiveOptions = {}): Promise<GpuObjective> {
    validateSpec(spec);
    requireMlp(spec, "GpuObjective (the WebGPU MLP engine; GpuConvObjective takes convolutional nets)");
    validateDataset(spec, data, lossKind);
    const maxBlock = maxBlockOption(options.maxBlock);
    const linear: LinearLayerSpec[] = spec.layers;
    const widest = Math.max(...linear.map((l) => Math.max(l.inFeatures, l.outFeatures)));
    const bindingLimit = ctx.limits.maxStorageBufferBindingSize;
    const fitRows = Math.floor(bindingLimit / (4 * maxBlock * widest));
    if (fitRows < 1) {
      throw new DeviceLimitError(
        `a layer of width ${widest} with ${maxBlock} HVP directions does not fit one storage binding ` +
          `(${bindingLimit} bytes, maxStorageBufferBindingSize); lower maxBlock`,
      );
    }
    const chunkRows = chunkRowsOption(options.chunkRows, Math.min(data.n, fitRows, 4096), fitRows, bindingLimit, data.n);
    const minibatchRows = minibatchRowsOption(options.minibatchRows, data.n);
    if (minibatchRows > fitRows) {
      throw new DeviceLimitError(`a minibatch of ${minibatchRows} samples needs bindings past maxStorageBufferBindingSize (${bindingLimit} bytes); at most ${fitRows} fit`);
    }
    const space = await GpuVectorSpace.create(ctx, parameterLayout(spec).dim);
    const objective = new GpuObjective(ctx, spec, lossKind, space, { sampleCount: data.n, chunkRows, maxBlock, minibatchRows, reuseForwardState: options.reuseForwardState ?? true });
    await objective.upload(data);
    return objective;
  }

  protected allocateLayers() {
    // Layer buffers hold rowCapacity rows; the HVP plans' per-direction strides stay chunkRows.
    const R = this.rowCapacity;
    const linear: LinearLayerSpec[] = this.spec.layers;
    this.layers = linear.map((l, k) => {
      const hidden = k + 1 < this.spec.layers.length;
      const w = l.outFeatures;
      return {
        z: this.buffer(`z${k}[${R}x${w}]`, R * w),
        a: hidden ? this.buffer(`a${k}[${R}x${w}]`, R * w) : null,
        delta: this.buffer(`delta${k}[${R}x${w}]`, R * w),
        ra: this.buffer(`${hidden ? "Ra" : "Rz"}${k}[${this.maxBlock}x${R}x${w}]`, this.maxBlock * R * w),
        rdelta: this.buffer(`Rdelta${k}[${this.maxBlock}x${R}x${w}]`, this.maxBlock * R * w),
      };
    });
  }

  protected outputBuffer(): GPUBuffer {
    return this.layers[this.layers.length - 1].z;
  }

  // ---- dispatch lists --------------------------------------------------------------------

  /** Input of layer k for a chunk: the data for k = 0, else a_{k-1}. [rows, in_k] row-major. */
  private input(chunk: DataChunk, k: number): GPUBuffer {
    return k === 0 ? chunk.x : this.layers[k - 1].a!;
  }

  /** W_k seen as the [in, out] right operand of a·W^T, inside `buffer` (theta or directions) at `base`. */
  private weightTransposed(buffer: GPUBuffer, k: number, strideBatch = 0): Operand {
    const l = this.spec.layers[k];
    return { buffer, offset: this.layout.layers[k].weightOffset, strideRow: 1, strideCol: l.inFeatures, strideBatch };
  }

  /** W_k as the [out, in] right operand of delta·W. */
  private weight(buffer: GPUBuffer, k: number, strideBatch = 0): Operand {
    const l = this.spec.layers[k];
    return { buffer, offset: this.layout.layers[k].weightOffset, strideRow: l.inFeatures, strideCol: 1, strideBatch };
  }

  /** z_k = a_{k-1} W_k^T + b_k, a_k = phi(z_k), then the loss and delta_{K-1} (PassObjective.forwardDispatches). */
  protected async forwardDispatches(chunk: DataChunk, name: string, scale: number, lossOut: GPUBuffer, lossOffset: number): Promise<Dispatch[]> {
    const out: Dispatch[] = [];
    const K = this.spec.layers.length;
    for (let k = 0; k < K; k++) {
      const l = this.spec.layers[k];
      const L = this.layers[k];
      const biasOffset = this.layout.layers[k].biasOffset;
      out.push(await this.builder.gemm({
        label: `forward z${k} ${name}`,
        m: chunk.rows, n: l.outFeatures, k: l.inFeatures, batch: 1,
        a: this.rowMajor(this.input(chunk, k), l.inFeatures),
        b: this.weightTransposed(this.theta, k),
        c: this.rowMajor(L.z, l.outFeatures),
        bias: biasOffset >= 0 ? { buffer: this.theta, offset: biasOffset, strideBatch: 0 } : undefined,
      }));
      if (L.a) out.push(await this.builder.activate(`forward a${k} ${name}`, L.z, 0, L.a, 0, chunk.rows * l.outFeatures, this.slope));
    }
    const c = outputWidth(this.spec);
    out.push(await this.builder.lossGradient(`loss ${name}`, LOSS_CODE[this.lossKind], this.layers[K - 1].z, chunk.targets, lossOut, lossOffset, this.layers[K - 1].delta, chunk.rows, c, scale));
    return out;
  }

  /** delta_{k-1} = (delta_k W_k) ⊙ phi'(z_{k-1}) for k = K-1..1. With `withGradient`, also g_W and g_b. */
  protected async backwardDispatches(chunk: DataChunk, name: string, withGradient: boolean): Promise<Dispatch[]> {
    const out: Dispatch[] = [];
    for (let k = this.spec.layers.length - 1; k >= 0; k--) {
      const l = this.spec.layers[k];
      const L = this.layers[k];
      if (withGradient) out.push(...(await this.weightGradient(`grad layer${k} ${name}`, chunk, k, L.delta, 0, this.input(chunk, k), 0, 1)));
      if (k > 0) {
        out.push(await this.builder.gemm({
          label: `backward delta${k - 1} ${name}`,
          m: chunk.rows, n: l.inFeatures, k: l.outFeatures, batch: 1,
          a: this.rowMajor(L.delta, l.outFeatures),
          b: this.weight(this.theta, k),
          c: this.rowMajor(this.layers[k - 1].delta, l.inFeatures),
          mask: this.rowMajor(this.layers[k - 1].z, l.inFeatures),
          slope: this.slope,
        }));
      }
    }
    return out;
  }

  /**
   * products[b][W_k] += D[b]^T In[b] and products[b][b_k] += colsum D[b] (bias only when `withBias`),
   * for `batch` directions; strides 0 broadcast D or In over the directions.
   */
  private async weightGradient(label: string, chunk: DataChunk, k: number, d: GPUBuffer, dStride: number, input: GPUBuffer, inStride: number, batch: number, withBias = true): Promise<Dispatch[]> {
    const l = this.spec.layers[k];
    const { weightOffset, biasOffset } = this.layout.layers[k];
    const out = [await this.builder.gemm({
      label,
      m: l.outFeatures, n: l.inFeatures, k: chunk.rows, batch,
      a: { buffer: d, offset: 0, strideRow: 1, strideCol: l.outFeatures, strideBatch: dStride },
      b: this.rowMajor(input, l.inFeatures, inStride),
      c: { buffer: this.products, offset: weightOffset, strideRow: l.inFeatures, strideCol: 1, strideBatch: this.dim },
      accumulate: true,
    })];
    if (withBias && biasOffset >= 0) {
      out.push(await this.builder.columnSum(`${label} bias`, d, 0, dStride, this.products, biasOffset, this.dim, chunk.rows, l.outFeatures, batch, true));
    }
    return out;
  }

  /** Tangent forward pass, loss curvature and R-backward pass for `dirs` directions. */
  protected async hvpDispatches(ci: number, dirs: number): Promise<Dispatch[]> {
    const chunk = this.chunks[ci];
    const R = this.chunkRows;
    const K = this.spec.layers.length;
    const n = this.dim;
    const out: Dispatch[] = [];
    // Tangent forward: Ra_k = phi'(z_k) ⊙ (a_{k-1} V_k^T + c_k + Ra_{k-1} W_k^T).
    for (let k = 0; k < K; k++) {
      const l = this.spec.layers[k];
      const L = this.layers[k];
      const hidden = k + 1 < K;
      const biasOffset = this.layout.layers[k].biasOffset;
      const mask = hidden ? this.rowMajor(L.z, l.outFeatures) : undefined;
      const target = this.rowMajor(L.ra, l.outFeatures, R * l.outFeatures);
      out.push(await this.builder.gemm({
        label: `tangent a·V^T layer${k} chunk${ci}`,
        m: chunk.rows, n: l.outFeatures, k: l.inFeatures, batch: dirs,
        a: this.rowMajor(this.input(chunk, k), l.inFeatures),
        b: this.weightTransposed(this.directions, k, n),
        c: target,
        bias: biasOffset >= 0 ? { buffer: this.directions, offset: biasOffset, strideBatch: n } : undefined,
        mask: k === 0 ? mask : undefined,
        slope: this.slope,
      }));
      if (k > 0) {
        const prev = this.layers[k - 1];
        out.push(await this.builder.gemm({
          label: `tangent Ra·W^T layer${k} chunk${ci}`,
          m: chunk.rows, n: l.outFeatures, k: l.inFeatures, batch: dirs,
          a: this.rowMajor(prev.ra, l.inFeatures, R * l.inFeatures),
          b: this.weightTransposed(this.theta, k),
          c: target,
          accumulate: true,
          mask,
          slope: this.slope,
        }));
      }
    }
    const last = this.layers[K - 1];
    out.push(await this.builder.lossCurvature(`loss curvature chunk${ci}`, LOSS_CODE[this.lossKind], last.z, last.ra, last.rdelta, R, outputWidth(this.spec), dirs, this.lossScale(this.sampleCount)));
    // R-backward.
    for (let k = K - 1; k >= 0; k--) {
      const l = this.spec.layers[k];
      const L = this.layers[k];
      out.push(...(await this.weightGradient(`Hv Rdelta^T a layer${k} chunk${ci}`, chunk, k, L.rdelta, R * l.outFeatures, this.input(chunk, k), 0, dirs)));
      if (k === 0) continue; // Ra_{-1} = 0 and no Rdelta_{-1} is needed
      const prev = this.layers[k - 1];
      out.push(...(await this.weightGradient(`Hv delta^T Ra layer${k} chunk${ci}`, chunk, k, L.delta, 0, prev.ra, R * l.inFeatures, dirs, false)));
      const target = this.rowMajor(prev.rdelta, l.inFeatures, R * l.inFeatures);
      out.push(await this.builder.gemm({
        label: `R-backward delta·V layer${k} chunk${ci}`,
        m: chunk.rows, n: l.inFeatures, k: l.outFeatures, batch: dirs,
        a: this.rowMajor(L.delta, l.outFeatures),
        b: this.weight(this.directions, k, n),
        c: target,
      }));
      out.push(await this.builder.gemm({
        label: `R-backward Rdelta·W layer${k} chunk${ci}`,
        m: chunk.rows, n: l.inFeatures, k: l.outFeatures, batch: dirs,
        a: this.rowMajor(L.rdelta, l.outFeatures, R * l.outFeatures),
        b: this.weight(this.theta, k),
        c: target,
        accumulate: true,
        mask: this.rowMajor(prev.z, l.inFeatures),
        slope: this.slope,
      }));
    }
    return out;
  }
}
