/**
 * `npm test`: runs `node --test` over every test file of the repository
 * (`packages/<name>/test/**\/*.test.ts` and `tests/e2e/**\/*.test.ts`).
 *
 * Extra arguments are forwarded: paths (files or directories) replace the discovered set, so
 * `npm test -- packages/db/test/migrate.test.ts` runs that file alone; options (starting with `-`) go
 * to `node --test` after the defaults, so they win (`npm test -- --test-name-pattern=checksum`).
 * Options that take a value must be written `--option=value`.
 */
import { spawn } from 'node:child_process';
import { existsSync, globSync, statSync } from 'node:fs';
import { basename, dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const PATTERNS = ['packages/*/test/**/*.test.ts', 'tests/e2e/**/*.test.ts'];
const DEFAULT_OPTIONS = ['--test-concurrency=2', '--test-timeout=120000'];

function fail(message: string): never {
  process.stderr.write(`test: ${message}\n`);
  process.exit(1);
}

function discover(patterns: readonly string[], cwd: string): string[] {
  const files = patterns.flatMap((pattern) =>
    globSync(pattern, { cwd, exclude: (path) => basename(path) === 'node_modules' }),
  );
  return [...new Set(files.map((file) => relative(ROOT, resolve(cwd, file))))].sort();
}

const options: string[] = [];
const paths: string[] = [];
for (const arg of process.argv.slice(2)) {
  if (arg.startsWith('-')) options.push(arg);
  else paths.push(arg);
}

let files: string[];
if (paths.length === 0) {
  files = discover(PATTERNS, ROOT);
  if (files.length === 0) fail(`no test file found (looked for ${PATTERNS.join(', ')})`);
} else {
  files = [];
  for (const path of paths) {
    const absolute = resolve(process.cwd(), path);
    if (!existsSync(absolute)) fail(`no such test file or directory: ${path}`);
    if (statSync(absolute).isDirectory()) {
      const found = discover(['**/*.test.ts'], absolute);
      if (found.length === 0) fail(`no *.test.ts file under ${path}`);
      files.push(...found);
    } else {
      files.push(relative(ROOT, absolute));
    }
  }
}

const child = spawn(process.execPath, ['--test', ...DEFAULT_OPTIONS, ...options, ...files], {
  cwd: ROOT,
  stdio: 'inherit',
});

// The child shares the terminal, so Ctrl-C reaches it directly; SIGTERM (CI cancelling) is passed on.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => child.kill(signal));
}

child.on('error', (error) => fail(`could not start node: ${error.message}`));
child.on('exit', (code, signal) => {
  if (signal !== null) {
    process.stderr.write(`test: node --test ended by ${signal}\n`);
    process.exit(1);
  }
  process.exit(code ?? 1);
});
