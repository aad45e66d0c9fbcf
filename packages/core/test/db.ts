import type { Backend } from '@tasker/db';
import { createTestDatabase, type TestDatabase } from '@tasker/db/testing';
import { TASKER_MIGRATIONS } from '../src/migrations.ts';

/** A fresh database of the given backend with the whole Tasker schema. */
export function createCoreDatabase(backend: Backend): Promise<TestDatabase> {
  return createTestDatabase(backend, { migrations: TASKER_MIGRATIONS });
}
