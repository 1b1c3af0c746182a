/// <reference lib="dom" />
/**
 * Browser side of the WebAssembly engine check: opens the "wasm" backend in the page (threads
 * where the page is cross-origin isolated, one thread otherwise), and compares its loss, gradient,
 * HVP and block HVP on a small MLP and a small CNN with the float64 reference; publishes the
 * results on window.__wasmResults for test/browser.test.ts.
 */
import { parseArchitecture } from "../../src/architecture.ts";
import { openBackend } from "../../src/backend/mod.ts";
import { initParameters, randomDataset } from "../../src/init.ts";
import type { ModelSpec } from "../../src/model.ts";
import { Rng } from "../../src/random.ts";
import { ReferenceObjective } from "../../src/reference/engine.ts";
import { compareVectors } from "../support/numeric.ts";

interface WasmReport {
  isolated: boolean;
  backend: string;
  results: { name: string; worst: number }[];
  fatal?: string;
}

declare global {
  interface Window {
    __wasmResults?: WasmReport;
  }
}

const NETS: [string, ModelSpec][] = [
  ["mlp [5, 33, 17, 3]", parseArchitecture("linear(33),relu,linear(17),relu,linear(3)", [5])],
  ["cnn conv-maxpool-conv-avgpool-linear", parseArchitecture("conv(4,3,padding=1),relu,maxpool(2),conv(6,3),relu,avgpool(2),flatten,linear(3)", [2, 10, 10])],
];

/** max |got - ref| / max |ref| over one vector. */
function relative(got: ArrayLike<number>, ref: ArrayLike<number>): number {
  const c = compareVectors(got, ref, 0);
  return c.worst / Math.max(c.scale, 1e-30);
}

async function main() {
  const log = document.getElementById("log")!;
  const report: WasmReport = { isolated: globalThis.crossOriginIsolated === true, backend: "", results: [] };
  try {
    const backend = await openBackend("wasm");
    report.backend = backend.describe();
    try {
      for (const [name, spec] of NETS) {
        const data = randomDataset(spec, 37, "ce", 3);
        const theta = Float64Array.from(Float32Array.from(initParameters(spec, 4)));
        const reference = new ReferenceObjective(spec, data, "ce");
        const f = await backend.objective(spec, data, "ce");
        const rng = new Rng(5);
        const vs = [rng.normals(theta.length), rng.normals(theta.length), rng.normals(theta.length)];
        const s = f.space;
        const t = s.fromArray(theta);
        const g = s.zeros();
        const loss = await f.gradient(t, g);
        const refGrad = new Float64Array(theta.length);
        const refLoss = await reference.gradient(theta, refGrad);
        const outs = vs.map(() => s.zeros());
        await f.hvpBlock(t, vs.map((v) => s.fromArray(v)), outs);
        const hv = s.zeros();
        await f.hvp(t, s.fromArray(vs[0]), hv);
        let worst = Math.max(Math.abs(loss - refLoss) / Math.abs(refLoss), relative(await s.toArray(g), refGrad));
        for (const [j, v] of vs.entries()) {
          const ref = new Float64Array(theta.length);
          await reference.hvp(theta, v, ref);
          worst = Math.max(worst, relative(await s.toArray(outs[j]), ref));
          if (j === 0) worst = Math.max(worst, relative(await s.toArray(hv), ref));
        }
        f.dispose();
        report.results.push({ name, worst });
        log.textContent += `${name}: worst relative difference ${worst.toExponential(2)}\n`;
      }
    } finally {
      await backend.close();
    }
  } catch (e) {
    report.fatal = `${(e as Error).name}: ${(e as Error).message}`;
  }
  window.__wasmResults = report;
}

main();
