/**
 * Text formatting shared by the command line, the reports, the SVG plots and the demos: numbers
 * (one formatter, styled by {@link NumberFormat}), durations, axis ticks, fixed-width tables and
 * XML escaping. Plain functions on strings and numbers: no WebGPU, no DOM, no command line.
 */

/**
 * How {@link formatNumber} writes a number. Every field is optional; `{}` gives 4 significant
 * digits, exponent form outside [1e-3, 1e5), trailing zeros dropped ("0.5"), and JavaScript's own
 * exponent and non-finite forms ("1.235e+5", "1.000e-9", "NaN", "Infinity", "-Infinity").
 */
export interface NumberFormat {
  /** Significant digits (default 4). */
  digits?: number;
  /** Significant digits in exponent form (default: `digits`). */
  expDigits?: number;
  /** Non-zero magnitudes below `small` (default 1e-3) are written in exponent form. */
  small?: number;
  /** Magnitudes of `large` (default 1e5) and above are written in exponent form. */
  large?: number;
  /** Integers of magnitude below this are written exactly, whatever `digits` (default 0: none). */
  exactIntegersBelow?: number;
  /** Write `x.toPrecision(digits)` as it is, trailing zeros kept ("0.5000"): columns of equal precision. */
  keepZeros?: boolean;
  /** Keep every digit before the point rather than rounding it to `digits` (12345.6 → "12346", not "12350"). */
  keepIntegerDigits?: boolean;
  /** Forms for people: "∞" and "−∞"; exponents without trailing mantissa zeros or "+" ("1.5e-9", "1e6"). */
  pretty?: boolean;
}

/** Command-line text and tables: integers exact, 4 digits with trailing zeros kept, exponent form outside [1e-3, 1e6). */
export const TEXT_FORMAT: NumberFormat = { large: 1e6, exactIntegersBelow: Infinity, keepZeros: true };

/** The `flatness reproduce` HTML report: integers exact below 10^15, 4 digits, exponent form outside [1e-3, 1e6), "∞". */
export const REPORT_FORMAT: NumberFormat = { large: 1e6, exactIntegersBelow: 1e15, pretty: true };

/** A number as text, in the style `format` describes (see {@link NumberFormat}); 0 and -0 are "0". */
export function formatNumber(x: number, format: NumberFormat = {}): string {
  const { digits = 4, expDigits = digits, small = 1e-3, large = 1e5, exactIntegersBelow = 0 } = format;
  if (!Number.isFinite(x)) return format.pretty && !Number.isNaN(x) ? (x > 0 ? "∞" : "−∞") : String(x);
  const a = Math.abs(x);
  if (Number.isInteger(x) && a < exactIntegersBelow) return String(x);
  if (a !== 0 && (a < small || a >= large)) {
    const s = x.toExponential(Math.max(0, expDigits - 1));
    if (!format.pretty) return s;
    const [m, e] = s.split("e");
    return `${trimZeros(m)}e${e.replace("+", "")}`;
  }
  const p = x.toPrecision(digits);
  if (format.keepZeros) return p;
  // toPrecision switches to exponent notation when the integer part has more digits than asked.
  if (format.keepIntegerDigits && p.includes("e")) return x.toFixed(0);
  return String(Number(p));
}

function trimZeros(s: string): string {
  return s.includes(".") ? s.replace(/\.?0+$/, "") : s;
}

/** A linear tick label with as many digits as the step needs; exponent form for huge or tiny ticks, "−" for minus. */
export function formatTick(v: number, step: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  const stepExp = Math.floor(Math.log10(step) + 1e-9);
  let s: string;
  if (a >= 1e5 || a < 1e-3) {
    const digits = Math.min(6, Math.max(0, Math.floor(Math.log10(a) + 1e-9) - stepExp));
    s = v.toExponential(digits).replace("e+", "e");
  } else s = v.toFixed(Math.min(20, Math.max(0, -stepExp)));
  return s.replace(/^-/, "−");
}

/** A duration for people: "850 ms", "12.3 s", "4 min 05 s"; "–" when negative or not finite. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "–";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(2) : s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  const rest = Math.round(s - 60 * m);
  return rest === 60 ? `${m + 1} min 00 s` : `${m} min ${String(rest).padStart(2, "0")} s`;
}

/** A fixed-width text table, columns right-aligned; numbers in {@link TEXT_FORMAT}. */
export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map((c) => (typeof c === "number" ? formatNumber(c, TEXT_FORMAT) : c)))];
  const widths = headers.map((_, j) => Math.max(...cells.map((r) => String(r[j]).length)));
  return cells.map((r) => r.map((c, j) => String(c).padStart(widths[j])).join("  ")).join("\n");
}

/** Escapes text for XML (SVG, HTML) content and attribute values, single- or double-quoted. */
export function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&#39;" })[c]!);
}

/** ||got - ref||_2 / ||ref||_2 (||got - ref||_2 when ref is zero): how far a result is from a reference. */
export function relativeError(got: ArrayLike<number>, ref: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    num += (got[i] - ref[i]) ** 2;
    den += ref[i] ** 2;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}
