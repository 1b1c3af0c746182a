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

/*
 * Kernel choice (measured on lavapipe, LLVM 15, 2 cores, cnn-mnist batch 256, per-dispatch minima,
 * machine shared so +-30%): direct kernels with register tiles, no im2col (it would move 9x the
 * input). Lavapipe gathers every storage load inside a loop, so loads per multiply-add decide:
 *   forward z0 (1->8 ch, 28x28):  old 1 pos x 4 ch per thread 113 ms; 8 ch x 4 columns 72 ms
 *   forward z1 (8->16 ch, 14x14): old 178 ms; 8 ch x 1 pos, channel block per workgroup 304 ms;
 *                                 8 ch x 4 columns 181-197 ms
 *   weight grad layer 1:          old one thread per weight 220 ms (and wrong past 65,535 terms);
 *                                 two-stage, 8 ch x 9 taps per thread 78-141 ms + 12 ms reduce
 *   weight grad layer 0:          old 28 ms but truncated (wrong); two-stage 31-40 ms + 12 ms
 * bench cnn-mnist (fwd / grad / HVP / block of 8 ms): before 348 / 799 / 1849 / 10789 (HVP wrong),
 * after 187 / 439 / 1064 / 6136 (HVP = 2.42 gradients), the after run under heavier load.
 * The HVP pairs (conv(a;V) + conv(Ra;W), L^T(delta;V) + L^T(Rdelta;W), Rdelta*a + delta*Ra) run as
 * one dispatch each (CONV_PAIR), which saves a pass over the output and the partials.
 */
/** Channels per workgroup: OB of conv2d_forward.wgsl / conv2d_weight_grad.wgsl, CB of conv2d_input_grad.wgsl, TB taps of conv2d_weight_grad.wgsl. */
const OUTPUT_BLOCK = 8;
const INPUT_BLOCK = 8;
const TAP_BLOCK = 9;
/** Consecutive columns per thread: PX of conv2d_forward.wgsl and conv2d_input_grad.wgsl. */
const COLUMN_BLOCK = 4;
/** Lanes per workgroup of the conv kernels (their @workgroup_size). */
const LANES = 256;

const FLAG_ACCUMULATE = 1;
const FLAG_BIAS = 2;
const FLAG_MASK = 4;
const FLAG_PAIR = 8;

/**
 * Stage-1 geometry of conv2d_weight_grad.wgsl: K = rows*outH*outW output positions summed by
 * kThreads threads of at most `steps` positions each, per workgroup column (direction, channel
 * block, input channel, tap block); `entries` partial sums per thread.
 */
export interface WeightGradGeometry {
  kThreads: number;
  steps: number;
  entries: number;
  /** Workgroups along K times the uniform columns: the dispatch's workgroup count. */
  workgroups: number;
  /** Floats of the stage-1 partials: batch * kThreads * entries. */
  partialFloats: number;
}

/**
 * At most this many positions per stage-1 thread: with OB = 8, TB = 9 and a second product, a
 * step costs ~190 loop back-edges, and lavapipe silently ends an invocation's loops after 65535
 * back-edges in all (see conv2d_weight_grad.wgsl), so 128 steps (~24k) keeps a 2.5x margin.
 */
const MAX_STEPS = 128;
/** The fewest workgroups a stage-1 dispatch aims at (enough for every core of a CPU driver). */
const MIN_WORKGROUPS = 16;
/** Rows summed per thread of conv2d_grad_reduce.wgsl (well under the 65535 loop back-edges). */
const REDUCE_ROWS = 4096;

export function weightGradGeometry(l: Conv2dLayerSpec, rows: number, batch: number, withBias: boolean): WeightGradGeometry {
  const [, oh, ow] = convOutputShape(l);
  const K = rows * oh * ow;
  const cpg = l.inChannels / l.groups;
  const taps = l.kernel[0] * l.kernel[1];
  const columns = batch * l.groups * Math.ceil(l.outChannels / l.groups / OUTPUT_BLOCK) * cpg * Math.ceil(taps / TAP_BLOCK);
  const fewest = Math.ceil(K / (LANES * MAX_STEPS));
  const wanted = Math.ceil(MIN_WORKGROUPS / columns);
  const kGroups = Math.max(1, fewest, Math.min(wanted, Math.ceil(K / LANES)));
  const kThreads = kGroups * LANES;
  const entries = l.outChannels * cpg * taps + (withBias ? l.outChannels : 0);
  return { kThreads, steps: Math.ceil(K / kThreads), entries, workgroups: kGroups * columns, partialFloats: batch * kThreads * entries };
}

