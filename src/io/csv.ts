/**
 * Numeric CSV data sets: one sample per line, comma-separated, one column holding the label
 * (by default the last). Whitespace around cells is trimmed; blank lines and lines starting
 * with `#` are skipped; double-quoted cells are allowed (for header names with commas) but may
 * not span lines. Every problem throws FileFormatError naming the path, line and column
 * (1-based, counted in the original text so the user can find them in an editor).
 */
import { FileFormatError } from "../errors.ts";

/** Options of parseCsv. */
export interface CsvOptions {
  /**
   * Which column holds the label: a 0-based index (negative counts from the end), a header name,
   * "last" (the default) or "none" (every column is a feature). A string of digits that names no
   * header column is taken as an index, so command-line values can be passed through unchanged.
   */
  labelColumn?: number | string | "last" | "none";
  /** Whether the first row names the columns; "auto" (default): yes when most of its cells are not numbers. */
  header?: boolean | "auto";
}

/** A parsed CSV file: features row-major and the label column, if any. */
export interface CsvData {
  /** Data rows n. */
  n: number;
  /** Feature columns. */
  features: number;
  /** Features, row-major [n, features]. */
  x: Float32Array;
  /** Names of the feature columns, in order (`column_<i>` with i the 0-based file column when there is no header). */
  columnNames: string[];
  /** The label column's values, when there is one (class indices or regression targets). */
  labels?: Float64Array;
  /** The label column's name, when there is one. */
  labelName?: string;
}

const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const NON_FINITE = /^[+-]?(?:nan|inf|infinity)$/i;

interface Row {
  line: number;
  cells: string[];
}

/** Parses numeric CSV text; see the module comment for the accepted dialect. */
export function parseCsv(text: string, path: string, options: CsvOptions = {}): CsvData {
  const rows = splitRows(text, path);
  if (rows.length === 0) throw new FileFormatError(path, "no data: the file has no rows (only blank or # comment lines)");

  const headerOption = options.header ?? "auto";
  // "nan", "inf" and empty cells are bad data rather than column names: reporting them as such
  // beats silently treating the first sample as a header.
  const looksLikeName = (c: string) => c !== "" && !NUMBER.test(c) && !NON_FINITE.test(c);
  // A header is a row whose cells are mostly names: a numeric first row with one bad cell
  // ("1,2,abc,4,0") is a data row, and its bad cell an error naming the line and column.
  const nameCount = rows[0].cells.filter(looksLikeName).length;
  const hasHeader = headerOption === "auto" ? 2 * nameCount > rows[0].cells.length : headerOption;
  const width = rows[0].cells.length;
  const names = hasHeader ? rows[0].cells : rows[0].cells.map((_, i) => `column_${i}`);
  const dataRows = hasHeader ? rows.slice(1) : rows;
  if (dataRows.length === 0) throw new FileFormatError(path, "no data rows after the header line");

  const label = resolveLabelColumn(options.labelColumn ?? "last", names, hasHeader, path);
  const featureColumns = names.map((_, i) => i).filter((i) => i !== label);
  if (featureColumns.length === 0) {
    throw new FileFormatError(path, `no feature columns: the only column (${names[0]}) is the label`);
  }

  const n = dataRows.length;
  const features = featureColumns.length;
  const x = new Float32Array(n * features);
  const labels = label >= 0 ? new Float64Array(n) : undefined;
  dataRows.forEach((row, r) => {
    if (row.cells.length !== width) {
      throw new FileFormatError(
        path,
        `line ${row.line}: has ${row.cells.length} columns but line ${rows[0].line} has ${width}`,
      );
    }
    for (let c = 0; c < width; c++) {
      const value = parseCell(row.cells[c], row.line, c, names[c], hasHeader, path);
      if (c === label) labels![r] = value;
      else x[r * features + (c < label || label < 0 ? c : c - 1)] = value;
    }
  });
  // A float64 value too large for float32 would silently become Infinity in x.
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i])) {
      const r = Math.floor(i / features);
      const c = featureColumns[i % features];
      throw new FileFormatError(
        path,
        `line ${dataRows[r].line}, column ${c + 1}: value '${dataRows[r].cells[c]}' is too large for float32`,
      );
    }
  }
  const result: CsvData = { n, features, x, columnNames: featureColumns.map((i) => names[i]) };
  if (labels) {
    result.labels = labels;
    result.labelName = names[label];
  }
  return result;
}

