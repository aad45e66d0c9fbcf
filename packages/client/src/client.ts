/**
 * `TaskerClient`: a typed client of the REST API (reference B §2, D §2.4) over undici's `fetch` (or an
 * injected one).
 *
 * Each request is bounded by `timeoutMs` (an AbortSignal covering the request and the whole body).
 * Connecting is bounded by `connectTimeoutMs` too: the global `fetch` has no connect timeout, so the
 * client sends with undici's `fetch` through an undici `Agent` of its own (`connect.timeout`; TLS
 * verification as Node's defaults, never off: AUDIT C-1), made once and ended by `close()`. A
 * connect timeout is a `TaskerTimeoutError` with code `CONNECT_TIMEOUT`, retried like a timeout.
 * Retries (AUDIT C-3), with exponential backoff and full jitter, a server's `Retry-After` (capped at
 * `maxDelayMs`) replacing the computed wait:
 * - only calls that are safe to repeat: every GET, and `createTask` when the request carries an
 *   idempotency key (the server maps the key to the task's identity, so a repeat cannot create a
 *   second task: it gets 409 CONFLICT instead);
 * - only on a network error, a timeout, or 408, 429, 502, 503, 504; never on another status;
 * - `ready()` is a probe and is never retried: its 503 is an answer.
 */
import { Agent, fetch as undiciFetch } from 'undici';
import { type ResolvedConfig, type RetryEvent, resolveConfig, type TaskerClientOptions } from './config.ts';
import {
  TaskerApiError,
  TaskerClientError,
  TaskerNetworkError,
  TaskerStreamError,
  TaskerTimeoutError,
} from './errors.ts';
import { parseEventStream, type TaskEvent, TERMINAL_TASK_STATES } from './events.ts';
import type {
  BasicHealth,
  DetailedHealthResponse,
  ReadinessResponse,
  StepAuditResponse,
  StepResponse,
  TaskListQuery,
  TaskListResponse,
  TaskRequest,
  TaskResponse,
  TaskSummaryResponse,
  TemplateDetail,
  TemplateListResponse,
} from './types.ts';

/** Statuses that say "try again": the request was not (or need not have been) acted on. */
const RETRY_STATUSES: ReadonlySet<number> = new Set([408, 429, 502, 503, 504]);

export interface WatchOptions {
  /** Stops watching: the iterator then throws the signal's reason. */
  signal?: AbortSignal;
}

export interface WaitOptions {
  /** Gives up after this long with `TaskerTimeoutError` (after one last read of the task). */
  timeoutMs: number;
  signal?: AbortSignal;
}

export interface CreateTaskOptions {
  /**
   * Makes the creation idempotent and therefore retried: sent as the request's `idempotency_key`
   * (1–255 characters). A repeat with the same key (and template) is 409 CONFLICT.
   */
  idempotencyKey?: string;
}

interface Call {
  method: 'GET' | 'POST';
  /** Relative to the base URL, without a leading slash. */
  path: string;
  query?: Record<string, string | number | undefined>;
  body?: unknown;
  retry: boolean;
}

interface Answer {
  status: number;
  statusText: string;
  headers: HeaderReader;
  text: string;
  attempts: number;
}

type Attempt =
  | { kind: 'answer'; status: number; statusText: string; headers: HeaderReader; text: string }
  | { kind: 'network' | 'timeout' | 'connect-timeout'; cause: unknown };

/** The part of a `Headers` the client reads. */
interface HeaderReader {
  get(name: string): string | null;
}

/** The part of a `Response` the client reads. */
interface SendResponse {
  status: number;
  statusText: string;
  headers: HeaderReader;
  body: AsyncIterable<Uint8Array> | null;
  text(): Promise<string>;
}

/**
 * What the client sends with: the injected `fetch`, or undici's through the client's `Agent`. Typed
 * by what the client passes and reads, because undici's own `fetch` types are not the global ones.
 */
type Send = (
  url: URL,
  init: {
    method?: string;
    headers: Record<string, string>;
    body?: string;
    signal: AbortSignal;
    redirect: 'manual';
  },
) => Promise<SendResponse>;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** One path segment; `.` and `..` would be resolved away by URL parsing, so they are refused. */
function segment(name: string, value: unknown): string {
  if (typeof value !== 'string' || value === '' || value === '.' || value === '..') {
    throw new TypeError(`${name} must be a non-empty string, got ${JSON.stringify(value)}`);
  }
  return encodeURIComponent(value);
}

