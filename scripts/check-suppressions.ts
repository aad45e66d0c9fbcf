/**
 * AUDIT S-3: every lint or type suppression carries its reason.
 *
 * Scans the repository's JavaScript and TypeScript files (tracked, or untracked but not ignored, as
 * `git ls-files` reports them; a directory walk when git is unavailable) and reports, as
 * `file:line: problem`:
 * - a Biome suppression without a category or without a reason after the colon;
 * - a TypeScript expect-error directive without a reason;
 * - the TypeScript ignore and no-check directives and ESLint disable directives, which are not allowed.
 *
 * Only comments are inspected: string, template and regular expression literals are skipped, so code
 * that merely talks about these directives (this script included) is not reported.
 * Usage: `node scripts/check-suppressions.ts [file…]` (no argument: the whole repository).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const EXTENSIONS = /\.(?:[cm]?[jt]s|[jt]sx)$/;
/** Skipped by the fallback walk: anywhere by name, and the ignored output folders by path. */
const SKIPPED_NAMES = new Set(['node_modules', '.git']);
const SKIPPED_PATHS = new Set(['.tasker', 'bench/results']);

// Built from pieces so that this file's own source never spells a directive.
const TS = '@ts-';
const EXPECT_ERROR = `${TS}expect-error`;
const BIOME = `biome${'-'}ignore`;
/** Directives that are never allowed, with what to do instead. */
const FORBIDDEN: readonly (readonly [string, string])[] = [
  [`${TS}ignore`, `use ${EXPECT_ERROR} with a reason`],
  [`${TS}nocheck`, 'type-check the whole file'],
  [`eslint${'-'}disable`, `the project lints with Biome; use ${BIOME} with a reason`],
];

interface Comment {
  /** The comment's text without its `//`, `/*` and `*\/` delimiters. */
  text: string;
  /** 1-based line of the comment's first character. */
  line: number;
}

const REGEX_AFTER_WORD = new Set([
  'return',
  'typeof',
  'instanceof',
  'in',
  'of',
  'new',
  'delete',
  'void',
  'throw',
  'case',
  'do',
  'else',
  'yield',
  'await',
]);

/**
 * Extracts the comments of a JavaScript or TypeScript source. A small scanner, not a parser: it
 * tracks strings, template literals (with nested `${}`), regular expression literals (told apart from
 * division by the preceding token) and comments. Quote and regex literals never run past the end of
 * their line, so a misread literal cannot hide the rest of the file.
 */
function extractComments(source: string): Comment[] {
  const comments: Comment[] = [];
  let line = 1;
  let i = 0;
  /** Brace depth of each open template substitution. */
  const templates: number[] = [];
  let braces = 0;
  /** The last significant character or word in code, for the regex-or-division decision. */
  let previous = '';

  const regexAllowed = (): boolean =>
    previous === '' || /^[([{,;:=!&|?+\-*%<>~^}]$/.test(previous) || REGEX_AFTER_WORD.has(previous);

  /** Scans a template literal's text from `i` (after the backtick or `}`) to its end or a `${`. */
  const scanTemplate = (): void => {
    while (i < source.length) {
      const c = source[i];
      if (c === '\\') {
        if (source[i + 1] === '\n') line++;
        i += 2;
      } else if (c === '`') {
        i++;
        previous = '`';
        return;
      } else if (c === '$' && source[i + 1] === '{') {
        i += 2;
        templates.push(braces);
        braces = 0;
        previous = '{';
        return;
      } else {
        if (c === '\n') line++;
        i++;
      }
    }
  };

  while (i < source.length) {
    const c = source[i] ?? '';
    const next = source[i + 1];
    if (c === '\n') {
      line++;
      i++;
    } else if (c === ' ' || c === '\t' || c === '\r') {
      i++;
    } else if (c === '/' && next === '/') {
      const end = source.indexOf('\n', i);
      const stop = end === -1 ? source.length : end;
      comments.push({ text: source.slice(i + 2, stop), line });
      i = stop;
    } else if (c === '/' && next === '*') {
      const end = source.indexOf('*/', i + 2);
      const stop = end === -1 ? source.length : end;
      const text = source.slice(i + 2, stop);
      comments.push({ text, line });
      line += text.split('\n').length - 1;
      i = end === -1 ? source.length : end + 2;
    } else if (c === '"' || c === "'") {
      i++;
      while (i < source.length && source[i] !== c && source[i] !== '\n') {
        if (source[i] === '\\') {
          if (source[i + 1] === '\n') line++;
          i++;
        }
        i++;
      }
      if (source[i] === c) i++;
      previous = c;
    } else if (c === '`') {
      i++;
      scanTemplate();
    } else if (c === '/' && regexAllowed()) {
      i++;
      let inClass = false;
      while (i < source.length && source[i] !== '\n') {
        const r = source[i];
        if (r === '\\') i++;
        else if (r === '[') inClass = true;
        else if (r === ']') inClass = false;
        else if (r === '/' && !inClass) break;
        i++;
      }
      if (source[i] === '/') i++;
      while (i < source.length && /[a-z]/i.test(source[i] ?? '')) i++;
      previous = '/regex/';
    } else if (/[A-Za-z0-9_$]/.test(c)) {
      const start = i;
      while (i < source.length && /[A-Za-z0-9_$]/.test(source[i] ?? '')) i++;
      previous = source.slice(start, i);
    } else {
      if (c === '{') {
        braces++;
      } else if (c === '}') {
        if (braces === 0 && templates.length > 0) {
          braces = templates.pop() ?? 0;
          i++;
          scanTemplate();
          continue;
        }
        braces--;
      }
      previous = c;
      i++;
    }
  }
  return comments;
}

/** Index of the first `:` not inside a rule value such as `lint/x/y(a:b)`, or -1. */
function colonOutsideParentheses(text: string): number {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '(') depth++;
    else if (c === ')') depth = Math.max(0, depth - 1);
    else if (c === ':' && depth === 0) return i;
  }
  return -1;
}

