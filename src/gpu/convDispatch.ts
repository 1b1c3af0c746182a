/**
 * Dispatch builders for the convolution and pooling kernels (shaders/conv2d_*.wgsl,
 * shaders/pool2d_*.wgsl), in the style of DispatchBuilder: each call returns one ready-to-encode
 * dispatch with its own immutable uniform buffer, which this builder owns until destroy().
 * The uniform layouts are ConvParams (include/conv_common.wgsl) and PoolParams
 * (include/pool_common.wgsl); convParams and poolParams below are their only writers.
 */
import type { GpuContext } from "./context.ts";
import type { Dispatch, DispatchBuilder } from "./dispatch.ts";
import { BufferUsage } from "./usage.ts";
import { convOutputShape, type Conv2dLayerSpec, type Pool2dSpec, poolOutputShape } from "../model.ts";

/** A tensor inside a buffer: element offset and stride between batch entries (0 broadcasts). */
export interface Strided {
  buffer: GPUBuffer;
  offset?: number;
  strideBatch?: number;
}

/** One conv2d kernel call: `rows` samples of the chunk, `batch` directions. */
export interface ConvCall {
  label: string;
  layer: Conv2dLayerSpec;
  rows: number;
  batch: number;
}

/** Channels per thread: OB of conv2d_forward.wgsl and CB of conv2d_input_grad.wgsl. */
const OUTPUT_BLOCK = 4;
const INPUT_BLOCK = 4;

const FLAG_ACCUMULATE = 1;
const FLAG_BIAS = 2;
const FLAG_MASK = 4;

export class ConvDispatchBuilder {
  private readonly uniforms: GPUBuffer[] = [];
  private dummy: GPUBuffer | null = null;

  constructor(readonly ctx: GpuContext, private readonly base: DispatchBuilder) {}

  /** A small storage buffer for bindings a kernel variant does not read. */
  placeholder(): GPUBuffer {
    if (!this.dummy) {
      this.dummy = this.ctx.device.createBuffer({ label: "flatness:unused-conv-binding", size: 256, usage: BufferUsage.STORAGE });
      this.uniforms.push(this.dummy);
    }
    return this.dummy;
  }

  private uniform(label: string, words: ArrayBuffer): GPUBuffer {
    const u = this.ctx.uniform(label, words);
    this.uniforms.push(u);
    return u;
  }

  /** The ConvParams words (include/conv_common.wgsl). */
  private convParams(
    c: ConvCall,
    count: number,
    flags: number,
    x: Strided | null,
    d: Strided | null,
    w: Strided | null,
    bias: Strided | null,
    mask: Strided | null,
    out: Strided,
    slope: number,
  ): ArrayBuffer {
    const l = c.layer;
    const [, outH, outW] = convOutputShape(l);
    const words = new ArrayBuffer(128);
    const u = new Uint32Array(words);
    u.set([l.inChannels, l.inHeight, l.inWidth, l.outChannels]);
    u.set([outH, outW, l.kernel[0], l.kernel[1]], 4);
    u.set([l.stride[0], l.stride[1], l.padding[0], l.padding[1]], 8);
    u.set([l.dilation[0], l.dilation[1], l.groups, c.rows], 12);
    u.set([c.batch, flags, x?.offset ?? 0, x?.strideBatch ?? 0], 16);
    u.set([d?.offset ?? 0, d?.strideBatch ?? 0, w?.offset ?? 0, w?.strideBatch ?? 0], 20);
    u.set([bias?.offset ?? 0, bias?.strideBatch ?? 0, mask?.offset ?? 0, mask?.strideBatch ?? 0], 24);
    u.set([out.offset ?? 0, out.strideBatch ?? 0], 28);
    new Float32Array(words)[30] = slope;
    u[31] = count;
    return words;
  }