/** Floats of the second partials buffer the reduction passes need (0 when one pass suffices). */
export function weightGradReduceFloats(g: WeightGradGeometry, batch: number): number {
  let rows = g.kThreads;
  let most = 0;
  while (rows > REDUCE_ROWS) {
    rows = Math.ceil(rows / REDUCE_ROWS);
    if (rows > 1) most = Math.max(most, batch * rows * g.entries);
  }
  return most;
}

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
    extra: { a?: Strided | null; b?: Strided | null; kThreads?: number; steps?: number; entries?: number; spatialGroups?: number } = {},
  ): ArrayBuffer {
    const l = c.layer;
    const [, outH, outW] = convOutputShape(l);
    const words = new ArrayBuffer(160);
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
    u.set([extra.a?.offset ?? 0, extra.a?.strideBatch ?? 0, extra.b?.offset ?? 0, extra.b?.strideBatch ?? 0], 32);
    u.set([extra.kThreads ?? 0, extra.steps ?? 0, extra.entries ?? 0, extra.spatialGroups ?? 0], 36);
    return words;
  }

  /**
   * Out[b] = mask'(conv(X[b]; W[b]) (+ conv(X2[b]; W2[b])) (+ Out_old) (+ Bias[b])):
   * shaders/conv2d_forward.wgsl; `second` is the fused second product of the HVP's tangent pass.
   */
  async forward(
    c: ConvCall,
    x: Strided,
    w: Strided,
    out: Strided,
    opts: { bias?: Strided; mask?: Strided; slope?: number; accumulate?: boolean; second?: { x: Strided; w: Strided } } = {},
  ): Promise<Dispatch> {
    const kernel = await this.ctx.kernel({ shader: "conv2dForward", bindings: ["read", "read", "read", "read", "read", "read", "write", "uniform"] });
    const l = c.layer;
    const [, oh, ow] = convOutputShape(l);
    const count = c.rows * oh * Math.ceil(ow / COLUMN_BLOCK);
    const spatialGroups = Math.ceil(count / LANES);
    const workgroups = spatialGroups * c.batch * l.groups * Math.ceil(l.outChannels / l.groups / OUTPUT_BLOCK);
    const flags = (opts.accumulate ? FLAG_ACCUMULATE : 0) | (opts.bias ? FLAG_BIAS : 0) | (opts.mask ? FLAG_MASK : 0) | (opts.second ? FLAG_PAIR : 0);
    const words = this.convParams(c, count, flags, x, null, w, opts.bias ?? null, opts.mask ?? null, out, opts.slope ?? 0, {
      a: opts.second?.x, b: opts.second?.w, spatialGroups,
    });
    const ph = this.placeholder();
    const entries = [x.buffer, w.buffer, opts.bias?.buffer ?? ph, opts.mask?.buffer ?? ph, opts.second?.x.buffer ?? ph, opts.second?.w.buffer ?? ph, out.buffer, this.uniform(c.label, words)];
    return this.base.dispatch(c.label, kernel.pipeline, kernel.layout, entries, this.base.linearGroups(c.label, workgroups * LANES));
  }

  /**
   * Out[b] = mask'(conv^T(D[b]; W[b]) (+ conv^T(D2[b]; W2[b])) (+ Out_old)), input-shaped:
   * shaders/conv2d_input_grad.wgsl; `second` is the fused second product of the R-backward pass.
   */
  async inputGrad(
    c: ConvCall,
    d: Strided,
    w: Strided,
    out: Strided,
    opts: { mask?: Strided; slope?: number; accumulate?: boolean; second?: { d: Strided; w: Strided } } = {},
  ): Promise<Dispatch> {
    const kernel = await this.ctx.kernel({ shader: "conv2dInputGrad", bindings: ["read", "read", "read", "read", "read", "write", "uniform"] });
    const l = c.layer;
    const count = c.rows * l.inHeight * Math.ceil(l.inWidth / COLUMN_BLOCK);
    const spatialGroups = Math.ceil(count / LANES);
    const workgroups = spatialGroups * c.batch * l.groups * Math.ceil(l.inChannels / l.groups / INPUT_BLOCK);
    const flags = (opts.accumulate ? FLAG_ACCUMULATE : 0) | (opts.mask ? FLAG_MASK : 0) | (opts.second ? FLAG_PAIR : 0);
    const words = this.convParams(c, count, flags, null, d, w, null, opts.mask ?? null, out, opts.slope ?? 0, {
      a: opts.second?.d, b: opts.second?.w, spatialGroups,
    });
    const ph = this.placeholder();
    const entries = [d.buffer, w.buffer, opts.mask?.buffer ?? ph, opts.second?.d.buffer ?? ph, opts.second?.w.buffer ?? ph, out.buffer, this.uniform(c.label, words)];
    return this.base.dispatch(c.label, kernel.pipeline, kernel.layout, entries, this.base.linearGroups(c.label, workgroups * LANES));
  }

  /**
   * Weight[b] (+)= sum over samples and positions of D[b] ⋆ X[b] (+ D2[b] ⋆ X2[b]) and, with `bias`,
   * Bias[b][o] (+)= sums of D[b][., o, ., .]: conv2d_weight_grad.wgsl writes per-thread partial sums
   * into `partials` (weightGradGeometry(...).partialFloats floats), conv2d_grad_reduce.wgsl sums them
   * in a fixed order (through `spare`, weightGradReduceFloats floats, when one pass cannot).
   */
  async weightGrad(
    c: ConvCall,
    d: Strided,
    x: Strided,
    weight: Strided,
    opts: { bias?: Strided; second?: { d: Strided; x: Strided }; accumulate: boolean; partials: GPUBuffer; spare: GPUBuffer | null },
  ): Promise<Dispatch[]> {
    const kernel = await this.ctx.kernel({ shader: "conv2dWeightGrad", bindings: ["read", "read", "read", "read", "write", "uniform"] });
    const l = c.layer;
    const [, oh, ow] = convOutputShape(l);
    const geo = weightGradGeometry(l, c.rows, c.batch, opts.bias !== undefined);
    const flags = (opts.bias ? FLAG_BIAS : 0) | (opts.second ? FLAG_PAIR : 0);
    const words = this.convParams(c, c.rows * oh * ow, flags, x, d, null, null, null, { buffer: opts.partials }, 0, {
      a: opts.second?.d, b: opts.second?.x, kThreads: geo.kThreads, steps: geo.steps, entries: geo.entries,
    });
    const ph = this.placeholder();
    const entries = [d.buffer, x.buffer, opts.second?.d.buffer ?? ph, opts.second?.x.buffer ?? ph, opts.partials, this.uniform(c.label, words)];
    const out = [this.base.dispatch(c.label, kernel.pipeline, kernel.layout, entries, this.base.linearGroups(c.label, geo.workgroups * LANES))];
    // Stage 2: sum the kThreads rows of partials, REDUCE_ROWS per thread, until one is left.
    const reduce = await this.ctx.kernel({ shader: "conv2dGradReduce", bindings: ["read", "write", "uniform"] });
    const nWeights = l.outChannels * (l.inChannels / l.groups) * l.kernel[0] * l.kernel[1];
    let rows = geo.kThreads;
    let from = opts.partials;
    for (let pass = 0; ; pass++) {
      const outRows = Math.ceil(rows / REDUCE_ROWS);
      const to = outRows === 1 ? weight.buffer : from === opts.partials ? opts.spare! : opts.partials;
      const count = c.batch * outRows * geo.entries;
      const w = new Uint32Array([
        rows, REDUCE_ROWS, outRows, geo.entries,
        nWeights, opts.accumulate ? 1 : 0, weight.offset ?? 0, weight.strideBatch ?? 0,
        opts.bias?.offset ?? 0, opts.bias?.strideBatch ?? 0, count, 0,
      ]);
      if (outRows === 1 && opts.bias && opts.bias.buffer !== weight.buffer) throw new Error("conv weight and bias gradients must share one buffer");
      const label = `${c.label} reduce${pass}`;
      out.push(this.base.dispatch(label, reduce.pipeline, reduce.layout, [from, to, this.uniform(label, w.buffer)], this.base.linearGroups(label, count)));
      if (outRows === 1) break;
      rows = outRows;
      from = to;
    }
    return out;
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
