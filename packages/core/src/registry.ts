import type { Queryable } from '@tasker/db';
import { NotFoundError } from './errors.ts';
import { normalizeTemplateDocument } from './template/load.ts';
import { type TaskTemplate, templateKey } from './template/model.ts';

export interface RegisteredTemplate {
  namedTaskUuid: string;
  template: TaskTemplate;
}

/**
 * Templates as the database knows them. Workers register the templates they serve; orchestration
 * looks them up by (namespace, name, version), so a process can create tasks for templates another
 * process registered. Lookups are cached per process for `cacheTtlMs` (a template re-registered by
 * another process is seen after that); registering refreshes this process's cache at once. A stored
 * configuration is validated again when read (it may have been written by another version).
 */
export class TemplateRegistry {
  readonly #db: Queryable;
  readonly #cache = new Map<string, { registered: RegisteredTemplate; expires: number }>();
  readonly #ttlMs: number;

  constructor(db: Queryable, options: { cacheTtlMs?: number } = {}) {
    this.#db = db;
    this.#ttlMs = options.cacheTtlMs ?? 60_000;
  }

  /** Registers namespace, named task (with the whole normalized template) and step names; idempotent. */
  async register(template: TaskTemplate): Promise<RegisteredTemplate> {
    const { rows } = await this.#db.query<{ uuid: string }>(
      'SELECT tasker.register_template($1, $2, $3, $4, $5::jsonb, $6::tasker.identity_strategy, $7::text[]) AS uuid',
      [
        template.namespace_name,
        template.name,
        template.version,
        template.description,
        JSON.stringify(template),
        template.identity_strategy,
        template.steps.map((step) => step.name),
      ],
    );
    const uuid = rows[0]?.uuid;
    if (uuid === undefined) throw new Error(`registering ${templateKey(template)} returned no uuid`);
    const registered = { namedTaskUuid: uuid, template };
    this.#cache.set(templateKey(template), { registered, expires: Date.now() + this.#ttlMs });
    return registered;
  }

  async registerAll(templates: readonly TaskTemplate[]): Promise<RegisteredTemplate[]> {
    const registered: RegisteredTemplate[] = [];
    for (const template of templates) registered.push(await this.register(template));
    return registered;
  }

  /** The registered template, or `NotFoundError` ("Task template not found: ns/name/version"). */
  async get(namespace: string, name: string, version: string): Promise<RegisteredTemplate> {
    const key = templateKey({ namespace_name: namespace, name, version });
    const cached = this.#cache.get(key);
    if (cached && cached.expires > Date.now()) return cached.registered;
    const { rows } = await this.#db.query<{ named_task_uuid: string; configuration: unknown }>(
      `SELECT nt.named_task_uuid, nt.configuration
       FROM tasker.named_tasks nt
       JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
       WHERE ns.name = $1 AND nt.name = $2 AND nt.version = $3`,
      [namespace, name, version],
    );
    const row = rows[0];
    if (!row) throw new NotFoundError(`Task template not found: ${namespace}/${name}/${version}`);
    const template = normalizeTemplateDocument(row.configuration, { source: `database:${key}` });
    const registered = { namedTaskUuid: row.named_task_uuid, template };
    this.#cache.set(key, { registered, expires: Date.now() + this.#ttlMs });
    return registered;
  }
}
