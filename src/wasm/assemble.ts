/**
 * A small WebAssembly binary writer: just what the kernels of src/wasm/kernels.ts need (i32, f32
 * and v128 locals, structured loops, memory loads and stores, 128-bit SIMD, relaxed SIMD's fused
 * multiply-add). Bytes are emitted directly, as @jax-js/jax does for its wasm backend, so building
 * the module needs no compiler: build.mjs runs kernels.ts and embeds the bytes in
 * module.generated.ts, and test/wasm.test.ts fails when that file is stale.
 */

/** Value types. */
export const I32 = 0x7f;
export const F32 = 0x7d;
export const F64 = 0x7c;
export const V128 = 0x7b;
export type ValType = typeof I32 | typeof F32 | typeof F64 | typeof V128;

/** Unsigned LEB128. */
export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

/** Signed LEB128 (32-bit). */
export function sleb(n: number): number[] {
  const out: number[] = [];
  n |= 0;
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

function utf8(s: string): number[] {
  const bytes = [...new TextEncoder().encode(s)];
  return [...uleb(bytes.length), ...bytes];
}

function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

/** A local variable: its index in the function. */
export type Local = number;

/**
 * The body of one function. Methods append instructions (stack machine order); the structured
 * helpers (forRange, ifThen) keep loops and branches readable in the kernel generators.
 */
export class FunctionBuilder {
  readonly code: number[] = [];
  private readonly locals: ValType[] = [];
  private depth = 0;

  constructor(readonly name: string, readonly params: ValType[], readonly results: ValType[] = []) {}

  /** Parameter i as a local. */
  param(i: number): Local {
    return i;
  }

  /** A new local of type t. */
  local(t: ValType): Local {
    this.locals.push(t);
    return this.params.length + this.locals.length - 1;
  }

  private op(...bytes: number[]): this {
    for (const b of bytes) this.code.push(b);
    return this;
  }

  private simd(opcode: number, ...imm: number[]): this {
    return this.op(0xfd, ...uleb(opcode), ...imm);
  }

  get(l: Local): this {
    return this.op(0x20, ...uleb(l));
  }
  set(l: Local): this {
    return this.op(0x21, ...uleb(l));
  }
  tee(l: Local): this {
    return this.op(0x22, ...uleb(l));
  }
  i32(n: number): this {
    return this.op(0x41, ...sleb(n));
  }
  f32(x: number): this {
    const b = new Uint8Array(new Float32Array([x]).buffer);
    return this.op(0x43, ...b);
  }
  /** Calls function `index` (its position in the module's list). */
  call(index: number): this {
    return this.op(0x10, ...uleb(index));
  }
  drop(): this {
    return this.op(0x1a);
  }
  select(): this {
    return this.op(0x1b);
  }
  // i32 arithmetic and comparisons
  add(): this {
    return this.op(0x6a);
  }
  sub(): this {
    return this.op(0x6b);
  }
  mul(): this {
    return this.op(0x6c);
  }
  shl(): this {
    return this.op(0x74);
  }
  and(): this {
    return this.op(0x71);
  }
  eqz(): this {
    return this.op(0x45);
  }
  eq(): this {
    return this.op(0x46);
  }
  ne(): this {
    return this.op(0x47);
  }
  ltS(): this {
    return this.op(0x48);
  }
  geS(): this {
    return this.op(0x4e);
  }
  gtS(): this {
    return this.op(0x4a);
  }
  minS(a: Local, b: Local): this {
    // select(a, b, a < b)
    return this.get(a).get(b).get(a).get(b).ltS().select();
  }
  orI(): this {
    return this.op(0x72);
  }
  // f32 scalar
  f32Gt(): this {
    return this.op(0x5e);
  }
  i32Load(offset = 0): this {
    return this.op(0x28, 2, ...uleb(offset));
  }
  /** memory.copy (stack: dst, src, bytes). */
  memoryCopy(): this {
    return this.op(0xfc, ...uleb(10), 0, 0);
  }
  /** memory.fill (stack: dst, byte value, bytes). */
  memoryFill(): this {
    return this.op(0xfc, ...uleb(11), 0);
  }
  // f64 scalar
  f64Load(offset = 0): this {
    return this.op(0x2b, 3, ...uleb(offset));
  }
  f64Store(offset = 0): this {
    return this.op(0x39, 3, ...uleb(offset));
  }
  f64Add(): this {
    return this.op(0xa0);
  }
  f64PromoteF32(): this {
    return this.op(0xbb);
  }
  f32DemoteF64(): this {
    return this.op(0xb6);
  }
  /** v128.load64_zero: two f32 into the low half, zeros above. */
  load64Zero(offset = 0): this {
    return this.simd(0x5d, 3, ...uleb(offset));
  }
  f64x2PromoteLowF32x4(): this {
    return this.simd(0x5f);
  }
  f64x2Add(): this {
    return this.simd(0xf0);
  }
  /** i8x16.shuffle of two vectors by 32-bit lanes (0-3: the first, 4-7: the second). */
  shuffle32(lanes: [number, number, number, number]): this {
    const bytes: number[] = [];
    for (const l of lanes) for (let b = 0; b < 4; b++) bytes.push(4 * l + b);
    return this.simd(0x0d, ...bytes);
  }
  /** v128.store64_lane (stack: address, vector). */
  store64Lane(lane: number, offset = 0): this {
    return this.simd(0x5b, 0, ...uleb(offset), lane);
  }
  f32x4Gt(): this {
    return this.simd(0x44);
  }
  v128Bitselect(): this {
    return this.simd(0x52);
  }
  f32Add(): this {
    return this.op(0x92);
  }
  f32Mul(): this {
    return this.op(0x94);
  }
  f32Load(offset = 0): this {
    return this.op(0x2a, 2, ...uleb(offset));
  }
  f32Store(offset = 0): this {
    return this.op(0x38, 2, ...uleb(offset));
  }
  // v128
  v128Load(offset = 0): this {
    return this.simd(0x00, 0, ...uleb(offset)); // align 1: panels need not be 16-byte aligned
  }
  v128Store(offset = 0): this {
    return this.simd(0x0b, 0, ...uleb(offset));
  }
  load32Splat(offset = 0): this {
    return this.simd(0x09, 2, ...uleb(offset));
  }
  v128Zero(): this {
    return this.simd(0x0c, ...new Array(16).fill(0));
  }
  f32x4Splat(): this {
    return this.simd(0x13);
  }
  f32x4Add(): this {
    return this.simd(0xe4);
  }
  f32x4Mul(): this {
    return this.simd(0xe6);
  }
  /** relaxed SIMD: a·b + c, fused where the hardware has FMA (stack: a, b, c). */
  f32x4RelaxedMadd(): this {
    return this.simd(0x105);
  }

  /** if (condition on the stack) { then() } else { otherwise() } */
  ifThen(then: () => void, otherwise?: () => void): this {
    this.op(0x04, 0x40);
    this.depth++;
    then();
    if (otherwise) {
      this.op(0x05);
      otherwise();
    }
    this.depth--;
    return this.op(0x0b);
  }

  /** if (condition on the stack) then() else otherwise(), each pushing one value of type t. */
  ifThenValue(t: ValType, then: () => void, otherwise: () => void): this {
    this.op(0x04, t);
    this.depth++;
    then();
    this.op(0x05);
    otherwise();
    this.depth--;
    return this.op(0x0b);
  }

  /**
   * for (i = start; i < end; i += step) body(): `start`/`end` push an i32; `end` is evaluated every
   * iteration (pass a local). Runs zero times when start >= end.
   */
  forRange(i: Local, start: () => void, end: () => void, step: number | Local, body: () => void, stepIsLocal = false): this {
    start();
    this.set(i);
    this.op(0x02, 0x40); // block
    this.op(0x03, 0x40); // loop
    this.depth += 2;
    this.get(i);
    end();
    this.geS();
    this.op(0x0d, 1); // br_if to the block's end
    body();
    this.get(i);
    if (stepIsLocal) this.get(step as Local);
    else this.i32(step as number);
    this.add().set(i);
    this.op(0x0c, 0); // br to the loop
    this.depth -= 2;
    this.op(0x0b).op(0x0b);
    return this;
  }

  /** Encodes locals and body. */
  encode(): number[] {
    const groups: number[][] = [];
    for (const t of this.locals) {
      const last = groups[groups.length - 1];
      if (last && last[1] === t) last[0]++;
      else groups.push([1, t]);
    }
    const body = [...vec(groups.map(([n, t]) => [...uleb(n), t])), ...this.code, 0x0b];
    return [...uleb(body.length), ...body];
  }
}

/** A module that imports one memory (env.memory) and exports its functions. */
export function assembleModule(functions: FunctionBuilder[], memory: { shared: boolean; maxPages: number }): Uint8Array {
  const section = (id: number, payload: number[]) => [id, ...uleb(payload.length), ...payload];
  const types = functions.map((f) => [0x60, ...vec(f.params.map((p) => [p])), ...vec(f.results.map((r) => [r]))]);
  const limits = memory.shared ? [0x03, ...uleb(1), ...uleb(memory.maxPages)] : [0x01, ...uleb(1), ...uleb(memory.maxPages)];
  const imports = vec([[...utf8("env"), ...utf8("memory"), 0x02, ...limits]]);
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec(types)),
    ...section(2, imports),
    ...section(3, vec(functions.map((_, i) => uleb(i)))),
    ...section(7, vec(functions.map((f, i) => [...utf8(f.name), 0x00, ...uleb(i)]))),
    ...section(10, vec(functions.map((f) => f.encode()))),
  ];
  return Uint8Array.from(bytes);
}
