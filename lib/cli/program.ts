/**
 * The `peft-native` program: subcommands built from their config schemas with commander, and the
 * error policy (a one-line message on stderr and exit code 1; PEFT_DEBUG=1 adds the stack).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { Command, CommanderError, Option } from 'commander';

import { PeftError } from '../errors';
import type { CommandSpec } from './command';
import { demoCommand } from './commands/demo';
import { evalCommand } from './commands/eval';
import { exportCommand } from './commands/export';
import { generateCommand } from './commands/generate';
import { serveCommand } from './commands/serve';
import { inspectCommand } from './commands/inspect';
import { mergeCommand } from './commands/merge';
import { trainCommand } from './commands/train';
import { flagOf, isGroup, leafFields, placeholderOf, resolveConfig, showValue, type ConfigSchema, type FieldSpec } from './config';

/** The subcommands, in the order --help lists them (each `run` takes its own config type, hence the cast). */
export const COMMANDS: ReadonlyArray<CommandSpec<ConfigSchema>> = [
  trainCommand,
  generateCommand,
  serveCommand,
  evalCommand,
  mergeCommand,
  exportCommand,
  inspectCommand,
  demoCommand,
] as unknown as ReadonlyArray<CommandSpec<ConfigSchema>>;

function version(): string {
  try {
    // dist/cli/ and lib/cli/ are both two levels below the package root.
    return JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')).version;
  } catch {
    return 'unknown';
  }
}

function helpLine(spec: FieldSpec): string {
  const extras: string[] = [];
  if (spec.choices) extras.push(`choices: ${spec.choices.join(', ')}`);
  if (spec.default !== undefined && spec.type !== 'boolean') extras.push(`default: ${showValue(spec.default)}`);
  if (spec.required) extras.push('required');
  return extras.length ? `${spec.description} (${extras.join('; ')})` : spec.description;
}

/** Adds a field's flag(s); returns the commander attribute name that holds its value. */
function addFieldOptions(command: Command, key: string, spec: FieldSpec): string {
  const flag = flagOf(key);
  if (spec.type === 'boolean') {
    const on = new Option(`${spec.short ? `-${spec.short}, ` : ''}${flag}`, spec.description);
    const off = new Option(`--no-${flag.slice(2)}`, spec.offDescription ?? `turn off: ${spec.description}`);
    // Show the flag that changes the default; accept both.
    (spec.default === true ? on : off).hideHelp();
    command.addOption(on).addOption(off);
    return on.attributeName();
  }
  const option = new Option(`${spec.short ? `-${spec.short}, ` : ''}${flag} <${placeholderOf(spec)}>`, helpLine(spec));
  command.addOption(option);
  return option.attributeName();
}

function nestedHelp(schema: ConfigSchema): string {
  const nested = leafFields(schema).filter(([k]) => k.includes('.'));
  if (!nested.length) return '';
  const width = Math.max(...nested.map(([k]) => k.length));
  const groups = Object.entries(schema).filter(([, s]) => isGroup(s));
  const lines = nested.map(([k, s]) => `  ${k.padEnd(width)}  ${helpLine(s)}`);
  return `\nNested fields (set them in the config file or with --set ${nested[0][0]}=…):\n${groups.map(([k, g]) => `  ${k}: ${(g as { description: string }).description}`).join('\n')}\n${lines.join('\n')}\n`;
}

function addCommand(program: Command, spec: CommandSpec<ConfigSchema>): void {
  const command = program.command(spec.name).summary(spec.summary).description(spec.description);
  const attributes = new Map<string, string>();
  let positional: string | undefined;
  for (const [key, field] of Object.entries(spec.schema)) {
    if (isGroup(field)) continue;
    if (field.positional) {
      positional = key;
      command.argument(`[${field.placeholder ?? key}]`, helpLine(field));
      continue;
    }
    attributes.set(key, addFieldOptions(command, key, field));
  }
  command.optionsGroup('Configuration:');
  command.option('-c, --config <file>', 'a YAML or JSON file of fields (flags and --set override it)');
  command.option('--set <key=value>', 'set any field, nested ones with dots (repeatable)', (v: string, all: string[] = []) => [...all, v]);
  command.option('--print-config', 'print the resolved configuration as JSON and exit');
  const after = nestedHelp(spec.schema) + (spec.examples?.length ? `\nExamples:\n${spec.examples.map((e) => `  $ ${e}`).join('\n')}\n` : '');
  if (after) command.addHelpText('after', after);
  command.action(async (...args: unknown[]) => {
    const cmd = args[args.length - 1] as Command;
    const opts = cmd.opts();
    const flags: Record<string, string | boolean | undefined> = {};
    for (const [key, attribute] of attributes) flags[key] = opts[attribute] as string | boolean | undefined;
    if (positional) flags[positional] = args[0] as string | undefined;
    const config = resolveConfig(spec.schema, { file: opts.config, sets: opts.set, flags });
    if (opts.printConfig) {
      process.stdout.write(`${JSON.stringify(config, null, 2)}\n`);
      return;
    }
    await spec.run(config);
  });
}

/** The commander program with every subcommand. */
export function buildProgram(): Command {
  const program = new Command('peft-native')
    .description('Parameter-efficient fine-tuning of transformer models, from the command line.')
    .version(version(), '-V, --version')
    .exitOverride()
    .showHelpAfterError('(add --help for the options)');
  for (const spec of COMMANDS) addCommand(program, spec);
  return program;
}

/** Runs the command line `argv` (without node and the script); resolves to the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return 0;
  } catch (err) {
    // commander has printed its own message (or the help) already.
    if (err instanceof CommanderError) return err.exitCode;
    const e = err instanceof Error ? err : new Error(String(err));
    const code = err instanceof PeftError ? ` [${err.code}]` : '';
    process.stderr.write(`peft-native: ${e.message}${code}\n`);
    if (process.env.PEFT_DEBUG) process.stderr.write(`${e.stack}\n`);
    return 1;
  }
}
