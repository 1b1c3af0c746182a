/**
 * Numbers as the pages show them (src/format.ts with the demos' settings).
 */
import { formatNumber as format } from "../../src/format.ts";

/**
 * A number for display: `digits` significant digits, exponent notation outside [1e-3, 1e5),
 * "NaN", "∞", "−∞"; trailing zeros kept off ("1.5", not "1.500").
 */
export function formatNumber(x: number, digits = 4): string {
  return format(x, { digits, pretty: true, keepIntegerDigits: true });
}
