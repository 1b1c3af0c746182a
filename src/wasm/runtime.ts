/**
 * The WebAssembly runtime of the CPU engine: one linear memory (shared between threads where the
 * runtime allows it), the GEMM kernel module (src/wasm/kernels.ts, embedded by build.mjs in
 * module.generated.ts), a first-fit allocator over the memory, and a pool of workers that split
 * each large GEMM with the calling thread.
 *
 * Threads. Workers (Node worker_threads, Deno and browser Web Workers) instantiate the same module
 * on the same shared memory and wait (a short spin, then Atomics.wait) on a control block there.
 * A threaded gemm writes one argument list per part into the control block, opens the parts for
 * claiming, bumps the generation word and notifies; every thread, the calling one included,
 * then claims parts one at a time (compare-and-swap on a claim word tagged with the generation)
 * until none is left, and the calling thread waits until every part is done. Claiming balances
 * the load: a worker that wakes late or is descheduled (other processes on the cores) leaves its
 * parts to the others instead of stalling the call. Parts split the columns (or rows) of C in
 * whole micro-tiles, a few per thread, and the order of every sum depends on K only, so the
 * result is the same whoever runs a part and for any thread count; gemms whose output is small
 * and whose sum is long (weight gradients of convolutions) split the sum instead, each part into
 * its own scratch copy of C, added in part order: deterministic for a given thread count.
 * Workers run nothing but the kernel module: they never touch WebGPU.
 *
 * Without SharedArrayBuffer (a page that is not cross-origin isolated) or with threads: 1, the
 * memory is not shared and everything runs on the calling thread.
 */
import { InputError } from "../errors.ts";
import { GEMM_BLOCKING, GEMM_WORK_BYTES, WASM_KERNELS, type WasmKernelVariant } from "./module.generated.ts";

/** Options of WasmRuntime.create. */
export interface WasmRuntimeOptions {
  /** Threads (the calling one included); default: the hardware concurrency, at most 8; 1 where memory cannot be shared. */
  threads?: number;
  /** Multiply-adds below which a gemm stays on the calling thread (default 2^18; tests pass 0 to thread every gemm). */
  minThreadWork?: number;
}

const PAGE = 65536;
const MAX_PAGES = 65536;
const CONTROL_INTS = 16 + 16 * 16; // header + 16 parts of 16 ints
const MAX_THREADS = 16;
const MAX_PARTS = 16;
/** Parts per thread of a split gemm (claimed dynamically; each part packs its own copy of the shared operand). */
const PARTS_PER_THREAD = 3;
/**
 * Rows (or columns) of C per part at least, beyond one part per thread: a part packs all of the
 * operand the parts share, which costs about 1/(32·rows) of its multiply-adds each, so this keeps
 * the repacking near 3%.
 */
const MIN_PART_ROWS = 128;
// Control block words: generation, exit flag, parts, parts done, claim word (-1: closed; else tag << 5 | next part).
const GEN = 0;
const EXIT = 1;
const NPARTS = 2;
const DONE = 3;
const CLAIM = 4;
/** Multiply-adds below which a gemm runs on the calling thread alone (waking workers costs ~10-50 µs). */
const THREAD_MIN_WORK = 1 << 18;

