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
import { renderReport } from "../reproduce/html.ts";
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
  --json         print {"claims": [{"id", "claim", "measured", "expected", "pass"}, ...]} to stdout
  --claims LIST  only these claim ids (1-${CLAIMS.length})
  --seed N       seed of every problem and estimator (default 0)
  --backend B    webgpu (default) or cpu (the float64 reference engine); --cpu is the same as cpu
  -h, --help     this help

Claims:
${CLAIMS.map((c) => `  ${String(c.id).padStart(2)}. ${c.claim}`).join("\n")}

Exit status: 0 if every claim passes, 1 if one fails, 2 on bad options.

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
    const adapter = backend.gpu ? backend.describe() : "float64 CPU reference engine";
    progress(`adapter: ${adapter}; ${values.quick ? "quick" : "full"} setting; seed ${seed}`);
    const ctx: ReproduceContext = { backend, seed, quick: Boolean(values.quick), progress };
    const record = await runClaims(ctx, {
      only,
      adapter,
      version: VERSION,
      onClaim: (r) => progress(`claim ${r.id}: ${r.pass ? "PASS" : "FAIL"} (${(r.wallMs / 1000).toFixed(1)} s) ${r.error ?? r.measured}`),
    });
    return { record, adapter };
  });
  const enc = new TextEncoder();
  await writeFileAtomic(`${dir}/reproduce.json`, enc.encode(JSON.stringify(record, null, 1)));
  await writeFileAtomic(`${dir}/report.html`, enc.encode(renderReport(record)));
  const passed = record.claims.filter((c) => c.pass).length;
  if (values.json) {
    out(JSON.stringify({ claims: record.claims.map(({ id, claim, measured, expected, pass }) => ({ id, claim, measured, expected, pass })) }));
  } else {
    const rows = record.claims.map((c) => [String(c.id), c.claim.length > 60 ? c.claim.slice(0, 57) + "..." : c.claim, c.pass ? "PASS" : "FAIL", c.error ?? c.measured]);
    const width = (j: number) => Math.max(...rows.map((r) => r[j].length), 8);
    const left = (r: string[]) => r.map((cell, j) => (j === 1 || j === 3 ? cell.padEnd(width(j)) : cell));
    out(table(left(["id", "claim", "verdict", "measured"]), rows.map(left)));
    out(`\n${passed} of ${record.claims.length} claims pass (${(record.wallMs / 1000).toFixed(0)} s on ${adapter}); report: ${dir}/report.html`);
  }
  progress(`wrote ${dir}/reproduce.json and ${dir}/report.html`);
  return passed === record.claims.length ? 0 : 1;
}