function parseJson(text: string): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false };
  }
}

/** `Retry-After` as seconds (delta-seconds or an HTTP date), or null. */
function retryAfterSeconds(headers: HeaderReader, body: unknown): number | null {
  const header = headers.get('retry-after')?.trim();
  if (header !== undefined && header !== '') {
    if (/^\d+$/.test(header)) return Number(header);
    const date = Date.parse(header);
    if (!Number.isNaN(date)) return Math.max(0, Math.ceil((date - Date.now()) / 1000));
  }
  const inBody = isRecord(body) && isRecord(body.error) ? body.error.retry_after_seconds : undefined;
  return typeof inBody === 'number' && Number.isFinite(inBody) && inBody >= 0 ? inBody : null;
}

/** True when undici gave up connecting (`UND_ERR_CONNECT_TIMEOUT`, fetch's `cause`, at any depth). */
function isConnectTimeout(error: unknown): boolean {
  let current = error;
  for (let depth = 0; depth < 5 && isRecord(current); depth++) {
    if (current.code === 'UND_ERR_CONNECT_TIMEOUT') return true;
    current = current.cause;
  }
  return false;
}

function describeCause(cause: unknown): string {
  if (!(cause instanceof Error)) return String(cause);
  const inner = cause.cause;
  const code = isRecord(inner) && typeof inner.code === 'string' ? inner.code : null;
  const innerMessage = inner instanceof Error ? inner.message : null;
  return [cause.message, code ?? innerMessage].filter((part) => part !== null && part !== '').join(': ');
}

export class TaskerClient {
  readonly #config: ResolvedConfig;
  /** The client's own connection pool; null with an injected `fetch`. */
  readonly #agent: Agent | null;
  readonly #fetch: Send;
  /** Set by the first `close()`; later ones wait for the same. */
  #closing: Promise<void> | null = null;

  /** @throws ClientConfigError listing every problem of `options`. */
  constructor(options: TaskerClientOptions) {
    this.#config = resolveConfig(options);
    const { transport } = this.#config;
    if (transport.kind === 'fetch') {
      this.#agent = null;
      this.#fetch = transport.fetch;
    } else {
      const agent = new Agent({ connect: { timeout: transport.connectTimeoutMs } });
      this.#agent = agent;
      this.#fetch = (url, init) => undiciFetch(url, { ...init, dispatcher: agent });
    }
  }

  /**
   * Closes the client's connections (its undici `Agent`) once the requests in flight have finished,
   * an open `watchTask` stream included (stop it first). Later calls reject with
   * `TaskerClientError` (with an injected `fetch` too, though the client has nothing to close then).
   * Closing again returns the first close's promise.
   */
  close(): Promise<void> {
    this.#closing ??= this.#agent === null ? Promise.resolve() : this.#agent.close();
    return this.#closing;
  }

  /** `await using client = new TaskerClient(…)` closes it at the end of the scope. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** The base URL requests are resolved against (always ending with `/`). */
  get baseUrl(): string {
    return this.#config.baseUrl.href;
  }

  // --- tasks ---------------------------------------------------------------------------------------

  /**
   * `POST /v1/tasks`: creates a task and starts it. Retried (see the module comment) only when an
   * idempotency key is given, in `options` or as the request's `idempotency_key`.
   */
  async createTask(request: TaskRequest, options: CreateTaskOptions = {}): Promise<TaskResponse> {
    const { idempotencyKey } = options;
    if (idempotencyKey !== undefined) {
      if (typeof idempotencyKey !== 'string' || idempotencyKey.length < 1 || idempotencyKey.length > 255) {
        throw new TypeError('idempotencyKey must be a string of 1 to 255 characters');
      }
      const inRequest = request.idempotency_key;
      if (inRequest !== undefined && inRequest !== null && inRequest !== idempotencyKey) {
        throw new TypeError('idempotencyKey differs from the request’s idempotency_key');
      }
    }
    const key = idempotencyKey ?? request.idempotency_key ?? null;
    const body = key === null ? request : { ...request, idempotency_key: key };
    return this.#object<TaskResponse>({ method: 'POST', path: 'v1/tasks', body, retry: key !== null });
  }

  /** `GET /v1/tasks/{uuid}`: a task with its steps' readiness. */
  getTask(taskUuid: string): Promise<TaskResponse> {
    return this.#object({ method: 'GET', path: `v1/tasks/${segment('taskUuid', taskUuid)}`, retry: true });
  }