function base64Bytes(b64: string): Uint8Array<ArrayBuffer> {
  const bin = atob(b64);
  const out = new Uint8Array(new ArrayBuffer(bin.length));
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Whether this runtime can share WebAssembly memory with workers. */
export function threadsAvailable(): boolean {
  const g = globalThis as { crossOriginIsolated?: boolean; SharedArrayBuffer?: unknown };
  if (typeof g.SharedArrayBuffer !== "function") return false;
  if (g.crossOriginIsolated === false) return false;
  return typeof (globalThis as { Worker?: unknown }).Worker === "function" || isNode();
}

/** Imports a Node built-in by name (kept out of the library's type check, which has no Node types). */
// deno-lint-ignore no-explicit-any
const nodeBuiltin = (name: string): Promise<any> => import(name);

function isNode(): boolean {
  const p = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return Boolean(p?.versions?.node) && !("Deno" in globalThis);
}

/** Hardware threads of this machine. */
async function hardwareConcurrency(): Promise<number> {
  const n = (globalThis.navigator as { hardwareConcurrency?: number } | undefined)?.hardwareConcurrency;
  if (n && n > 0) return n;
  if (isNode()) {
    try {
      const os = await nodeBuiltin("node:os");
      return os.availableParallelism?.() ?? os.cpus().length;
    } catch {
      return 1;
    }
  }
  return 1;
}

/** Which embedded kernel module this runtime validates: relaxed SIMD first. */
export function pickVariant(shared: boolean): WasmKernelVariant {
  const names: WasmKernelVariant[] = shared ? ["relaxedShared", "simdShared"] : ["relaxed", "simd"];
  for (const name of names) if (WebAssembly.validate(base64Bytes(WASM_KERNELS[name]))) return name;
  throw new InputError("this runtime's WebAssembly lacks 128-bit SIMD: use --backend cpu (float64) or webgpu");
}

/** Whether WebAssembly with 128-bit SIMD is available here (the wasm backend's requirement). */
export function wasmSimdAvailable(): boolean {
  try {
    return typeof WebAssembly === "object" && WebAssembly.validate(base64Bytes(WASM_KERNELS.simd));
  } catch {
    return false;
  }
}

/**
 * The worker's source: instantiates the kernels on the shared memory and runs gemm parts as the
 * control block says. Runs unchanged under Node's worker_threads and as a Web Worker.
 */
const WORKER_SOURCE = `
const start = (msg, post) => {
  const { bytes, memory, control, work } = msg;
  const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } });
  const gemm = instance.exports.gemm;
  const ctl = new Int32Array(memory.buffer, control, ${CONTROL_INTS});
  const ctlF = new Float32Array(memory.buffer, control, ${CONTROL_INTS});
  let gen = Atomics.load(ctl, ${GEN});
  post("ready");
  for (;;) {
    // A short spin first: gemms come in quick succession, and Atomics.wait's wake-up is slow.
    for (let spins = 0; spins < 2000 && Atomics.load(ctl, ${GEN}) === gen; spins++);
    Atomics.wait(ctl, ${GEN}, gen);
    gen = Atomics.load(ctl, ${GEN});
    if (Atomics.load(ctl, ${EXIT}) === -1) return;
    for (;;) {
      const w = Atomics.load(ctl, ${CLAIM});
      if (w < 0 || (w & 31) >= Atomics.load(ctl, ${NPARTS})) break;
      if (Atomics.compareExchange(ctl, ${CLAIM}, w, w + 1) !== w) continue;
      const p = 16 + 16 * (w & 31);
      gemm(ctl[p], ctl[p + 1], ctl[p + 2], ctl[p + 3], ctl[p + 4], ctl[p + 5], ctl[p + 6], ctl[p + 7], ctl[p + 8], ctl[p + 9], ctl[p + 10], ctl[p + 11], work, ctl[p + 12], ctl[p + 13], ctlF[p + 14], ctl[p + 15]);
      Atomics.add(ctl, ${DONE}, 1);
      Atomics.notify(ctl, ${DONE});
    }
  }
};
if (typeof self === "object" && typeof self.postMessage === "function" && typeof require === "undefined") {
  self.onmessage = (e) => { self.onmessage = null; start(e.data, (m) => self.postMessage(m)); };
} else {
  const { parentPort } = require("node:worker_threads");
  parentPort.once("message", (m) => start(m, (x) => parentPort.postMessage(x)));
}
`;

interface WorkerHandle {
  terminate(): unknown;
}

/** Starts one worker on `msg`; resolves when it has instantiated the module. */
async function startWorker(msg: Record<string, unknown>): Promise<WorkerHandle> {
  if (isNode()) {
    const { Worker } = await nodeBuiltin("node:worker_threads");
    const w = new Worker(WORKER_SOURCE, { eval: true });
    w.unref(); // an engine left open must not keep the process alive
    await new Promise<void>((resolve, reject) => {
      w.once("message", () => resolve());
      w.once("error", reject);
      w.postMessage(msg);
    });
    return w;
  }
  const url = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "text/javascript" }));
  const w = new Worker(url, { type: "module" });
  try {
    await new Promise<void>((resolve, reject) => {
      w.onmessage = () => resolve();
      w.onerror = (e) => {
        e.preventDefault?.();
        reject(new Error(`wasm worker failed: ${(e as ErrorEvent).message}`));
      };
      w.postMessage(msg);
    });
  } finally {
    URL.revokeObjectURL(url);
  }
  return w;
}

