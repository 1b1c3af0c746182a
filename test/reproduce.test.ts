/**
 * `flatness reproduce`: each claim's check as a unit test on the float64 reference (quick
 * setting), each of its negative controls (one ingredient broken) making it fail, a check that a
 * wrong Hessian makes the identity claim fail, and the whole command end
 * to end on WebGPU with --quick (the README's main job in its reduced setting): every claim passes,
 * the JSON on stdout has the documented shape, and the record and the HTML report are written.
 */
import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Backend, cpuBackend } from "../src/backend/mod.ts";
import type { Objective } from "../src/objective.ts";
import { ReferenceObjective } from "../src/reference/engine.ts";
import type { ReproduceContext } from "../src/reproduce/context.ts";
import { CLAIMS } from "../src/reproduce/run.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const ctx: ReproduceContext = { backend: cpuBackend() as Backend, seed: 0, quick: true, progress: () => {} };

describe("reproduce claims on the float64 reference", () => {
  expect(CLAIMS.map((c) => c.id)).toEqual(Array.from({ length: CLAIMS.length }, (_, i) => i + 1));
  for (const claim of CLAIMS) {
    it(`claim ${claim.id}: ${claim.claim}`, async () => {
      const r = await claim.run(ctx);
      expect(r.pass, `${r.measured} | expected ${r.expected}`).toBe(true);
      expect(r.measured.length).toBeGreaterThan(10);
      expect(JSON.stringify(r.details ?? {})).not.toMatch(/NaN/);
    });
    // Every claim must be able to fail: each negative control (one ingredient broken) makes it FAIL,
    // by measurement (a control that throws does not count).
    it(`claim ${claim.id} has negative controls with distinct ids`, () => {
      const ids = (claim.controls ?? []).map((c) => c.id);
      expect(ids.length).toBeGreaterThan(0);
      expect(new Set(ids).size).toBe(ids.length);
      for (const c of claim.controls!) expect(c.breaks.length).toBeGreaterThan(10);
    });
    for (const control of claim.controls ?? []) {
      it(`claim ${claim.id} fails under its negative control ${control.id}`, async () => {
        const r = await claim.run({ ...ctx, control: control.id });
        expect(r.pass, `control ${control.id} did not make claim ${claim.id} fail: ${r.measured}`).toBe(false);
        expect(r.measured.length).toBeGreaterThan(10);
      });
    }
  }

  it("a wrong Hessian (H v off by 1e-3) makes claim 2 fail", async () => {
    class Skewed extends ReferenceObjective {
      override async hvp(theta: Float64Array, v: Float64Array, out: Float64Array) {
        await super.hvp(theta, v, out);
        for (let i = 0; i < out.length; i++) out[i] *= 1 + 1e-3 * Math.sin(theta[i] * 1e3);
      }
    }
    const skewed: Backend = { ...ctx.backend, objective: (spec, data, loss) => Promise.resolve(new Skewed(spec, data, loss) as Objective<unknown>) };
    const r = await CLAIMS[1].run({ ...ctx, backend: skewed });
    expect(r.pass).toBe(false);
  });
});

describe("flatness reproduce --quick on WebGPU", () => {
  it("every claim passes; JSON claims on stdout; reproduce.json and report.html written", () => {
    const dir = mkdtempSync(join(tmpdir(), "flatness-reproduce-"));
    const r = spawnSync(process.execPath, [join(root, "bin/flatness.mjs"), "reproduce", "--quick", "--json", "--out", dir], { encoding: "utf8", cwd: root });
    const json = JSON.parse(r.stdout);
    const failed = json.claims.filter((c: { pass: boolean }) => !c.pass).map((c: { id: number; measured: string }) => `${c.id}: ${c.measured}`);
    expect(failed, r.stderr.slice(-3000)).toEqual([]);
    expect(r.status).toBe(0);
    expect(json.claims).toHaveLength(CLAIMS.length);
    for (const c of json.claims) {
      expect(Object.keys(c).sort()).toEqual(["claim", "controls", "expected", "id", "measured", "pass"]);
      expect(c.controls.length, `claim ${c.id} has no negative control`).toBeGreaterThan(0);
      for (const x of c.controls) {
        expect(Object.keys(x).sort()).toEqual(["breaks", "holds", "id", "measured", "pass"]);
        expect(x.pass, `claim ${c.id} passes under its control ${x.id}: ${x.measured}`).toBe(false);
        expect(x.holds).toBe(true);
      }
    }
    expect(r.stderr).toMatch(/claim 15/); // progress on stderr
    const record = JSON.parse(readFileSync(join(dir, "reproduce.json"), "utf8"));
    expect(record.quick).toBe(true);
    expect(record.adapter).toMatch(/\S/);
    const html = readFileSync(join(dir, "report.html"), "utf8");
    const controls = CLAIMS.reduce((s, c) => s + (c.controls?.length ?? 0), 0);
    expect(html).toContain(`${CLAIMS.length} of ${CLAIMS.length} claims pass; ${controls} of ${controls} negative controls fail as they must`);
    expect(html).toMatch(/Negative controls/);
    expect((html.match(/<svg/g) ?? []).length).toBeGreaterThanOrEqual(8);
    expect(existsSync(join(dir, "report.html"))).toBe(true);
  }, 600_000);

  it("bad options: one clear line, exit 2", () => {
    const r = spawnSync(process.execPath, [join(root, "bin/flatness.mjs"), "reproduce", "--claims", "3,99"], { encoding: "utf8", cwd: root });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/no claim 99/);
    const unwritable = spawnSync(process.execPath, [join(root, "bin/flatness.mjs"), "reproduce", "--quick", "--out", join(root, "package.json", "report")], { encoding: "utf8", cwd: root });
    expect(unwritable.status).toBe(2);
    expect(unwritable.stderr).toMatch(/--out .*cannot write the report there/);
    expect(unwritable.stderr).not.toMatch(/claim 1/); // refused before any work
  });
});
