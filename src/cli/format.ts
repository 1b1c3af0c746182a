/** Formatting and comparison helpers for command-line output; the shared ones live in ../format.ts. */
import { formatNumber as format, TEXT_FORMAT } from "../format.ts";

export { relativeError, table } from "../format.ts";

/** A number in command-line text ({@link TEXT_FORMAT}); one argument, so `xs.map(formatNumber)` is safe. */
export function formatNumber(x: number): string {
  return format(x, TEXT_FORMAT);
}