/** Arguments of one gemm (see kernels.ts); addresses in bytes, strides in elements. */
export interface GemmArgs {
  M: number;
  N: number;
  K: number;
  A: number;
  rsA: number;
  csA: number;
  B: number;
  rsB: number;
  csB: number;
  C: number;
  ldc: number;
  /** Add into C (true) or overwrite it. */
  accumulate: boolean;
  /** Byte address of N floats added to every row of the product when C is overwritten (not with accumulate). */
  bias?: number;
  /**
   * Applied as C is finished, Z laid out as C (same ldc): "mask" stores C = Z > 0 ? v : slope·v
   * (a rectifier's derivative times the product v), "rectify" stores C = v and Z = v > 0 ? v : slope·v.
   */
  epilogue?: { kind: "mask" | "rectify"; Z: number; slope: number };
}

const EPILOGUE_MODE = { mask: 1, rectify: 2 } as const;

type GemmFn = (...args: number[]) => void;

export class WasmRuntime {
  /** Kernel statistics: gemm calls, and how many ran on more than one thread. */
  readonly stats = { gemms: 0, threaded: 0 };
  private f32View: Float32Array;
  private i32View: Int32Array;
  private readonly gemmFn: GemmFn;
  private free: { at: number; size: number }[] = [];
  private top: number;
  private readonly sizes = new Map<number, number>();
  private readonly works: number[] = [];
  private readonly control: number;
  private readonly ctl: Int32Array;
  private readonly ctlF: Float32Array;
  private readonly canBlock: boolean;
  private closed = false;
  private minThreadWork = THREAD_MIN_WORK;

  private constructor(
    readonly memory: WebAssembly.Memory,
    readonly variant: WasmKernelVariant,
    private readonly instance: WebAssembly.Instance,
    private readonly workers: WorkerHandle[],
    readonly threads: number,
    control: number,
    works: number[],
    top: number,
    canBlock: boolean,
  ) {
    this.f32View = new Float32Array(memory.buffer);
    this.i32View = new Int32Array(memory.buffer);
    this.gemmFn = instance.exports.gemm as GemmFn;
    this.control = control;
    this.ctl = new Int32Array(memory.buffer, control, CONTROL_INTS);
    this.ctlF = new Float32Array(memory.buffer, control, CONTROL_INTS);
    this.works = works;
    this.top = top;
    this.canBlock = canBlock;
  }

