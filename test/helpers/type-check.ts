/**
 * Running the TypeScript compiler from tests: the project's own tsc, on a tsconfig.
 */
import { execFile } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const tsc = join(root, "node_modules", "typescript", "bin", "tsc");

/**
 * Type-checks the project `tsconfig` (a path, relative to the repository root or absolute) and
 * resolves to tsc's diagnostics, one per line with file and position: "" exactly when it
 * compiles. Never rejects for type errors.
 */
export async function typeCheckProject(tsconfig: string): Promise<string> {
  try {
    await promisify(execFile)(process.execPath, [tsc, "-p", tsconfig, "--pretty", "false"], {
      cwd: root,
      encoding: "utf8",
      maxBuffer: 16 << 20,
    });
    return "";
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; code?: unknown };
    const text = `${err.stdout ?? ""}${err.stderr ?? ""}`;
    return text || `tsc -p ${tsconfig} failed (exit status ${String(err.code)}) without a message`;
  }
}
