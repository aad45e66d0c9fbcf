/**
 * Redaction of configuration shown by `GET /config`: a value under a key that names a secret
 * (password, secret, token, key, credential) is replaced whole; a URL anywhere keeps its shape
 * but loses the password of its user info and secret query parameters. Numbers and booleans
 * under such keys (`jwt_token_expiry_hours`, `api_key_count`) are not secrets and stay.
 */

export const REDACTED = '[REDACTED]';

const SECRET_KEY = /pass(word|wd)?|secret|token|key|credential|private|auth_?header|cookie/i;
/** `scheme://user:password@` → `scheme://user:[REDACTED]@`. */
const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^:/?#@\s]*):([^@/?#\s]*)@/gi;
/** `?password=…`, `&sslpassword=…`, `&token=…` */
const URL_SECRET_PARAM = /([?&][a-z_]*(?:password|secret|token|key)[a-z_]*=)[^&#\s]*/gi;

function redactString(value: string): string {
  return value.replace(URL_PASSWORD, `$1:${REDACTED}@`).replace(URL_SECRET_PARAM, `$1${REDACTED}`);
}

/** A deep copy of `value` with its secrets replaced. */
export function redactConfig(value: unknown, depth = 0): unknown {
  if (depth > 32) return REDACTED;
  if (typeof value === 'string') return redactString(value);
  if (Array.isArray(value)) return value.map((item) => redactConfig(item, depth + 1));
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      const secret =
        SECRET_KEY.test(key) && typeof item !== 'number' && typeof item !== 'boolean' && item !== null;
      out[key] = secret ? REDACTED : redactConfig(item, depth + 1);
    }
    return out;
  }
  if (typeof value === 'function' || typeof value === 'symbol') return undefined;
  return value;
}