  /** Opens the runtime: the memory, the kernel module and (threads > 1) the workers. */
  static async create(options: WasmRuntimeOptions = {}): Promise<WasmRuntime> {
    if (options.threads !== undefined && !(Number.isInteger(options.threads) && options.threads >= 1)) {
      throw new InputError(`threads must be a positive integer, got ${options.threads}`);
    }
    const wanted = Math.min(MAX_THREADS, options.threads ?? Math.min(8, await hardwareConcurrency()));
    const threads = threadsAvailable() ? wanted : 1;
    const shared = threads > 1;
    const variant = pickVariant(shared);
    const bytes = base64Bytes(WASM_KERNELS[variant]);
    const initialPages = 256; // 16 MiB
    const memory = new WebAssembly.Memory({ initial: initialPages, maximum: MAX_PAGES, ...(shared ? { shared: true } : {}) } as WebAssembly.MemoryDescriptor);
    const module = await WebAssembly.compile(bytes as BufferSource);
    const instance = await WebAssembly.instantiate(module, { env: { memory } });
    // Layout: [0, 64 KiB) unused, control block, one gemm work area per thread, then the heap.
    const control = PAGE;
    let top = control + 4 * CONTROL_INTS;
    const works: number[] = [];
    for (let t = 0; t < threads; t++) {
      top = Math.ceil(top / 64) * 64;
      works.push(top);
      top += GEMM_WORK_BYTES;
    }
    top = Math.ceil(top / 64) * 64;
    const need = Math.ceil(top / PAGE) - initialPages;
    if (need > 0) memory.grow(need);
    let canBlock = true;
    try {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0);
    } catch {
      canBlock = false; // a page's main thread: spin instead
    }
    const workers: WorkerHandle[] = [];
    const runtime = new WasmRuntime(memory, variant, instance, workers, threads, control, works, top, canBlock);
    if (options.minThreadWork !== undefined) runtime.minThreadWork = options.minThreadWork;
    if (shared) {
      try {
        Atomics.store(runtime.ctl, CLAIM, -1);
        for (let t = 1; t < threads; t++) workers.push(await startWorker({ bytes, memory, control, work: works[t] }));
      } catch (e) {
        runtime.close();
        throw e;
      }
    }
    return runtime;
  }

  /** One line for logs. */
  describe(): string {
    const simd = this.variant.startsWith("relaxed") ? "relaxed SIMD" : "SIMD";
    return `WebAssembly ${simd}, ${this.threads} thread${this.threads === 1 ? "" : "s"}`;
  }

  /** A Float32Array over the whole memory (renewed after the memory grows). */
  get f32(): Float32Array {
    if (this.f32View.buffer !== this.memory.buffer) this.refresh();
    return this.f32View;
  }

  /** An Int32Array over the whole memory. */
  get i32(): Int32Array {
    if (this.i32View.buffer !== this.memory.buffer) this.refresh();
    return this.i32View;
  }

  private refresh() {
    this.f32View = new Float32Array(this.memory.buffer);
    this.i32View = new Int32Array(this.memory.buffer);
  }

  /** Allocates `floats` 4-byte cells (64-byte aligned); returns the byte address. */
  alloc(floats: number): number {
    const size = Math.max(64, Math.ceil((4 * floats) / 64) * 64);
    for (let i = 0; i < this.free.length; i++) {
      const f = this.free[i];
      if (f.size >= size) {
        const at = f.at;
        if (f.size === size) this.free.splice(i, 1);
        else {
          f.at += size;
          f.size -= size;
        }
        this.sizes.set(at, size);
        return at;
      }
    }
    const at = this.top;
    const end = at + size;
    const pages = Math.ceil(end / PAGE);
    const have = this.memory.buffer.byteLength / PAGE;
    if (pages > MAX_PAGES) throw new InputError(`the wasm engine needs ${(end / 2 ** 30).toFixed(2)} GiB, past WebAssembly's 4 GiB: use smaller chunkRows or data`);
    if (pages > have) this.memory.grow(pages - have);
    this.top = end;
    this.sizes.set(at, size);
    return at;
  }

  /** Releases an allocation. */
  release(at: number): void {
    const size = this.sizes.get(at);
    if (size === undefined) return;
    this.sizes.delete(at);
    this.free.push({ at, size });
    this.free.sort((a, b) => a.at - b.at);
    const merged: { at: number; size: number }[] = [];
    for (const f of this.free) {
      const last = merged[merged.length - 1];
      if (last && last.at + last.size === f.at) last.size += f.size;
      else merged.push({ ...f });
    }
    // The block at the top goes back to the bump pointer.
    const last = merged[merged.length - 1];
    if (last && last.at + last.size === this.top) {
      this.top = last.at;
      merged.pop();
    }
    this.free = merged;
  }

  /** Bytes allocated and not released (leak checks). */
  get allocatedBytes(): number {
    let s = 0;
    for (const v of this.sizes.values()) s += v;
    return s;
  }

  /** C (+)= op(A)·op(B) on the runtime's threads (see kernels.ts). */
  gemm(g: GemmArgs): void {
    if (this.closed) throw new InputError("the wasm engine was closed");
    const { M, N, K } = g;
    if (M <= 0 || N <= 0) return;
    this.stats.gemms++;
    const T = this.threads;
    const work = M * N * K;
    if (g.bias && g.accumulate) throw new InputError("gemm: a bias is added only when C is overwritten");
    const bias = g.bias ?? 0;
    if (K === 0) {
      if (!g.accumulate) {
        const f = this.f32;
        for (let i = 0; i < M; i++) {
          const row = g.C / 4 + i * g.ldc;
          if (bias) f.copyWithin(row, bias / 4, bias / 4 + N);
          else f.fill(0, row, row + N);
        }
        const e = g.epilogue;
        if (e) for (let i = 0; i < M; i++) this.epilogueRow(e, g.C + 4 * i * g.ldc, e.Z + 4 * i * g.ldc, N);
      }
      return;
    }
    const e = g.epilogue;
    const Z = e ? e.Z : 0;
    const mode = e ? EPILOGUE_MODE[e.kind] : 0;
    const slope = e ? e.slope : 0;
    if (T === 1 || work < this.minThreadWork) {
      this.gemmFn(M, N, K, g.A, g.rsA, g.csA, g.B, g.rsB, g.csB, g.C, g.ldc, g.accumulate ? 1 : 0, this.works[0], Z, mode, slope, bias);
      return;
    }
    const { MR, NR } = GEMM_BLOCKING;
    const parts: number[][] = [];
    const tilesN = Math.ceil(N / NR);
    const tilesM = Math.ceil(M / MR);
    const acc = g.accumulate ? 1 : 0;
    if (tilesN >= T && (tilesN >= tilesM || tilesM < T)) {
      // Columns of C, in whole NR-wide strips.
      const P = Math.min(MAX_PARTS, T * PARTS_PER_THREAD, tilesN, Math.max(T, Math.floor(N / MIN_PART_ROWS)));
      for (let t = 0; t < P; t++) {
        const n0 = Math.min(N, Math.floor((t * tilesN) / P) * NR);
        const n1 = Math.min(N, Math.floor(((t + 1) * tilesN) / P) * NR);
        parts.push([M, n1 - n0, K, g.A, g.rsA, g.csA, g.B + 4 * n0 * g.csB, g.rsB, g.csB, g.C + 4 * n0, g.ldc, acc, Z + 4 * n0, mode, slope, bias ? bias + 4 * n0 : 0]);
      }
    } else if (tilesM >= T) {
      // Rows of C, in whole MR-tall strips.
      const P = Math.min(MAX_PARTS, T * PARTS_PER_THREAD, tilesM, Math.max(T, Math.floor(M / MIN_PART_ROWS)));
      for (let t = 0; t < P; t++) {
        const m0 = Math.min(M, Math.floor((t * tilesM) / P) * MR);
        const m1 = Math.min(M, Math.floor(((t + 1) * tilesM) / P) * MR);
        parts.push([m1 - m0, N, K, g.A + 4 * m0 * g.rsA, g.rsA, g.csA, g.B, g.rsB, g.csB, g.C + 4 * m0 * g.ldc, g.ldc, acc, Z + 4 * m0 * g.ldc, mode, slope, bias]);
      }
    } else if (K >= 256 * T) {
      this.gemmSplitK(g);
      return;
    } else {
      this.gemmFn(M, N, K, g.A, g.rsA, g.csA, g.B, g.rsB, g.csB, g.C, g.ldc, acc, this.works[0], Z, mode, slope, bias);
      return;
    }
    this.runParts(parts);
  }

  /** A gemm with a small C and a long sum: the sum split among threads, partial products added in part order. */
  private gemmSplitK(g: GemmArgs): void {
    const T = this.threads;
    const { M, N, K } = g;
    const scratch = this.alloc(T * M * N);
    try {
      const parts: number[][] = [];
      for (let t = 0; t < T; t++) {
        const k0 = Math.floor((t * K) / T);
        const k1 = Math.floor(((t + 1) * K) / T);
        parts.push([M, N, k1 - k0, g.A + 4 * k0 * g.csA, g.rsA, g.csA, g.B + 4 * k0 * g.rsB, g.rsB, g.csB, scratch + 4 * t * M * N, N, 0, 0, 0, 0, 0]);
      }
      this.runParts(parts);
      const f = this.f32;
      const s0 = scratch / 4;
      for (let i = 0; i < M; i++) {
        const c = g.C / 4 + i * g.ldc;
        for (let j = 0; j < N; j++) {
          let acc = g.accumulate ? f[c + j] : g.bias ? f[g.bias / 4 + j] : 0;
          for (let t = 0; t < T; t++) acc += f[s0 + t * M * N + i * N + j];
          f[c + j] = acc;
        }
        const e = g.epilogue;
        if (e) this.epilogueRow(e, g.C + 4 * i * g.ldc, e.Z + 4 * i * g.ldc, N);
      }
      this.stats.gemms++;
    } finally {
      this.release(scratch);
    }
  }

  /** A gemm's epilogue over one finished row of n floats at C (byte addresses). */
  private epilogueRow(e: NonNullable<GemmArgs["epilogue"]>, row: number, z: number, n: number): void {
    if (e.kind === "mask") this.rectify(row, row, z, n, e.slope);
    else this.rectify(z, row, row, n, e.slope);
  }

  /**
   * Runs the parts (gemm arguments less the work area) on every thread: the claim word is closed
   * (no worker can take a part while they are rewritten), the parts written, the claim word
   * reopened with this generation's tag, the workers woken; then this thread claims parts like the
   * workers and waits until all are done.
   */
  private runParts(parts: number[][]): void {
    this.stats.threaded++;
    const ctl = this.ctl;
    const n = parts.length;
    Atomics.store(ctl, CLAIM, -1);
    for (let t = 0; t < n; t++) {
      const p = parts[t];
      for (let i = 0; i < 14; i++) ctl[16 + 16 * t + i] = p[i];
      this.ctlF[16 + 16 * t + 14] = p[14];
      ctl[16 + 16 * t + 15] = p[15];
    }
    Atomics.store(ctl, NPARTS, n);
    Atomics.store(ctl, DONE, 0);
    const gen = (Atomics.load(ctl, GEN) + 1) & 0xffffff;
    Atomics.store(ctl, CLAIM, gen << 5);
    Atomics.store(ctl, GEN, gen);
    Atomics.notify(ctl, GEN);
    const work = this.works[0];
    for (;;) {
      const w = Atomics.load(ctl, CLAIM);
      const i = w & 31;
      if (i >= n) break;
      if (Atomics.compareExchange(ctl, CLAIM, w, w + 1) !== w) continue;
      const p = parts[i];
      if (p[2] > 0) this.gemmFn(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11], work, p[12], p[13], p[14], p[15]);
      Atomics.add(ctl, DONE, 1);
    }
    let spins = 0;
    for (;;) {
      const done = Atomics.load(ctl, DONE);
      if (done >= n) break;
      if (this.canBlock && ++spins > 2000) Atomics.wait(ctl, DONE, done, 1);
    }
  }

  /** dst[i] = z[i] > 0 ? r[i] : slope·r[i] over n floats (byte addresses; dst may be r or z). */
  rectify(dst: number, r: number, z: number, n: number, slope: number): void {
    (this.instance.exports.rectify as (...a: number[]) => void)(dst, r, z, n, slope);
  }

  /** dst[j] += sum over r of src[r·n + j], summed in f64 in row order in scratch (n doubles, 8-byte aligned). */
  colSums(dst: number, src: number, rows: number, n: number, scratch: number): void {
    (this.instance.exports.colSums as (...a: number[]) => void)(dst, src, rows, n, scratch);
  }

  /** The im2col of kernels.ts (calling thread). */
  im2col(x: number, cols: number, R: number, P: number, T: number, Cin: number, Cg: number, groups: number, taps: number, inSize: number): void {
    (this.instance.exports.im2col as (...a: number[]) => void)(x, cols, R, P, T, Cin, Cg, groups, taps, inSize);
  }

  /** Its transpose: x = col2im(cols) (x overwritten). */
  col2im(x: number, cols: number, R: number, P: number, T: number, Cin: number, Cg: number, groups: number, taps: number, inSize: number): void {
    (this.instance.exports.col2im as (...a: number[]) => void)(x, cols, R, P, T, Cin, Cg, groups, taps, inSize);
  }

  /** Stops the workers. The memory goes with the last reference to it. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.workers.length > 0) {
      Atomics.store(this.ctl, CLAIM, -1);
      Atomics.store(this.ctl, EXIT, -1);
      Atomics.add(this.ctl, GEN, 1);
      Atomics.notify(this.ctl, GEN);
      for (const w of this.workers) w.terminate();
    }
    void this.instance;
    void this.control;
  }
}
