/** What a subcommand of `peft-native` is: a name, help text, a config schema and what it runs. */
import type { ConfigOf, ConfigSchema } from './config';

/** One subcommand. */
export interface CommandSpec<S extends ConfigSchema = ConfigSchema> {
  name: string;
  /** One line for the command list. */
  summary: string;
  /** A paragraph for the command's --help. */
  description: string;
  schema: S;
  /** Example command lines for --help. */
  examples?: readonly string[];
  /** Does the work with the resolved configuration. */
  run(config: ConfigOf<S>): Promise<void>;
}

/** Declares a command; keeps the config type tied to its schema. */
export function defineCommand<S extends ConfigSchema>(spec: CommandSpec<S>): CommandSpec<S> {
  return spec;
}