  /** Out[b] = mask'(conv(X[b]; W[b]) (+ Out_old) (+ Bias[b])): shaders/conv2d_forward.wgsl. */
  async forward(
    c: ConvCall,
    x: Strided,
    w: Strided,
    out: Strided,
    opts: { bias?: Strided; mask?: Strided; slope?: number; accumulate?: boolean } = {},
  ): Promise<Dispatch> {
    const kernel = await this.ctx.kernel({ shader: "conv2dForward", bindings: ["read", "read", "read", "read", "write", "uniform"] });
    const l = c.layer;
    const [, oh, ow] = convOutputShape(l);
    // conv2d_forward.wgsl: one thread per OUTPUT_BLOCK output channels of a group.
    const count = c.batch * c.rows * l.groups * Math.ceil(l.outChannels / l.groups / OUTPUT_BLOCK) * oh * ow;
    const flags = (opts.accumulate ? FLAG_ACCUMULATE : 0) | (opts.bias ? FLAG_BIAS : 0) | (opts.mask ? FLAG_MASK : 0);
    const words = this.convParams(c, count, flags, x, null, w, opts.bias ?? null, opts.mask ?? null, out, opts.slope ?? 0);
    const entries = [x.buffer, w.buffer, opts.bias?.buffer ?? this.placeholder(), opts.mask?.buffer ?? this.placeholder(), out.buffer, this.uniform(c.label, words)];
    return this.base.dispatch(c.label, kernel.pipeline, kernel.layout, entries, this.base.linearGroups(c.label, count));
  }

  /** Out[b] = mask'(conv^T(D[b]; W[b]) (+ Out_old)), input-shaped: shaders/conv2d_input_grad.wgsl. */
  async inputGrad(
    c: ConvCall,
    d: Strided,
    w: Strided,
    out: Strided,
    opts: { mask?: Strided; slope?: number; accumulate?: boolean } = {},
  ): Promise<Dispatch> {
    const kernel = await this.ctx.kernel({ shader: "conv2dInputGrad", bindings: ["read", "read", "read", "write", "uniform"] });
    const l = c.layer;
    // conv2d_input_grad.wgsl: one thread per INPUT_BLOCK input channels of a group.
    const count = c.batch * c.rows * l.groups * Math.ceil(l.inChannels / l.groups / INPUT_BLOCK) * l.inHeight * l.inWidth;
    const flags = (opts.accumulate ? FLAG_ACCUMULATE : 0) | (opts.mask ? FLAG_MASK : 0);
    const words = this.convParams(c, count, flags, null, d, w, null, opts.mask ?? null, out, opts.slope ?? 0);
    const entries = [d.buffer, w.buffer, opts.mask?.buffer ?? this.placeholder(), out.buffer, this.uniform(c.label, words)];
    return this.base.dispatch(c.label, kernel.pipeline, kernel.layout, entries, this.base.linearGroups(c.label, count));
  }

  /** Out[b] (+)= sum over samples of D[b] ⋆ X[b] (the weight gradient): shaders/conv2d_weight_grad.wgsl. */
  async weightGrad(c: ConvCall, d: Strided, x: Strided, out: Strided, accumulate: boolean): Promise<Dispatch> {
    const kernel = await this.ctx.kernel({ shader: "conv2dWeightGrad", bindings: ["read", "read", "write", "uniform"] });
    const l = c.layer;
    const count = c.batch * l.outChannels * (l.inChannels / l.groups) * l.kernel[0] * l.kernel[1];
    const words = this.convParams(c, count, accumulate ? FLAG_ACCUMULATE : 0, x, d, null, null, null, out, 0);
    const entries = [d.buffer, x.buffer, out.buffer, this.uniform(c.label, words)];
    return this.base.dispatch(c.label, kernel.pipeline, kernel.layout, entries, this.base.linearGroups(c.label, count));
  }

