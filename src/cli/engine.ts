/** Shared by the commands that compute: numeric options, stderr progress, and the backend they run on. */
import { type Backend, parseBackendChoice, withBackend } from "../backend/mod.ts";
import { InputError } from "../errors.ts";

/** --name value as a number (undefined when absent); a clear error for anything else. */
export function numberOption(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const x = Number(value);
  if (value.trim() === "" || !Number.isFinite(x)) throw new InputError(`--${name} must be a number, got '${value}'`);
  return x;
}

/** A stderr progress line per stage, at most every 2 s (plus each stage's first and last). */
export function progressPrinter(err: (s: string) => void) {
  let last = 0;
  let lastStage = "";
  return (stage: string, fraction: number, message: string) => {
    const now = Date.now();
    if (stage !== lastStage || fraction >= 1 || now - last > 2000) {
      err(`[${stage}] ${(100 * Math.min(1, fraction)).toFixed(0)}% ${message}`);
      last = now;
      lastStage = stage;
    }
  };
}

/** The parseArgs entries of the backend options every computing command takes. */
export const BACKEND_ARGS = { backend: { type: "string" }, cpu: { type: "boolean" } } as const;

/** Their help lines. */
export const BACKEND_HELP = `  --backend B          auto (default: WebGPU on a hardware GPU, else wasm), webgpu, wasm (WebAssembly
                       SIMD on CPU threads, f32) or cpu (the float64 reference engine)
  --cpu                the same as --backend cpu`;

/**
 * Runs `work` on the backend the options ask for (--backend, --cpu), opened here and closed after;
 * the backend is reported through `log`: a WebGPU backend's adapter ("adapter: ..."), or
 * "backend: wasm (...)" / "backend: cpu (...)".
 */
export async function withCliBackend<T>(
  values: { backend?: string; cpu?: boolean },
  log: ((s: string) => void) | null,
  work: (backend: Backend) => Promise<T>,
): Promise<T> {
  return await withBackend(parseBackendChoice(values.backend, values.cpu), async (backend) => {
    if (backend.gpu) log?.(`adapter: ${backend.gpu.describe()}`);
    else log?.(`backend: ${backend.name} (${backend.describe()})`);
    return await work(backend);
  });
}