  /** `GET /v1/tasks`: newest first, filtered, one page (`per_page` 1–100, default 25). */
  listTasks(query: TaskListQuery = {}): Promise<TaskListResponse> {
    const { page, per_page, namespace, status, initiator, source_system } = query;
    return this.#object({
      method: 'GET',
      path: 'v1/tasks',
      query: { page, per_page, namespace, status, initiator, source_system },
      retry: true,
    });
  }

  /** `GET /v1/tasks/{uuid}/summary`: everything a visualization needs. */
  getTaskSummary(taskUuid: string): Promise<TaskSummaryResponse> {
    return this.#object({
      method: 'GET',
      path: `v1/tasks/${segment('taskUuid', taskUuid)}/summary`,
      retry: true,
    });
  }

  /**
   * `GET /v1/tasks/{uuid}/events`: the task's and its steps' state changes as they happen. Yields a
   * `snapshot` (the current states) first, then a `transition` per change, in order; completes
   * after the task reached a terminal state (at once after the snapshot if it already had).
   * `timeoutMs` bounds the request (until the response starts), not the watch, and
   * `connectTimeoutMs` the connection within it; leaving the loop early or aborting `signal`
   * closes the stream. Not retried.
   *
   * @throws TaskerApiError for an error status (404 for an unknown task); TaskerStreamError when
   *   the server ends the stream early (`event: error`) or it stops before the task finished;
   *   TaskerNetworkError, TaskerTimeoutError (code `CONNECT_TIMEOUT` when no connection was made)
   *   when there is no (timely) answer; the signal's reason when aborted.
   */
  async *watchTask(taskUuid: string, options: WatchOptions = {}): AsyncGenerator<TaskEvent, void, undefined> {
    this.#throwIfClosed();
    const config = this.#config;
    const url = new URL(`v1/tasks/${segment('taskUuid', taskUuid)}/events`, config.baseUrl);
    const headers: Record<string, string> = {
      accept: 'text/event-stream',
      'cache-control': 'no-cache',
      'user-agent': config.userAgent,
    };
    if (config.authHeader !== null) headers[config.authHeader[0]] = config.authHeader[1];
    const { signal } = options;
    signal?.throwIfAborted();
    const controller = new AbortController();
    const onAbort = () => controller.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort(new Error(`timed out after ${config.timeoutMs} ms`));
    }, config.timeoutMs);
    const what = `GET ${url.pathname}`;
    try {
      let response: SendResponse;
      try {
        response = await this.#fetch(url, { headers, signal: controller.signal, redirect: 'manual' });
      } catch (error) {
        if (signal?.aborted) throw signal.reason;
        if (timedOut) {
          throw new TaskerTimeoutError(
            `${what} got no answer within ${config.timeoutMs} ms`,
            config.timeoutMs,
            1,
            {
              cause: error,
            },
          );
        }
        if (config.transport.kind === 'undici' && isConnectTimeout(error)) {
          throw this.#connectTimeout(what, url, config.transport.connectTimeoutMs, 1, error);
        }
        throw new TaskerNetworkError(`${what} failed: ${describeCause(error)}`, 1, { cause: error });
      } finally {
        clearTimeout(timer);
      }
      const contentType = response.headers.get('content-type') ?? '';
      if (response.status !== 200 || !/^text\/event-stream/i.test(contentType) || response.body === null) {
        const text = await response.text().catch(() => '');
        const answer = {
          status: response.status,
          statusText: response.statusText,
          headers: response.headers,
          text,
          attempts: 1,
        };
        if (response.status < 200 || response.status > 299) this.#decode(answer, 'object');
        throw new TaskerApiError({
          status: response.status,
          code: 'INVALID_RESPONSE',
          message: `Expected an event stream, got ${contentType === '' ? 'no content type' : contentType}`,
          requestId: response.headers.get('x-request-id'),
          retryAfterSeconds: null,
          attempts: 1,
        });
      }
      let finished = false;
      try {
        for await (const message of parseEventStream(response.body)) {
          if (message.event === 'error') {
            let code = 'STREAM_ERROR';
            let text = 'The server ended the event stream';
            const parsed = parseJson(message.data);
            if (parsed.ok && isRecord(parsed.value)) {
              if (typeof parsed.value.code === 'string') code = parsed.value.code;
              if (typeof parsed.value.message === 'string') text = parsed.value.message;
            }
            throw new TaskerStreamError(code, text);
          }
          if (message.event !== 'snapshot' && message.event !== 'transition') continue;
          const parsed = parseJson(message.data);
          if (!parsed.ok || !isRecord(parsed.value)) continue;
          const event = { ...parsed.value, type: message.event } as unknown as TaskEvent;
          if (event.type === 'snapshot') finished = TERMINAL_TASK_STATES.has(event.state);
          else if (event.step_uuid === null) finished = TERMINAL_TASK_STATES.has(event.to_state);
          yield event;
        }
      } catch (error) {
        if (signal?.aborted) throw signal.reason;
        if (error instanceof TaskerStreamError) throw error;
        throw new TaskerNetworkError(`${what}: the event stream broke: ${describeCause(error)}`, 1, {
          cause: error,
        });
      }
      if (!finished)
        throw new TaskerStreamError('STREAM_ENDED', 'The event stream ended before the task finished');
    } finally {
      signal?.removeEventListener('abort', onAbort);
      // a consumer that stops early closes the connection
      controller.abort();
    }
  }

  /**
   * Waits for the task to reach a terminal state and returns it (`GET /v1/tasks/{uuid}` once the
   * event stream says so). A stream that breaks is opened again (with backoff) until `timeoutMs`;
   * at the deadline the task is read one last time and, unless it finished, `TaskerTimeoutError` is
   * thrown. An error status (404 for an unknown task) is thrown as `TaskerApiError` at once.
   */
  async waitForCompletion(taskUuid: string, options: WaitOptions): Promise<TaskResponse> {
    const { timeoutMs, signal } = options;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0)
      throw new TypeError('timeoutMs must be a positive number');
    signal?.throwIfAborted();
    const deadline = Date.now() + timeoutMs;
    const controller = new AbortController();
    const onAbort = () => controller.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    const timeout = new Error('deadline');
    const timer = setTimeout(() => controller.abort(timeout), timeoutMs);
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          for await (const _ of this.watchTask(taskUuid, { signal: controller.signal })) {
            // the iterator completes once the task is terminal
          }
          return await this.getTask(taskUuid);
        } catch (error) {
          if (signal?.aborted) throw signal.reason;
          if (error instanceof TaskerApiError) throw error;
          if (!controller.signal.aborted && Date.now() < deadline) {
            // the stream broke: the task may have finished meanwhile, else watch again
            const task = await this.getTask(taskUuid);
            if (TERMINAL_TASK_STATES.has(task.status)) return task;
            const wait = Math.min(deadline - Date.now(), this.#delay(attempt, null));
            await new Promise((resolve) => setTimeout(resolve, wait));
            continue;
          }
        }
        const task = await this.getTask(taskUuid);
        if (TERMINAL_TASK_STATES.has(task.status)) return task;
        throw new TaskerTimeoutError(
          `task ${taskUuid} did not finish within ${timeoutMs} ms (status ${task.status})`,
          timeoutMs,
          attempt,
        );
      }
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
  }

  // --- steps ---------------------------------------------------------------------------------------

  /** `GET /v1/tasks/{uuid}/workflow_steps`: the task's steps in creation order. */
  listSteps(taskUuid: string): Promise<StepResponse[]> {
    return this.#array({
      method: 'GET',
      path: `v1/tasks/${segment('taskUuid', taskUuid)}/workflow_steps`,
      retry: true,
    });
  }

  /** `GET /v1/tasks/{uuid}/workflow_steps/{step_uuid}`. */
  getStep(taskUuid: string, stepUuid: string): Promise<StepResponse> {
    return this.#object({
      method: 'GET',
      path: `v1/tasks/${segment('taskUuid', taskUuid)}/workflow_steps/${segment('stepUuid', stepUuid)}`,
      retry: true,
    });
  }

  /** `GET /v1/tasks/{uuid}/workflow_steps/{step_uuid}/audit`: the step's result audit, newest first. */
  getStepAudit(taskUuid: string, stepUuid: string): Promise<StepAuditResponse[]> {
    return this.#array({
      method: 'GET',
      path: `v1/tasks/${segment('taskUuid', taskUuid)}/workflow_steps/${segment('stepUuid', stepUuid)}/audit`,
      retry: true,
    });
  }

  // --- templates -----------------------------------------------------------------------------------

  /** `GET /v1/templates[?namespace]`: registered templates and their namespaces. */
  listTemplates(namespace?: string): Promise<TemplateListResponse> {
    if (namespace !== undefined) segment('namespace', namespace);
    return this.#object({ method: 'GET', path: 'v1/templates', query: { namespace }, retry: true });
  }

  /** `GET /v1/templates/{namespace}/{name}/{version}`: one template's steps. */
  getTemplate(namespace: string, name: string, version: string): Promise<TemplateDetail> {
    const path = [
      'v1/templates',
      segment('namespace', namespace),
      segment('name', name),
      segment('version', version),
    ];
    return this.#object({ method: 'GET', path: path.join('/'), retry: true });
  }

  // --- health --------------------------------------------------------------------------------------

  /** `GET /health`: the server answers. */
  health(): Promise<BasicHealth> {
    return this.#object({ method: 'GET', path: 'health', retry: true });
  }

  /** `GET /health/live`: liveness. */
  live(): Promise<BasicHealth> {
    return this.#object({ method: 'GET', path: 'health/live', retry: true });
  }

  /**
   * `GET /health/ready`: resolves with the readiness body whether the server is ready (200) or not
   * (503 with the same body); anything else is an error. Not retried.
   */
  async ready(): Promise<ReadinessResponse> {
    const answer = await this.#send({ method: 'GET', path: 'health/ready', retry: false });
    if (answer.status === 503) {
      const parsed = parseJson(answer.text);
      if (parsed.ok && isRecord(parsed.value) && parsed.value.status === 'not_ready') {
        return parsed.value as unknown as ReadinessResponse;
      }
    }
    return this.#decode<ReadinessResponse>(answer, 'object');
  }

  /** `GET /health/detailed`: every check and the engine's loops (always 200). */
  detailedHealth(): Promise<DetailedHealthResponse> {
    return this.#object({ method: 'GET', path: 'health/detailed', retry: true });
  }

  // --- transport -----------------------------------------------------------------------------------

  async #object<T>(call: Call): Promise<T> {
    return this.#decode<T>(await this.#send(call), 'object');
  }

  async #array<T>(call: Call): Promise<T[]> {
    return this.#decode<T[]>(await this.#send(call), 'array');
  }

  /** A 2xx body of the expected kind, typed; anything else becomes a `TaskerApiError`. */
  #decode<T>(answer: Answer, expected: 'object' | 'array'): T {
    const parsed = parseJson(answer.text);
    const base = {
      status: answer.status,
      requestId: answer.headers.get('x-request-id'),
      attempts: answer.attempts,
    };
    if (answer.status < 200 || answer.status > 299) {
      const body = parsed.ok ? parsed.value : undefined;
      const envelope = isRecord(body) && isRecord(body.error) ? body.error : {};
      const code =
        typeof envelope.code === 'string' && envelope.code !== '' ? envelope.code : `HTTP_${answer.status}`;
      let message =
        typeof envelope.message === 'string' && envelope.message !== ''
          ? envelope.message
          : `HTTP ${answer.status}${answer.statusText === '' ? '' : ` ${answer.statusText}`}`;
      if (code === 'CONFLICT' && answer.attempts > 1) {
        message += ' (an earlier attempt of this request may have succeeded)';
      }
      throw new TaskerApiError({
        ...base,
        code,
        message,
        retryAfterSeconds: retryAfterSeconds(answer.headers, body),
      });
    }
    const kind = parsed.ok
      ? Array.isArray(parsed.value)
        ? 'array'
        : isRecord(parsed.value)
          ? 'object'
          : 'other'
      : null;
    if (kind !== expected) {
      throw new TaskerApiError({
        ...base,
        code: 'INVALID_RESPONSE',
        message: `Expected a JSON ${expected} in the response, got ${kind === null ? 'a body that is not JSON' : `JSON ${kind}`}`,
        retryAfterSeconds: null,
      });
    }
    return (parsed as { value: T }).value;
  }

  /** Sends the call, retrying when it may; returns the last answer or throws a transport error. */
  async #send(call: Call): Promise<Answer> {
    this.#throwIfClosed();
    const config = this.#config;
    const url = new URL(call.path, config.baseUrl);
    for (const [name, value] of Object.entries(call.query ?? {})) {
      if (value !== undefined) url.searchParams.set(name, String(value));
    }
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': config.userAgent };
    if (config.authHeader !== null) headers[config.authHeader[0]] = config.authHeader[1];
    let body: string | undefined;
    if (call.body !== undefined) {
      body = JSON.stringify(call.body);
      headers['content-type'] = 'application/json';
    }
    const maxAttempts = call.retry ? config.maxAttempts : 1;

    for (let attempt = 1; ; attempt++) {
      const outcome = await this.#attempt(url, call.method, headers, body);
      let reason: string | null = null;
      let retryAfter: number | null = null;
      if (outcome.kind === 'answer') {
        if (RETRY_STATUSES.has(outcome.status)) {
          reason = `status ${outcome.status}`;
          const parsed = parseJson(outcome.text);
          retryAfter = retryAfterSeconds(outcome.headers, parsed.ok ? parsed.value : undefined);
        }
      } else {
        reason =
          outcome.kind === 'timeout'
            ? 'timeout'
            : outcome.kind === 'connect-timeout'
              ? 'connect timeout'
              : 'network error';
      }

      if (reason === null || attempt >= maxAttempts) {
        if (outcome.kind === 'answer') return { ...outcome, attempts: attempt };
        const what = `${call.method} ${url.pathname}`;
        const tries = attempt === 1 ? '' : ` (${attempt} attempts)`;
        if (outcome.kind === 'timeout') {
          throw new TaskerTimeoutError(
            `${what} got no complete answer within ${config.timeoutMs} ms${tries}`,
            config.timeoutMs,
            attempt,
            { cause: outcome.cause },
          );
        }
        if (outcome.kind === 'connect-timeout' && config.transport.kind === 'undici') {
          const { connectTimeoutMs } = config.transport;
          throw this.#connectTimeout(what, url, connectTimeoutMs, attempt, outcome.cause, tries);
        }
        throw new TaskerNetworkError(`${what} failed: ${describeCause(outcome.cause)}${tries}`, attempt, {
          cause: outcome.cause,
        });
      }

      const delayMs = this.#delay(attempt, retryAfter);
      const event: RetryEvent = { method: call.method, path: url.pathname, attempt, delayMs, reason };
      config.onRetry?.(event);
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }

  #throwIfClosed(): void {
    if (this.#closing !== null) throw new TaskerClientError('The TaskerClient is closed');
  }

  /** The connection to `url`'s host was not made within `connectTimeoutMs`. */
  #connectTimeout(
    what: string,
    url: URL,
    connectTimeoutMs: number,
    attempts: number,
    cause: unknown,
    tries = '',
  ): TaskerTimeoutError {
    return new TaskerTimeoutError(
      `${what}: could not connect to ${url.host} within connectTimeoutMs (${connectTimeoutMs} ms)${tries}`,
      connectTimeoutMs,
      attempts,
      { cause, code: 'CONNECT_TIMEOUT' },
    );
  }

  /** Full jitter over an exponential ceiling; a server's `Retry-After` wins, capped at `maxDelayMs`. */
  #delay(attempt: number, retryAfter: number | null): number {
    const { baseDelayMs, maxDelayMs } = this.#config;
    if (retryAfter !== null) return Math.min(retryAfter * 1000, maxDelayMs);
    const ceiling = Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1));
    return Math.floor(Math.random() * (ceiling + 1));
  }

  /**
   * One request under its own timeout; the body is read inside the timeout too. Connecting is
   * bounded by the agent's connect timeout as well, whichever passes first.
   */
  async #attempt(
    url: URL,
    method: string,
    headers: Record<string, string>,
    body: string | undefined,
  ): Promise<Attempt> {
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort(new Error(`timed out after ${this.#config.timeoutMs} ms`));
    }, this.#config.timeoutMs);
    try {
      const response = await this.#fetch(url, {
        method,
        headers,
        ...(body === undefined ? {} : { body }),
        signal: controller.signal,
        // a redirect could carry the credentials elsewhere; the API has none, so it is an error status
        redirect: 'manual',
      });
      const text = await response.text();
      return {
        kind: 'answer',
        status: response.status,
        statusText: response.statusText,
        headers: response.headers,
        text,
      };
    } catch (error) {
      const connect = this.#config.transport.kind === 'undici' && isConnectTimeout(error);
      return { kind: timedOut ? 'timeout' : connect ? 'connect-timeout' : 'network', cause: error };
    } finally {
      clearTimeout(timer);
    }
  }
}
