import { ConflictError, TaskerError, ValidationError } from './errors.ts';

/** The message of a duplicate task identity (it names nothing internal: AUDIT S-2). */
export const IDENTITY_CONFLICT = 'A task with this identity already exists';

/** SQLSTATEs raised by the core SQL functions (0003) and PostgreSQL codes we translate. */
export const SQLSTATE = {
  transitionNotAllowed: 'TK001',
  cycle: 'TK002',
  invalidArgument: 'TK003',
  uniqueViolation: '23505',
} as const;

function field(error: unknown, name: string): unknown {
  return typeof error === 'object' && error !== null ? (error as Record<string, unknown>)[name] : undefined;
}

export function sqlState(error: unknown): string | undefined {
  const code = field(error, 'code');
  return typeof code === 'string' ? code : undefined;
}

/**
 * Maps errors of the core SQL functions to typed errors whose messages are safe for API clients
 * (AUDIT S-2): the database text stays in `cause` for the logs. Unknown errors pass through.
 */
export function translateCoreSqlError(error: unknown): unknown {
  switch (sqlState(error)) {
    case SQLSTATE.uniqueViolation:
      if (
        field(error, 'constraint') === 'tasks_identity_hash_idx' ||
        /tasks_identity_hash_idx/.test(String(field(error, 'message')))
      ) {
        return new ConflictError(IDENTITY_CONFLICT, { cause: error });
      }
      return error;
    case SQLSTATE.transitionNotAllowed:
      return new TaskerError('INVALID_TRANSITION', 'the transition is not allowed', { cause: error });
    case SQLSTATE.cycle:
      return new ValidationError([{ field: 'dependencies', message: 'the edge would create a cycle' }], {
        cause: error,
      });
    case SQLSTATE.invalidArgument:
      return new TaskerError('INVALID_ARGUMENT', 'invalid argument to a core database function', {
        cause: error,
      });
    default:
      return error;
  }
}