/** Splits into rows of trimmed cells, dropping blank and comment lines and remembering line numbers. */
function splitRows(text: string, path: string): Row[] {
  const rows: Row[] = [];
  const lines = text.replace(/^\uFEFF/, "").split(/\r\n|\n|\r/);
  lines.forEach((raw, i) => {
    const trimmed = raw.trim();
    if (trimmed === "" || trimmed.startsWith("#")) return;
    rows.push({ line: i + 1, cells: splitCells(raw, i + 1, path) });
  });
  return rows;
}

/** Splits one line at commas, honouring double quotes ("" inside quotes is a literal quote). */
function splitCells(line: string, lineNo: number, path: string): string[] {
  const cells: string[] = [];
  let i = 0;
  for (;;) {
    while (line[i] === " " || line[i] === "\t") i++;
    let cell: string;
    if (line[i] === '"') {
      let j = i + 1;
      cell = "";
      for (;;) {
        if (j >= line.length) {
          throw new FileFormatError(path, `line ${lineNo}, column ${cells.length + 1}: unterminated quoted cell`);
        }
        if (line[j] === '"') {
          if (line[j + 1] === '"') {
            cell += '"';
            j += 2;
            continue;
          }
          break;
        }
        cell += line[j++];
      }
      i = j + 1;
      while (line[i] === " " || line[i] === "\t") i++;
      if (i < line.length && line[i] !== ",") {
        throw new FileFormatError(path, `line ${lineNo}, column ${cells.length + 1}: text after a closing quote`);
      }
    } else {
      const end = line.indexOf(",", i);
      cell = (end < 0 ? line.slice(i) : line.slice(i, end)).trim();
      i = end < 0 ? line.length : end;
    }
    cells.push(cell);
    if (i >= line.length) return cells;
    i++; // past the comma
  }
}

function parseCell(cell: string, line: number, c: number, name: string, hasHeader: boolean, path: string): number {
  if (NUMBER.test(cell)) return Number(cell);
  const where = `line ${line}, column ${c + 1}${hasHeader ? ` (${name})` : ""}`;
  if (cell === "") throw new FileFormatError(path, `${where}: empty cell`);
  if (NON_FINITE.test(cell)) throw new FileFormatError(path, `${where}: value '${cell}' is not a finite number`);
  throw new FileFormatError(path, `${where}: '${cell}' is not a number`);
}

/** Returns the label's 0-based column, or -1 for "none". */
function resolveLabelColumn(
  option: number | string,
  names: string[],
  hasHeader: boolean,
  path: string,
): number {
  const width = names.length;
  if (option === "none") return -1;
  if (option === "last") return width - 1;
  if (typeof option === "string") {
    if (hasHeader) {
      const matches = names.flatMap((name, i) => (name === option ? [i] : []));
      if (matches.length > 1) {
        throw new FileFormatError(path, `label column '${option}' is ambiguous: the header names it ${matches.length} times`);
      }
      if (matches.length === 1) return matches[0];
    }
    if (!/^-?\d+$/.test(option.trim())) {
      throw new FileFormatError(
        path,
        hasHeader
          ? `label column '${option}' is not in the header (columns: ${names.join(", ")})`
          : `label column '${option}' given by name, but the file has no header line (give a column index)`,
      );
    }
    option = Number(option.trim());
  }
  if (!Number.isInteger(option) || option >= width || option < -width) {
    throw new FileFormatError(path, `label column index ${option} is out of range for ${width} columns`);
  }
  return option < 0 ? width + option : option;
}