/** The problems of one comment, each with the 1-based line inside the file. */
function checkComment(comment: Comment): { line: number; problem: string }[] {
  const problems: { line: number; problem: string }[] = [];
  comment.text.split('\n').forEach((raw, offset) => {
    const line = comment.line + offset;
    // A line of a block comment may start with `*`; a `///` comment has a third slash.
    const text = raw.replace(/^[\s/*]*/, '').replace(/\s+$/, '');
    for (const [token, instead] of FORBIDDEN) {
      if (new RegExp(`(?:^|[^\\w-])${token}(?!\\w)`).test(raw)) {
        problems.push({ line, problem: `${token} is not allowed: ${instead}` });
      }
    }
    if (text.startsWith(EXPECT_ERROR)) {
      const reason = text.slice(EXPECT_ERROR.length).replace(/^[\s:\-–—]+/, '');
      if (!/[\p{L}\p{N}]/u.test(reason)) {
        problems.push({ line, problem: `${EXPECT_ERROR} needs a reason after it` });
      }
    }
    const biome = new RegExp(`^${BIOME}(?:-all|-start|-end)?(?=\\s|:|$)`).exec(text);
    if (biome) {
      const rest = text.slice(biome[0].length);
      const colon = colonOutsideParentheses(rest);
      const category = (colon === -1 ? rest : rest.slice(0, colon)).trim();
      const reason = colon === -1 ? '' : rest.slice(colon + 1).trim();
      if (category === '') {
        problems.push({ line, problem: `${biome[0]} needs a category, e.g. lint/group/rule` });
      }
      if (!/[\p{L}\p{N}]/u.test(reason) || reason === '<explanation>') {
        problems.push({ line, problem: `${biome[0]} needs a reason after the colon` });
      }
    }
  });
  return problems;
}

function gitFiles(): string[] | null {
  try {
    const output = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
      cwd: ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      maxBuffer: 64 * 1024 * 1024,
    });
    return output.split('\0').filter((file) => file !== '');
  } catch {
    return null;
  }
}

function walk(directory: string, into: string[]): string[] {
  for (const entry of readdirSync(directory, { withFileTypes: true })) {
    const path = join(directory, entry.name);
    if (entry.isDirectory()) {
      if (!SKIPPED_NAMES.has(entry.name) && !SKIPPED_PATHS.has(relative(ROOT, path))) walk(path, into);
    } else if (entry.isFile()) {
      into.push(relative(ROOT, path));
    }
  }
  return into;
}

function main(): void {
  const args = process.argv.slice(2);
  const candidates =
    args.length > 0
      ? args.map((file) => relative(ROOT, resolve(process.cwd(), file)))
      : (gitFiles() ?? walk(ROOT, []));
  // Files deleted from the working tree but still in git's index are skipped.
  const files = [...new Set(candidates)]
    .filter((file) => EXTENSIONS.test(file) && existsSync(join(ROOT, file)))
    .sort();
  const offences: string[] = [];
  for (const file of files) {
    const source = readFileSync(join(ROOT, file), 'utf8');
    for (const comment of extractComments(source)) {
      for (const { line, problem } of checkComment(comment)) offences.push(`${file}:${line}: ${problem}`);
    }
  }
  if (offences.length > 0) {
    for (const offence of offences) process.stderr.write(`${offence}\n`);
    process.stderr.write(`check-suppressions: ${offences.length} problem(s) in ${files.length} files\n`);
    process.exit(1);
  }
  process.stdout.write(`check-suppressions: OK (${files.length} files, every suppression has a reason)\n`);
}

main();
