/** `flatness bench`: engine timings beside @jax-js/jax (see src/bench/engineBench.ts). */
import { parseArgs } from "node:util";
import { BACKEND_NAMES, type BackendName } from "../backend/mod.ts";
import { InputError } from "../errors.ts";
import { BENCH_SIZES, runBench } from "../bench/engineBench.ts";
import { runMetricBench } from "../bench/metricBench.ts";
import { table } from "./format.ts";

export const BENCH_HELP = `flatness bench: forward, gradient, HVP and block-HVP timings, beside @jax-js/jax

Usage: flatness bench [--json] [--sizes 10k,100k,1M,cnn-mnist,cnn-cifar] [--backend webgpu,wasm] [--repeats R]
                      [--block K] [--no-jax]

Sizes: MLPs of ~10k, ~100k, ~1M parameters; cnn-mnist (conv 8 and 16 3x3 with max pooling and a
linear head on 1x28x28, batch 256) and cnn-cifar (three 3x3 conv layers, 16-32-64, on 3x32x32).
Backends: every one available, in turn (default: webgpu where an adapter comes, then wasm, the
WebAssembly SIMD CPU engine); --backend picks some (webgpu, wasm, cpu).
Rows: backend, net, params, batch, forwardMs, gradientMs, hvpMs, hvpReuseMs (forward state kept), blockHvpMs
(K directions, default 8), the ratios hvp/gradient and block/hvp, GFLOP/s, and jax-js's HVP on
the same data (checked equal first; jax-js's WebGPU backend beside webgpu rows, its wasm backend
beside wasm rows). Default sizes: all on a hardware GPU, 10k, 100k and cnn-mnist on CPU engines
and software WebGPU (1M and cnn-cifar take minutes there). Times are medians of R repeats after a warm-up.

Usage: flatness bench --metrics [--json] [--samples N] [--widths 256,256,128,10] [--power-iters P]
                      [--trace-matvecs M] [--no-jax]

Curvature metrics at benchmark size (default ~100k parameters, 2,048 samples): the top eigenvalue by
Lanczos and the trace by Hutch++ (HVPs used, wall time), and the same power iteration (P HVPs,
default 20) by this engine and by jax-js in the same run, checked to agree before their times are
compared. Hutch++ uses M products (default 99 on a hardware GPU, 30 on software WebGPU).

Examples:
  flatness bench --sizes 10k,100k
  flatness bench --backend wasm --json
  flatness bench --metrics --power-iters 10 --json
`;

export async function runBenchCommand(argv: string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      json: { type: "boolean" }, sizes: { type: "string" }, repeats: { type: "string" }, block: { type: "string" },
      "no-jax": { type: "boolean" }, backend: { type: "string" }, help: { type: "boolean", short: "h" }, metrics: { type: "boolean" },
      samples: { type: "string" }, widths: { type: "string" }, "power-iters": { type: "string" }, "trace-matvecs": { type: "string" },
    },
    strict: true,
  });
  if (values.help) {
    out(BENCH_HELP);
    return 0;
  }
  const sizes = values.sizes?.split(",").map((s) => s.trim());
  for (const s of sizes ?? []) {
    if (!BENCH_SIZES.some((b) => b.name === s)) throw new InputError(`--sizes: unknown size ${s} (known: ${BENCH_SIZES.map((b) => b.name).join(", ")})`);
  }
  const positive = (name: string, v: string | undefined) => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new InputError(`--${name} must be a positive integer, got ${v}`);
    return n;
  };
  if (values.metrics) {
    const widths = values.widths?.split(",").map((w) => positive("widths", w.trim())!);
    const r = await runMetricBench({
      widths,
      samples: positive("samples", values.samples),
      powerIterations: positive("power-iters", values["power-iters"]),
      traceMatvecs: positive("trace-matvecs", values["trace-matvecs"]),
      jax: !values["no-jax"],
      log: err,
    });
    if (values.json) {
      out(JSON.stringify(r, null, 2));
      return 0;
    }
    out(`adapter: ${r.adapter}${r.software ? " (software WebGPU)" : ""}; ${r.params} parameters, ${r.samples} samples`);
    const jax = r.jaxPower && "wallMs" in r.jaxPower ? r.jaxPower : null;
    out(table(["measure", "value", "HVPs", "wall ms", "ms/HVP"], [
      ["top eigenvalue (Lanczos)", r.lanczos.eigenvalue, r.lanczos.hvps, r.lanczos.wallMs, r.lanczos.wallMs / r.lanczos.hvps],
      ["trace (Hutch++)", r.hutchPlusPlus.estimate, r.hutchPlusPlus.hvps, r.hutchPlusPlus.wallMs, r.hutchPlusPlus.wallMs / r.hutchPlusPlus.hvps],
      ["power iteration (ours)", r.power.eigenvalue, r.power.hvps, r.power.wallMs, r.power.msPerHvp],
      ...(jax ? [[`power iteration (jax-js ${jax.backend})`, jax.eigenvalue, jax.iterations, jax.wallMs, jax.msPerHvp]] : []),
    ]));
    if (jax) out(`jax-js / ours, same power iteration: ${jax.speedup.toFixed(2)}x`);
    else if (r.jaxPower && "error" in r.jaxPower) out(r.jaxPower.error);
    return 0;
  }
  const backends = values.backend?.split(",").map((b) => b.trim()) as BackendName[] | undefined;
  for (const b of backends ?? []) {
    if (!(BACKEND_NAMES as readonly string[]).includes(b)) throw new InputError(`--backend: unknown backend ${b} (known: ${BACKEND_NAMES.join(", ")})`);
  }
  const result = await runBench({ sizes, backends, repeats: positive("repeats", values.repeats), blockSize: positive("block", values.block), jax: !values["no-jax"], log: err });
  if (values.json) {
    out(JSON.stringify(result, null, 2));
    return 0;
  }
  if (result.adapter !== "none") out(`adapter: ${result.adapter}${result.software ? " (software WebGPU)" : ""}`);
  for (const b of result.backends) out(`backend ${b.name}: ${b.describe}`);
  out(table(
    ["size", "backend", "params", "batch", "fwd ms", "grad ms", "hvp ms", "hvp/grad", "hvp reuse ms", "block ms", "block/hvp", "grad GFLOP/s", "hvp GFLOP/s", "jax-js hvp ms", "ours h2h ms", "jax/ours"],
    result.rows.map((r) => [
      r.name, r.backend, r.params, r.batch, r.forwardMs, r.gradientMs, r.hvpMs, r.hvpOverGradient, r.hvpReuseMs, r.blockHvpMs, r.blockOverHvp, r.gradientGflops, r.hvpGflops,
      r.jax && "hvpMs" in r.jax ? r.jax.hvpMs : "-", r.jax && "oursMs" in r.jax ? r.jax.oursMs : "-", r.jax && "speedup" in r.jax ? r.jax.speedup : "-",
    ]),
  ));
  for (const r of result.rows) {
    if (r.jax && "error" in r.jax) out(`${r.name}: ${r.jax.error}`);
    else if (r.jax) out(`${r.name}: jax-js on its ${r.jax.backend} backend${r.jax.note ? ` (${r.jax.note})` : ""}`);
  }
  return 0;
}
