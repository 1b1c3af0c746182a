/**
 * `flatness reproduce`: every claim of Dinh et al. (2017) turned into a number and a verdict, on
 * seeded built-in problems, with a table on stdout, progress on stderr, and a JSON record and a
 * self-contained HTML report in --out DIR. Exit status 0 only if every claim passes.
 */
import { parseArgs } from "node:util";
import { InputError } from "../errors.ts";
import { constants } from "node:fs";
import { access, mkdir } from "node:fs/promises";
import { writeFileAtomic } from "../io/files.ts";
import type { ReproduceContext } from "../reproduce/context.ts";
import { claimStands, renderReport } from "../reproduce/html.ts";
import { CLAIMS, runClaims } from "../reproduce/run.ts";
import { table } from "./format.ts";
import { BACKEND_ARGS, numberOption, withCliBackend } from "./engine.ts";

export const VERSION = "0.1.0";

export const REPRODUCE_HELP = `flatness reproduce: check every claim of "Sharp Minima Can Generalize For Deep Nets"
(Dinh, Pascanu, Bengio, Bengio, ICML 2017) on seeded built-in problems, on WebGPU

Usage: flatness reproduce [--quick] [--out DIR] [--json] [--claims 1,5,13] [--seed N] [--backend B]

  --quick        a reduced setting (fewer rays, runs and epochs; what CI runs)
  --out DIR      write DIR/reproduce.json (the whole record) and DIR/report.html (self-contained,
                 with plots); default ./flatness-report
  --json         print {"claims": [{"id", "claim", "measured", "expected", "pass", "controls":
                 [{"id", "breaks", "measured", "pass", "holds"}, ...]}, ...]} to stdout
  --claims LIST  only these claim ids (1-${CLAIMS.length})
  --seed N       seed of every problem and estimator (default 0)
  --backend B    auto (default: WebGPU on a hardware GPU, else the WebAssembly engine), webgpu, wasm, or cpu
                 (the float64 reference engine); --cpu is the same as cpu
  -h, --help     this help

Claims:
${CLAIMS.map((c) => `  ${String(c.id).padStart(2)}. ${c.claim}`).join("\n")}

Every claim also runs its negative controls: the same check with one ingredient deliberately broken
(a T_alpha that scales biases wrongly, a Hessian without its cross-layer terms, a Lanczos that stops
early, ...), which must make it FAIL; a control "holds" when it does.

Exit status: 0 if every claim passes and every negative control holds, 1 otherwise, 2 on bad options.

Examples:
  flatness reproduce                      the full run (a few minutes without a GPU), report in ./flatness-report
  flatness reproduce --quick --claims 5,13 --json
`;

function parseClaims(list: string | undefined): number[] | undefined {
  if (list === undefined) return undefined;
  const ids = list.split(",").map((s) => s.trim()).filter(Boolean).map(Number);
  for (const id of ids) {
    if (!CLAIMS.some((c) => c.id === id)) throw new InputError(`--claims: no claim ${id} (claims are 1-${CLAIMS.length})`);
  }
  return ids;
}

export async function runReproduce(argv: string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: "boolean" }, out: { type: "string" }, json: { type: "boolean" }, claims: { type: "string" },
      seed: { type: "string" }, ...BACKEND_ARGS, help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    out(REPRODUCE_HELP);
    return 0;
  }
  const seed = numberOption("seed", values.seed) ?? 0;
  if (!Number.isInteger(seed) || seed < 0) throw new InputError(`--seed must be a non-negative integer, got ${values.seed}`);
  const only = parseClaims(values.claims);
  const dir = values.out ?? "flatness-report";
  // Fail before minutes of work, not after: the report folder must be creatable and writable.
  try {
    await mkdir(dir, { recursive: true });
    await access(dir, constants.W_OK);
  } catch (e) {
    throw new InputError(`--out ${dir}: cannot write the report there (${(e as Error).message})`);
  }
  const started = Date.now();
  const progress = (m: string) => err(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${m}`);

  const { record, adapter } = await withCliBackend(values, null, async (backend) => {
    const adapter = backend.describe();
    progress(`adapter: ${adapter}; ${values.quick ? "quick" : "full"} setting; seed ${seed}`);
    const ctx: ReproduceContext = { backend, seed, quick: Boolean(values.quick), progress };
    const record = await runClaims(ctx, {
      only,
      adapter,
      version: VERSION,
      onClaim: (r) => {
        const held = (r.controls ?? []).filter((c) => c.holds).length;
        progress(`claim ${r.id}: ${r.pass ? "PASS" : "FAIL"} (${(r.wallMs / 1000).toFixed(1)} s) ${r.error ?? r.measured}; negative controls failing as they must: ${held} of ${r.controls?.length ?? 0}`);
      },
    });
    return { record, adapter };
  });
  const enc = new TextEncoder();
  await writeFileAtomic(`${dir}/reproduce.json`, enc.encode(JSON.stringify(record, null, 1)));
  await writeFileAtomic(`${dir}/report.html`, enc.encode(renderReport(record)));
  const passed = record.claims.filter((c) => c.pass).length;
  const controls = record.claims.flatMap((c) => c.controls ?? []);
  const held = controls.filter((c) => c.holds).length;
  if (values.json) {
    out(JSON.stringify({
      claims: record.claims.map(({ id, claim, measured, expected, pass, controls }) => ({
        id, claim, measured, expected, pass,
        controls: (controls ?? []).map((c) => ({ id: c.id, breaks: c.breaks, measured: c.error ?? c.measured, pass: c.pass, holds: c.holds })),
      })),
    }));
  } else {
    const rows = record.claims.map((c) => [
      String(c.id), c.claim.length > 60 ? c.claim.slice(0, 57) + "..." : c.claim, c.pass ? "PASS" : "FAIL",
      `${(c.controls ?? []).filter((x) => x.holds).length}/${c.controls?.length ?? 0} fail`, c.error ?? c.measured,
    ]);
    const width = (j: number) => Math.max(...rows.map((r) => r[j].length), 8);
    const left = (r: string[]) => r.map((cell, j) => (j === 1 || j === 4 ? cell.padEnd(width(j)) : cell));
    out(table(left(["id", "claim", "verdict", "controls", "measured"]), rows.map(left)));
    out(`\n${passed} of ${record.claims.length} claims pass; ${held} of ${controls.length} negative controls fail as they must (${(record.wallMs / 1000).toFixed(0)} s on ${adapter}); report: ${dir}/report.html`);
  }
  progress(`wrote ${dir}/reproduce.json and ${dir}/report.html`);
  return record.claims.length > 0 && record.claims.every(claimStands) ? 0 : 1;
}
