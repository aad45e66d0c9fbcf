/**
 * `${VAR}` substitution in configuration values (AUDIT S-7, reference B §6.1). Only the variables of
 * the allowlist are read, each must match its own pattern, and a value is substituted into one parsed
 * string (never into TOML text, so no value can inject keys). `${VAR:-default}` gives a default used
 * when the variable is unset or empty; a placeholder without a default whose variable is unset is an
 * error. Messages name the variable and what it should look like, never its value (it may be secret).
 */

/** The process environment, or a stand-in in tests. */
export type EnvSource = Readonly<Record<string, string | undefined>>;

interface AllowedVariable {
  pattern: RegExp;
  /** What a good value looks like, for the message. */
  expect: string;
}

const PATH = /^\P{Cc}{1,4096}$/u;

const ENV_ALLOWLIST: Readonly<Record<string, AllowedVariable>> = {
  DATABASE_URL: { pattern: /^postgres(ql)?:\/\/\S+$/, expect: 'a postgresql:// URL' },
  TASKER_PORT: { pattern: /^\d{1,5}$/, expect: 'a port number (digits only)' },
  TASKER_HOST: { pattern: /^[A-Za-z0-9.:[\]-]{1,253}$/, expect: 'a host name or IP address' },
  TASKER_DATA_DIR: { pattern: PATH, expect: 'a directory path' },
  TASKER_TEMPLATE_PATH: { pattern: PATH, expect: 'a directory path' },
  TASKER_LOG_LEVEL: {
    pattern: /^(debug|info|warn|error)$/,
    expect: 'one of debug, info, warn, error',
  },
  TASKER_WORKER_ID: {
    pattern: /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i,
    expect: 'a uuid',
  },
};

const PLACEHOLDER = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}$]*))?\}/g;

type Substitution = { ok: true; value: string } | { ok: false; problems: string[] };

/** Resolves every `${VAR}` / `${VAR:-default}` of `text`; a `$` that starts no placeholder is refused. */
export function substitute(text: string, env: EnvSource): Substitution {
  const problems: string[] = [];
  const value = text.replace(PLACEHOLDER, (_match, name: string, fallback: string | undefined) => {
    const allowed = Object.hasOwn(ENV_ALLOWLIST, name) ? ENV_ALLOWLIST[name] : undefined;
    if (allowed === undefined) {
      problems.push(
        `\${${name}} is not an allowed variable (allowed: ${Object.keys(ENV_ALLOWLIST).join(', ')})`,
      );
      return '';
    }
    const set = env[name];
    if (set === undefined || set === '') {
      if (fallback === undefined) problems.push(`\${${name}} is not set and the placeholder has no default`);
      return fallback ?? '';
    }
    if (!allowed.pattern.test(set)) {
      problems.push(`the environment variable ${name} must be ${allowed.expect}`);
      return '';
    }
    return set;
  });
  if (problems.length === 0 && text.replace(PLACEHOLDER, '').includes('$')) {
    problems.push(`has a "$" that starts no \${VAR} or \${VAR:-default} placeholder`);
  }
  return problems.length === 0 ? { ok: true, value } : { ok: false, problems };
}
