/** The one sanctioned stub: commands whose engine (Trainer, PEFT API) is still being built. */
import { PeftError } from '../../errors';

export function notBuiltYet(command: string, needs: string): never {
  throw new PeftError(`The ${command} command is not built yet: it needs ${needs}, which is in progress`, 'E_UNSUPPORTED');
}
