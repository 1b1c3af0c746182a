/**
 * The invariance audit on the float64 reference (and once through the command line on WebGPU):
 * every transform keeps the function; the Hessian measures and epsilon-sharpness move under
 * T_alpha and neuron-wise rescaling while the invariant measures stay; the radial map divides the
 * Hessian by a^2 at its centre; whitening moves input gradients; inapplicable cases are marked.
 */
import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { audit, type AuditReport } from "../src/audit/audit.ts";
import { auditSvg, formatAudit } from "../src/audit/report.ts";
import { type Backend, cpuBackend } from "../src/backend/mod.ts";
import { writeModel } from "../src/io/modelFile.ts";
import { writeNpy } from "../src/io/npy.ts";
import type { MetricName } from "../src/metrics/suite.ts";
import { parameterLayout } from "../src/model.ts";
import { makeCase } from "./support/numeric.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const c = makeCase({ widths: [3, 5, 4, 3], batch: 25, loss: "ce", seed: 31, kinkMargin: 1e-3 });
const cpu = cpuBackend() as Backend;
const metrics: MetricName[] = ["spectrum", "trace", "epsilon-sharpness", "adaptive", "fisher-rao", "path-norm", "relative-flatness", "normalized-sharpness", "input-gradients"];

function verdicts(report: AuditReport, transform: string): Record<string, string> {
  const row = report.transforms.find((t) => t.transform === transform)!;
  return Object.fromEntries(row.metrics.map((m) => [m.metric, m.verdict]));
}

describe("invariance audit", () => {
  let report: AuditReport;

  it("T_alpha and neuron-wise rescaling: the function is kept, Hessian measures move, invariant measures stay", async () => {
    report = await audit({ spec: c.spec, theta: c.theta, data: c.data, loss: "ce" }, cpu, {
      transforms: ["alpha", "neuron", "weight-norm", "radial", "zca"],
      metrics,
      seed: 2,
      measure: { topK: 1, traceSamples: 90 },
    });
    for (const t of report.transforms) {
      expect(t.skipped).toBeUndefined();
      // Input maps store the transformed data in f32 (Dataset.x), hence 1e-6 there.
      const tol = t.family === "input" ? 1e-6 : 1e-9;
      expect(t.functionCheck!.relativeOutputDifference, t.transform).toBeLessThan(tol);
      expect(Math.abs(t.functionCheck!.lossAfter - t.functionCheck!.lossBefore)).toBeLessThan(tol);
    }
    for (const transform of ["alpha", "neuron"]) {
      const v = verdicts(report, transform);
      for (const moved of ["spectrum", "trace", "epsilon-sharpness"]) expect(v[moved], `${transform}: ${moved}`).toBe("moved");
      for (const kept of ["adaptive", "fisher-rao", "path-norm", "normalized-sharpness", "input-gradients"]) {
        expect(v[kept], `${transform}: ${kept}`).toBe("invariant");
      }
    }
    // Relative flatness is invariant to T_alpha; rescaling the units feeding layer 1 changes its kappa (see relativeFlatness.ts).
    expect(verdicts(report, "alpha")["relative-flatness"]).toBe("invariant");
    expect(verdicts(report, "neuron")["relative-flatness"]).toBe("moved");
  });

  it("reparametrizations: weight-norm v -> 4v flattens, the radial map divides the Hessian by a^2 at its centre; theta-layout metrics are n/a", () => {
    const wn = report.transforms.find((t) => t.transform === "weight-norm")!;
    const wnTop = wn.metrics.find((m) => m.metric === "spectrum")!;
    expect(wnTop.verdict).toBe("moved");
    expect(wnTop.ratio!).toBeLessThan(1);
    expect(wn.metrics.find((m) => m.metric === "path-norm")!.verdict).toBe("n/a");
    const radial = report.transforms.find((t) => t.transform === "radial")!;
    // At its centre the radial map has Jacobian I / a (a = 4) and no second-order term, so
    // H_eta = H / 16 exactly; the same seeded probes and start vectors make both estimates scale by
    // exactly 1/16 (float64 rounding aside), the stochastic trace included.
    for (const metric of ["spectrum", "trace"]) {
      const m = radial.metrics.find((r) => r.metric === metric)!;
      expect(Math.abs(m.ratio! - 1 / 16), metric).toBeLessThan(1e-9);
    }
  });

  it("input whitening keeps predictions but moves input-gradient norms (section 5.2)", () => {
    expect(verdicts(report, "zca")["input-gradients"]).toBe("moved");
    const text = formatAudit(report);
    expect(text).toMatch(/zca: ZCA whitening/);
    expect(text).toMatch(/function check: max \|f_after - f_before\|/);
    const svg = auditSvg(report);
    expect(svg.startsWith("<svg")).toBe(true);
    expect(svg).toMatch(/✓ /);
    expect((svg.match(/<rect /g) ?? []).length).toBe(1 + 5 * metrics.length);
  });

  it("a transform that does not apply is reported as skipped, not as a failure", async () => {
    const one = makeCase({ widths: [3, 2], batch: 10, loss: "ce", seed: 5 });
    const r = await audit({ spec: one.spec, theta: one.theta, data: one.data, loss: "ce" }, cpu, { transforms: ["alpha", "neuron", "standardize"], metrics: ["spectrum"] });
    expect(r.transforms[0].skipped).toMatch(/at least two layers/);
    expect(r.transforms[1].skipped).toMatch(/hidden layer/);
    expect(r.transforms[2].skipped).toBeUndefined();
  });

  it("flatness audit on WebGPU: JSON, the SVG plot, and clear errors", () => {
    const dir = mkdtempSync(join(tmpdir(), "flatness-audit-"));
    const loaded = { model: { spec: c.spec, theta: c.theta }, format: "safetensors" as const, tensorNames: parameterLayout(c.spec).views.map((v) => v.name), metadata: {} };
    writeFileSync(join(dir, "net.safetensors"), writeModel(loaded));
    writeFileSync(join(dir, "x.npy"), writeNpy(c.data.x, [c.data.n, c.data.features]));
    writeFileSync(join(dir, "y.npy"), writeNpy(c.data.labels!, [c.data.n]));
    const base = ["audit", "--model", join(dir, "net.safetensors"), "--data", join(dir, "x.npy"), "--labels", join(dir, "y.npy"), "--loss", "ce"];
    const run = (args: string[]) => spawnSync(process.execPath, [join(root, "bin/flatness.mjs"), ...base, ...args], { encoding: "utf8", cwd: root });
    const plot = join(dir, "audit.svg");
    const r = run(["--transforms", "alpha", "--metrics", "spectrum,path-norm,fisher-rao", "--top-k", "1", "--json", "--plot", plot, "--quiet"]);
    expect(r.status, r.stderr).toBe(0);
    const json = JSON.parse(r.stdout);
    const row = json.transforms[0];
    expect(row.functionCheck.relativeOutputDifference).toBeLessThan(1e-5);
    const v = Object.fromEntries(row.metrics.map((m: { metric: string; verdict: string }) => [m.metric, m.verdict]));
    expect(v).toEqual({ spectrum: "moved", "path-norm": "invariant", "fisher-rao": "invariant" });
    expect(existsSync(plot) && readFileSync(plot, "utf8").startsWith("<svg")).toBe(true);
    const bad = run(["--transforms", "alpha,twist", "--quiet"]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/unknown transform 'twist'/);
    const badPlot = run(["--plot", join(dir, "audit.png"), "--quiet"]);
    expect(badPlot.status).toBe(2);
    expect(badPlot.stderr).toMatch(/--plot writes SVG/);
  });
});
