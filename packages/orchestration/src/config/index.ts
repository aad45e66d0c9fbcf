/**
 * The process configuration: TOML base + environment overlay, allowlisted `${VAR}` substitution and
 * one validating schema of explicit defaults. See load.ts, env.ts and schema.ts.
 */
export { substitute } from './env.ts';
export { ConfigError, type LoadedConfig, loadConfig, mergeConfig } from './load.ts';
export { type ConfigIssue, readConfig, type TaskerConfig } from './schema.ts';
