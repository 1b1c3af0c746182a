/**
 * The WebAssembly runtime of the CPU engine: one linear memory (shared between threads where the
 * runtime allows it), the GEMM kernel module (src/wasm/kernels.ts, embedded by build.mjs in
 * module.generated.ts), a first-fit allocator over the memory, and a pool of workers that split
 * each large GEMM with the calling thread.
 *
 * Threads. Workers (Node worker_threads, Deno and browser Web Workers) instantiate the same module
 * on the same shared memory and block in Atomics.wait on a control block there. A threaded gemm
 * writes one argument list per part into the control block, bumps the generation word and
 * notifies; the calling thread runs part 0 while the workers run theirs, then waits until every
 * part is done. Parts split the columns (or rows) of C in whole micro-tiles, and the order of
 * every sum depends on K only, so the result is the same for any thread count; gemms whose output
 * is small and whose sum is long (weight gradients of convolutions) split the sum instead, each
 * part into a scratch copy of C, added in part order: deterministic for a given thread count.
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
  const { bytes, memory, control, index } = msg;
  const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } });
  const gemm = instance.exports.gemm;
  const ctl = new Int32Array(memory.buffer, control, ${CONTROL_INTS});
  let gen = Atomics.load(ctl, 0);
  post("ready");
  for (;;) {
    Atomics.wait(ctl, 0, gen);
    gen = Atomics.load(ctl, 0);
    if (ctl[1] === -1) return;
    const p = 16 + 16 * index;
    if (index < ctl[2]) {
      gemm(ctl[p], ctl[p + 1], ctl[p + 2], ctl[p + 3], ctl[p + 4], ctl[p + 5], ctl[p + 6], ctl[p + 7], ctl[p + 8], ctl[p + 9], ctl[p + 10], ctl[p + 11], ctl[p + 12]);
    }
    Atomics.add(ctl, 3, 1);
    Atomics.notify(ctl, 3);
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
}

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
        for (let t = 1; t < threads; t++) workers.push(await startWorker({ bytes, memory, control, index: t }));
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
    if (T === 1 || work < this.minThreadWork) {
      if (K === 0) {
        if (!g.accumulate) for (let i = 0; i < M; i++) this.f32.fill(0, g.C / 4 + i * g.ldc, g.C / 4 + i * g.ldc + N);
        return;
      }
      this.gemmFn(M, N, K, g.A, g.rsA, g.csA, g.B, g.rsB, g.csB, g.C, g.ldc, g.accumulate ? 1 : 0, this.works[0]);
      return;
    }
    const { MR, NR } = GEMM_BLOCKING;
    const parts: number[][] = [];
    const tilesN = Math.ceil(N / NR);
    const tilesM = Math.ceil(M / MR);
    if (tilesN >= T && (tilesN >= tilesM || tilesM < T)) {
      // Columns of C, in whole NR-wide strips.
      for (let t = 0; t < T; t++) {
        const n0 = Math.min(N, Math.floor((t * tilesN) / T) * NR);
        const n1 = Math.min(N, Math.floor(((t + 1) * tilesN) / T) * NR);
        parts.push([M, n1 - n0, K, g.A, g.rsA, g.csA, g.B + 4 * n0 * g.csB, g.rsB, g.csB, g.C + 4 * n0, g.ldc, g.accumulate ? 1 : 0, this.works[t]]);
      }
    } else if (tilesM >= T) {
      // Rows of C, in whole MR-tall strips.
      for (let t = 0; t < T; t++) {
        const m0 = Math.min(M, Math.floor((t * tilesM) / T) * MR);
        const m1 = Math.min(M, Math.floor(((t + 1) * tilesM) / T) * MR);
        parts.push([m1 - m0, N, K, g.A + 4 * m0 * g.rsA, g.rsA, g.csA, g.B, g.rsB, g.csB, g.C + 4 * m0 * g.ldc, g.ldc, g.accumulate ? 1 : 0, this.works[t]]);
      }
    } else if (K >= 256 * T) {
      this.gemmSplitK(g);
      return;
    } else {
      this.gemmFn(M, N, K, g.A, g.rsA, g.csA, g.B, g.rsB, g.csB, g.C, g.ldc, g.accumulate ? 1 : 0, this.works[0]);
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
        parts.push([M, N, k1 - k0, g.A + 4 * k0 * g.csA, g.rsA, g.csA, g.B + 4 * k0 * g.rsB, g.rsB, g.csB, scratch + 4 * t * M * N, N, 0, this.works[t]]);
      }
      this.runParts(parts);
      const f = this.f32;
      const s0 = scratch / 4;
      for (let i = 0; i < M; i++) {
        const c = g.C / 4 + i * g.ldc;
        for (let j = 0; j < N; j++) {
          let acc = g.accumulate ? f[c + j] : 0;
          for (let t = 0; t < T; t++) acc += f[s0 + t * M * N + i * N + j];
          f[c + j] = acc;
        }
      }
      this.stats.gemms++;
    } finally {
      this.release(scratch);
    }
  }

  private runParts(parts: number[][]): void {
    this.stats.threaded++;
    const ctl = this.ctl;
    for (let t = 1; t < parts.length; t++) ctl.set(parts[t], 16 + 16 * t);
    Atomics.store(ctl, 2, parts.length);
    Atomics.store(ctl, 3, 0);
    Atomics.add(ctl, 0, 1);
    Atomics.notify(ctl, 0);
    const p0 = parts[0];
    if (p0[2] > 0) this.gemmFn(...p0);
    let spins = 0;
    for (;;) {
      const done = Atomics.load(ctl, 3);
      if (done >= this.workers.length) break;
      if (this.canBlock && ++spins > 2000) Atomics.wait(ctl, 3, done, 1);
    }
  }

  /** dst[i] = z[i] > 0 ? r[i] : slope·r[i] over n floats (byte addresses; dst may be r or z). */
  rectify(dst: number, r: number, z: number, n: number, slope: number): void {
    (this.instance.exports.rectify as (...a: number[]) => void)(dst, r, z, n, slope);
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
      Atomics.store(this.ctl, 1, -1);
      Atomics.add(this.ctl, 0, 1);
      Atomics.notify(this.ctl, 0);
      for (const w of this.workers) w.terminate();
    }
    void this.instance;
    void this.control;
  }
}
