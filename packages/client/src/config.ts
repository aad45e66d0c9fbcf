/**
 * The client's options, checked once at construction: every problem is collected into one
 * `ClientConfigError` (AUDIT C-4), unknown option names included (a misspelt `timeout` must not
 * silently become the default).
 *
 * TLS (AUDIT C-1): there is no option to turn certificate verification off, and none is read from
 * the environment. A private CA is trusted the Node.js way (`NODE_EXTRA_CA_CERTS`) or through an
 * injected `fetch`.
 *
 * Transport: by default the client sends with undici's `fetch` through an undici `Agent` of its own,
 * whose connect timeout is `connectTimeoutMs` (the global `fetch` has no such option). An injected
 * `fetch` brings its own connection handling, so `connectTimeoutMs` is refused alongside it.
 */
import { ClientConfigError } from './errors.ts';

export type ClientAuth = { bearerToken: string } | { apiKey: string; header?: string };

export interface RetryOptions {
  /** Requests per call, the first included; 1 turns retries off. @default 3 */
  maxAttempts?: number;
  /** The first retry waits up to this long (full jitter), doubling each time. @default 200 */
  baseDelayMs?: number;
  /** No wait is longer, a server's `Retry-After` included. @default 5000 */
  maxDelayMs?: number;
}

/** What `onRetry` is told before the client waits and tries again. */
export interface RetryEvent {
  method: string;
  path: string;
  /** The attempt that failed (1 for the first request). */
  attempt: number;
  /** How long the client waits before the next attempt. */
  delayMs: number;
  /** `status 503`, `network error`, `timeout`, `connect timeout`. */
  reason: string;
}

export interface TaskerClientOptions {
  /** The server, e.g. `http://localhost:8080`; a path prefix is kept. */
  baseUrl: string;
  /**
   * Bound on each request (each attempt), from sending it to reading the whole body; it covers
   * connecting too, so the connection has the lower of the two bounds. @default 30000
   */
  timeoutMs?: number;
  /**
   * Bound on establishing a connection (TCP, and the TLS handshake for `https:`); when it passes,
   * the attempt fails with `TaskerTimeoutError` (code `CONNECT_TIMEOUT`), retried like any timeout.
   * undici checks it on a coarse clock (ticks of about half a second), so it can pass up to about a
   * second late. Not allowed with an injected `fetch`, whose connections the client does not make.
   * @default 10000
   */
  connectTimeoutMs?: number;
  retries?: RetryOptions;
  /** A bearer token (`Authorization: Bearer …`) or an API key (header `X-API-Key` unless named). */
  auth?: ClientAuth;
  /** @default `tasker-client-ts/0.1.0` */
  userAgent?: string;
  /**
   * The `fetch` to use (tests, proxies, a private CA); it then owns the connections, and
   * `connectTimeoutMs` does not apply. @default undici's `fetch` with the client's own `Agent`
   */
  fetch?: typeof fetch;
  /** Where warnings go (credentials over plain HTTP). @default process.emitWarning */
  onWarning?: (message: string) => void;
  /** Told of each retry before its wait (logging, tests). */
  onRetry?: (event: RetryEvent) => void;
}

/**
 * How requests are sent: undici's `fetch` through an `Agent` the client makes (and closes), or a
 * `fetch` given in the options.
 */
type Transport = { kind: 'undici'; connectTimeoutMs: number } | { kind: 'fetch'; fetch: typeof fetch };

export interface ResolvedConfig {
  baseUrl: URL;
  timeoutMs: number;
  transport: Transport;
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** The auth header as [name, value], if any. */
  authHeader: [string, string] | null;
  userAgent: string;
  onWarning: (message: string) => void;
  onRetry: ((event: RetryEvent) => void) | null;
}

export const CLIENT_DEFAULTS = {
  timeoutMs: 30_000,
  connectTimeoutMs: 10_000,
  maxAttempts: 3,
  baseDelayMs: 200,
  maxDelayMs: 5_000,
  apiKeyHeader: 'X-API-Key',
  userAgent: 'tasker-client-ts/0.1.0',
} as const;

