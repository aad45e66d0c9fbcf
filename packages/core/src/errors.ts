/**
 * Typed errors of the Tasker domain. Each has a stable `code`; messages are safe to show to API
 * clients (no SQL, stack text or file paths of the server). Wrapping keeps `cause`.
 */
export class TaskerError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** One problem with an input, naming the field (a dotted path) it concerns. */
export interface FieldIssue {
  field: string;
  message: string;
}

/** Input that breaks a declared rule: nothing was written. */
export class ValidationError extends TaskerError {
  readonly issues: readonly FieldIssue[];
  constructor(issues: readonly FieldIssue[], options?: ErrorOptions) {
    super('VALIDATION_ERROR', issues.map((issue) => `${issue.field}: ${issue.message}`).join('; '), options);
    this.issues = issues;
  }
}

/** A transition the state machine does not allow from the current state. */
export class InvalidTransitionError extends TaskerError {
  readonly from: string | null;
  readonly event: string;
  constructor(entity: 'task' | 'step', from: string | null, event: string, reason?: string) {
    super(
      'INVALID_TRANSITION',
      `${entity} event ${event} is not allowed from state ${from ?? '(none)'}${reason ? `: ${reason}` : ''}`,
    );
    this.from = from;
    this.event = event;
  }
}

/** The request duplicates an existing entity (e.g. a task with the same identity). */
export class ConflictError extends TaskerError {
  constructor(message: string, options?: ErrorOptions) {
    super('CONFLICT', message, options);
  }
}

export class NotFoundError extends TaskerError {
  constructor(message: string, options?: ErrorOptions) {
    super('NOT_FOUND', message, options);
  }
}

/** One problem in a task template: the file (or other source), the step when there is one, where, what. */
export interface TemplateIssue {
  source: string;
  step?: string;
  /** JSON pointer into the template document, e.g. `/steps/2/retry/max_attempts` (`` = the whole file). */
  path: string;
  message: string;
  /** 1-based line in the source text, when known. */
  line?: number;
}

/** `file:line: step "x": /path: message`. */
export function formatTemplateIssue(issue: TemplateIssue): string {
  const where = issue.line === undefined ? issue.source : `${issue.source}:${issue.line}`;
  const step = issue.step === undefined ? '' : ` step "${issue.step}":`;
  const path = issue.path === '' ? '' : ` ${issue.path}:`;
  return `${where}:${step}${path} ${issue.message}`;
}

/**
 * A task template that cannot be loaded. Every problem found in the source is listed in `issues`, so
 * one report shows them all. Messages name the source given by the caller (a file path at start-up);
 * API layers that accept templates should pass a logical name, not a server path (AUDIT S-10).
 */
export class TemplateValidationError extends TaskerError {
  readonly source: string;
  readonly issues: readonly TemplateIssue[];
  constructor(source: string, issues: readonly TemplateIssue[], options?: ErrorOptions) {
    const count = issues.length === 1 ? '1 problem' : `${issues.length} problems`;
    super(
      'TEMPLATE_INVALID',
      `invalid task template ${source} (${count}):\n${issues.map((issue) => `  - ${formatTemplateIssue(issue)}`).join('\n')}`,
      options,
    );
    this.source = source;
    this.issues = issues;
  }
}