  /** Out[b][o] (+)= sum over samples and positions of D[b][., o, ., .]: shaders/conv2d_bias_grad.wgsl. */
  async biasGrad(c: ConvCall, d: Strided, out: Strided, accumulate: boolean): Promise<Dispatch> {
    const kernel = await this.ctx.kernel({ shader: "conv2dBiasGrad", bindings: ["read", "write", "uniform"] });
    const count = c.batch * c.layer.outChannels;
    const words = this.convParams(c, count, accumulate ? FLAG_ACCUMULATE : 0, null, d, null, null, null, out, 0);
    const entries = [d.buffer, out.buffer, this.uniform(c.label, words)];
    return this.base.dispatch(c.label, kernel.pipeline, kernel.layout, entries, this.base.linearGroups(c.label, count));
  }

  /** The PoolParams words (include/pool_common.wgsl) for the pooling of conv layer `l`. */
  private poolParams(l: Conv2dLayerSpec, rows: number, batch: number, count: number, input: Strided, out: Strided, mask: Strided | null, slope: number): ArrayBuffer {
    const pool = l.pool!;
    const zShape = convOutputShape(l);
    const [, hp, wp] = poolOutputShape(pool, zShape);
    const words = new ArrayBuffer(96);
    const u = new Uint32Array(words);
    u.set([zShape[0], zShape[1], zShape[2], hp]);
    u.set([wp, pool.kernel[0], pool.kernel[1], pool.stride[0]], 4);
    u.set([pool.stride[1], pool.padding[0], pool.padding[1], rows], 8);
    u.set([batch, pool.countIncludePad === false ? 0 : 1, input.offset ?? 0, input.strideBatch ?? 0], 12);
    u.set([out.offset ?? 0, out.strideBatch ?? 0, mask?.offset ?? 0], 16);
    new Float32Array(words)[19] = slope;
    u[20] = count;
    return words;
  }

  /**
   * Pooling of conv layer `l`'s activation (shaders/pool2d_forward.wgsl): mode "record" (max
   * pooling, writes the arg-max into `idx`), "avg", or "gather" (the tangent of max pooling).
   */
  async poolForward(label: string, l: Conv2dLayerSpec, mode: "record" | "avg" | "gather", rows: number, batch: number, input: Strided, out: Strided, idx: GPUBuffer | null): Promise<Dispatch> {
    const code = mode === "record" ? 0 : mode === "avg" ? 1 : 2;
    const kernel = await this.ctx.kernel({ shader: "pool2dForward", bindings: ["read", "write", "write", "uniform"], constants: { POOL: code } });
    const [c, hp, wp] = poolOutputShape(l.pool!, convOutputShape(l));
    const count = batch * rows * c * hp * wp;
    const words = this.poolParams(l, rows, batch, count, input, out, null, 0);
    const entries = [input.buffer, out.buffer, idx ?? this.placeholder(), this.uniform(label, words)];
    return this.base.dispatch(label, kernel.pipeline, kernel.layout, entries, this.base.linearGroups(label, count));
  }

  /** Out[b] = phi'(z) ⊙ pool^T(G[b]) for conv layer `l`'s pooling: shaders/pool2d_backward.wgsl. */
  async poolBackward(label: string, l: Conv2dLayerSpec, rows: number, batch: number, g: Strided, idx: GPUBuffer | null, z: GPUBuffer, out: Strided, slope: number): Promise<Dispatch> {
    const pool: Pool2dSpec = l.pool!;
    const kernel = await this.ctx.kernel({ shader: "pool2dBackward", bindings: ["read", "read", "read", "write", "uniform"], constants: { POOL: pool.kind === "max" ? 0 : 1 } });
    const [c, h, w] = convOutputShape(l);
    const count = batch * rows * c * h * w;
    const words = this.poolParams(l, rows, batch, count, g, out, { buffer: z }, slope);
    const entries = [g.buffer, idx ?? this.placeholder(), z, out.buffer, this.uniform(label, words)];
    return this.base.dispatch(label, kernel.pipeline, kernel.layout, entries, this.base.linearGroups(label, count));
  }

  destroy(): void {
    for (const u of this.uniforms) u.destroy();
    this.uniforms.length = 0;
    this.dummy = null;
  }
}