const KNOWN_OPTIONS = new Set([
  'baseUrl',
  'timeoutMs',
  'connectTimeoutMs',
  'retries',
  'auth',
  'userAgent',
  'fetch',
  'onWarning',
  'onRetry',
]);
const KNOWN_RETRY_OPTIONS = new Set(['maxAttempts', 'baseDelayMs', 'maxDelayMs']);
/** The largest delay `setTimeout` honours. */
const MAX_TIMER_MS = 2_147_483_647;
/** RFC 9110 token: a header name. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Printable ASCII and tabs: no CR/LF (header injection), nothing a header cannot carry. */
const HEADER_VALUE = /^[\t\x20-\x7e]+$/;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || value == null) return String(value);
  return typeof value;
}

/** True for `localhost`, `*.localhost`, 127.0.0.0/8 and ::1. */
function isLoopbackHost(hostname: string): boolean {
  const host = hostname.toLowerCase().replace(/^\[|\]$/g, '');
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (host === '::1' || host === '0:0:0:0:0:0:0:1') return true;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) || /^::ffff:127\./.test(host);
}

function defaultWarning(message: string): void {
  process.emitWarning(message, { code: 'TASKER_INSECURE_CREDENTIALS' });
}

/** Checks the options and fills in the defaults; throws `ClientConfigError` listing every problem. */
export function resolveConfig(options: unknown): ResolvedConfig {
  const problems: string[] = [];
  if (!isRecord(options)) throw new ClientConfigError(['options must be an object']);
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.has(key)) problems.push(`${key} is not a known option`);
  }

  let baseUrl: URL | null = null;
  if (typeof options.baseUrl !== 'string' || options.baseUrl === '') {
    problems.push(`baseUrl must be an http: or https: URL, got ${describe(options.baseUrl)}`);
  } else if (!URL.canParse(options.baseUrl)) {
    problems.push(`baseUrl is not a valid URL: ${describe(options.baseUrl)}`);
  } else {
    const url = new URL(options.baseUrl);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      problems.push(`baseUrl must use http: or https:, got ${url.protocol}`);
    } else if (url.username !== '' || url.password !== '') {
      problems.push('baseUrl must not contain credentials; use the auth option');
    } else if (url.search !== '' || url.hash !== '') {
      problems.push('baseUrl must not have a query or a fragment');
    } else {
      if (!url.pathname.endsWith('/')) url.pathname = `${url.pathname}/`;
      baseUrl = url;
    }
  }

  const integer = (name: string, value: unknown, fallback: number, min: number): number => {
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > MAX_TIMER_MS) {
      problems.push(`${name} must be an integer from ${min} to ${MAX_TIMER_MS}, got ${describe(value)}`);
      return fallback;
    }
    return value;
  };
  const timeoutMs = integer('timeoutMs', options.timeoutMs, CLIENT_DEFAULTS.timeoutMs, 1);
  const connectTimeoutMs = integer(
    'connectTimeoutMs',
    options.connectTimeoutMs,
    CLIENT_DEFAULTS.connectTimeoutMs,
    1,
  );

  let maxAttempts: number = CLIENT_DEFAULTS.maxAttempts;
  let baseDelayMs: number = CLIENT_DEFAULTS.baseDelayMs;
  let maxDelayMs: number = CLIENT_DEFAULTS.maxDelayMs;
  if (options.retries !== undefined) {
    if (!isRecord(options.retries)) {
      problems.push(`retries must be an object, got ${describe(options.retries)}`);
    } else {
      const retries = options.retries;
      for (const key of Object.keys(retries)) {
        if (!KNOWN_RETRY_OPTIONS.has(key)) problems.push(`retries.${key} is not a known option`);
      }
      maxAttempts = integer('retries.maxAttempts', retries.maxAttempts, maxAttempts, 1);
      if (maxAttempts > 20) {
        problems.push(`retries.maxAttempts must be at most 20, got ${maxAttempts}`);
      }
      baseDelayMs = integer('retries.baseDelayMs', retries.baseDelayMs, baseDelayMs, 0);
      maxDelayMs = integer('retries.maxDelayMs', retries.maxDelayMs, Math.max(maxDelayMs, baseDelayMs), 0);
      if (maxDelayMs < baseDelayMs) {
        problems.push(
          `retries.maxDelayMs (${maxDelayMs}) must not be below retries.baseDelayMs (${baseDelayMs})`,
        );
      }
    }
  }

  let authHeader: [string, string] | null = null;
  if (options.auth !== undefined) {
    const auth = options.auth;
    if (!isRecord(auth)) {
      problems.push(`auth must be { bearerToken } or { apiKey, header? }, got ${describe(auth)}`);
    } else if ('bearerToken' in auth === 'apiKey' in auth) {
      problems.push('auth must have exactly one of bearerToken and apiKey');
    } else if ('bearerToken' in auth) {
      for (const key of Object.keys(auth)) {
        if (key !== 'bearerToken') problems.push(`auth.${key} is not a known option with bearerToken`);
      }
      if (typeof auth.bearerToken !== 'string' || !HEADER_VALUE.test(auth.bearerToken)) {
        problems.push('auth.bearerToken must be a non-empty string of printable characters');
      } else {
        authHeader = ['authorization', `Bearer ${auth.bearerToken}`];
      }
    } else {
      for (const key of Object.keys(auth)) {
        if (key !== 'apiKey' && key !== 'header')
          problems.push(`auth.${key} is not a known option with apiKey`);
      }
      const header = auth.header ?? CLIENT_DEFAULTS.apiKeyHeader;
      const reserved = ['host', 'content-type', 'content-length', 'accept', 'user-agent', 'x-request-id'];
      if (
        typeof header !== 'string' ||
        !HEADER_NAME.test(header) ||
        reserved.includes(header.toLowerCase())
      ) {
        problems.push(`auth.header must be a header name such as X-API-Key, got ${describe(header)}`);
      }
      if (typeof auth.apiKey !== 'string' || !HEADER_VALUE.test(auth.apiKey)) {
        problems.push('auth.apiKey must be a non-empty string of printable characters');
      } else if (typeof header === 'string') {
        authHeader = [header.toLowerCase(), auth.apiKey];
      }
    }
  }

  let userAgent: string = CLIENT_DEFAULTS.userAgent;
  if (options.userAgent !== undefined) {
    if (typeof options.userAgent !== 'string' || !HEADER_VALUE.test(options.userAgent)) {
      problems.push(
        `userAgent must be a non-empty string of printable characters, got ${describe(options.userAgent)}`,
      );
    } else {
      userAgent = options.userAgent;
    }
  }

  const fn = <T>(name: string, value: unknown, fallback: T): T => {
    if (value === undefined) return fallback;
    if (typeof value !== 'function') {
      problems.push(`${name} must be a function, got ${describe(value)}`);
      return fallback;
    }
    return value as T;
  };
  const fetchFn = fn<typeof fetch | null>('fetch', options.fetch, null);
  if (options.fetch !== undefined && options.connectTimeoutMs !== undefined) {
    problems.push('connectTimeoutMs cannot be used with an injected fetch; set its connect timeout there');
  }
  const onWarning = fn<(message: string) => void>('onWarning', options.onWarning, defaultWarning);
  const onRetry = fn<((event: RetryEvent) => void) | null>('onRetry', options.onRetry, null);

  if (problems.length > 0 || baseUrl === null) {
    throw new ClientConfigError(problems);
  }

  // AUDIT C-2: credentials in clear text to another machine are allowed (a trusted network may
  // need it) but never silently.
  if (authHeader !== null && baseUrl.protocol === 'http:' && !isLoopbackHost(baseUrl.hostname)) {
    onWarning(
      `Tasker client: credentials will be sent over plain HTTP to ${baseUrl.host}; ` +
        'anyone on the network path can read them. Use an https: baseUrl.',
    );
  }

  return {
    baseUrl,
    timeoutMs,
    transport: fetchFn === null ? { kind: 'undici', connectTimeoutMs } : { kind: 'fetch', fetch: fetchFn },
    maxAttempts,
    baseDelayMs,
    maxDelayMs,
    authHeader,
    userAgent,
    onWarning,
    onRetry,
  };
}
