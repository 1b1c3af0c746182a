/**
 * The only file-system code in src/io: reading bytes and writing them atomically. The command
 * line runs in Deno, so Deno's APIs are used when `globalThis.Deno` exists; otherwise
 * `node:fs/promises` is imported on demand (vitest under Node). Browsers have neither and get a
 * clear error. Every failure is a FileFormatError that starts with the path.
 */
import { FileFormatError } from "../errors.ts";

/** The slice of Deno's API used here, declared so this file also type-checks outside Deno. */
interface DenoFs {
  readFile(path: string): Promise<Uint8Array>;
  writeFile(path: string, data: Uint8Array): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  remove(path: string): Promise<void>;
}

interface NodeFs {
  readFile(path: string): Promise<Uint8Array>;
  writeFile(path: string, data: Uint8Array): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  rm(path: string, options: { force: boolean }): Promise<void>;
}

type Fs = {
  read(path: string): Promise<Uint8Array>;
  write(path: string, data: Uint8Array): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  remove(path: string): Promise<void>;
};

async function fs(path: string): Promise<Fs> {
  const deno = (globalThis as unknown as { Deno?: DenoFs }).Deno;
  if (deno) {
    return {
      read: (p) => deno.readFile(p),
      write: (p, d) => deno.writeFile(p, d),
      rename: (a, b) => deno.rename(a, b),
      remove: (p) => deno.remove(p),
    };
  }
  let node: NodeFs;
  try {
    // A variable specifier keeps bundlers from trying to pull node:fs into browser builds.
    const specifier = "node:fs/promises";
    node = (await import(specifier)) as NodeFs;
  } catch (e) {
    throw new FileFormatError(path, "cannot access files in this runtime (no Deno or Node file system)", { cause: e });
  }
  return {
    read: async (p) => {
      const b = await node.readFile(p);
      // Node returns a Buffer (a Uint8Array subclass over a shared pool); hand back a plain copy.
      return new Uint8Array(b);
    },
    write: (p, d) => node.writeFile(p, d),
    rename: (a, b) => node.rename(a, b),
    remove: (p) => node.rm(p, { force: true }),
  };
}

/** Turns Deno's and Node's error shapes into one short reason ("No such file", ...). */
function reason(e: unknown): string {
  const err = e as { name?: string; code?: string; message?: string };
  const code = err.code ?? "";
  const name = err.name ?? "";
  if (code === "ENOENT" || name === "NotFound") return "No such file";
  if (code === "EACCES" || code === "EPERM" || name === "PermissionDenied") return "Permission denied";
  if (code === "EISDIR" || name === "IsADirectory") return "Is a directory";
  if (code === "ENOTDIR" || name === "NotADirectory") return "a parent of the path is not a directory";
  if (code === "ENOSPC") return "No space left on device";
  return err.message ?? String(e);
}

/** Reads a whole file; a failure is FileFormatError(path, "cannot read: <reason>"). */
export async function readFileBytes(path: string): Promise<Uint8Array> {
  const f = await fs(path);
  try {
    return await f.read(path);
  } catch (e) {
    throw new FileFormatError(path, `cannot read: ${reason(e)}`, { cause: e });
  }
}

/** Reads a whole file as UTF-8 text (for CSV); invalid UTF-8 is a FileFormatError. */
export async function readFileText(path: string): Promise<string> {
  const bytes = await readFileBytes(path);
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (e) {
    throw new FileFormatError(path, "cannot read: the file is not valid UTF-8 text", { cause: e });
  }
}

/**
 * Writes `bytes` to a temporary file beside `path`, then renames it over `path`: the rename is
 * atomic on one file system, so readers see the old file or the new one, never half of it, and
 * a failed write leaves no partial output (the temporary file is removed).
 */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const f = await fs(path);
  const suffix = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
  const temp = `${path}.tmp-${suffix}`;
  try {
    await f.write(temp, bytes);
    await f.rename(temp, path);
  } catch (e) {
    try {
      await f.remove(temp);
    } catch {
      // Nothing was created, or it cannot be removed either; the first error is the one to report.
    }
    throw new FileFormatError(path, `cannot write: ${reason(e)}`, { cause: e });
  }
}
