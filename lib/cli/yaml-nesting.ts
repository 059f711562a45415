/**
 * An upper bound of how deeply a YAML text nests, found without parsing it. The `yaml` package
 * recurses once per level: a few hundred levels (a 2 KB file of "[[[[…") overflow the stack, and
 * after such an overflow V8 can abort the whole process while compiling a regular expression
 * ("RegExpCompiler Allocation failed"). Config files nest two or three levels; deeper text is refused
 * before the parser sees it.
 * @internal
 */

/** Deepest nesting accepted: far above any config, far below where the parser's stack runs out. */
export const MAX_YAML_NESTING = 64;

/** Block indicators that open a level on the line they start: "- item", "? key", ": value". */
const INDICATOR = /^[-?:](?:[ \t]+|$)/;

/**
 * Levels open at the deepest point of `text`, counted generously: each indentation step, each block
 * indicator at the start of a line and each open flow bracket outside quotes and comments. Returns
 * the 1-based line where it first exceeds `limit` (0 when it never does).
 */
export function lineExceedingNesting(text: string, limit = MAX_YAML_NESTING): number {
  const indents: number[] = [];
  let flow = 0;
  let blockScalarIndent = -1; // lines indented deeper than this belong to a | or > scalar
  const lines = text.split(/\r\n|\n|\r/);
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n];
    const indent = line.length - line.replace(/^ +/, '').length;
    let rest = line.slice(indent);
    if (blockScalarIndent >= 0) {
      if (rest === '' || indent > blockScalarIndent) continue;
      blockScalarIndent = -1;
    }
    if (rest === '' || rest.startsWith('#')) continue;
    if (flow === 0) {
      while (indents.length && indents[indents.length - 1] >= indent) indents.pop();
      indents.push(indent);
    }
    let indicators = 0;
    for (let m = INDICATOR.exec(rest); m; m = INDICATOR.exec(rest)) {
      indicators++;
      rest = rest.slice(m[0].length);
    }
    let quote = '';
    let deepest = flow;
    let valueStart = true; // a flow bracket opens a collection only where a value starts
    for (let i = 0; i < rest.length; i++) {
      const c = rest[i];
      if (quote) {
        if (c === '\\' && quote === '"') i++;
        else if (c === quote) quote = '';
        continue;
      }
      if (c === '#' && (i === 0 || rest[i - 1] === ' ' || rest[i - 1] === '\t')) break;
      if ((c === '"' || c === "'") && valueStart) quote = c;
      else if ((c === '[' || c === '{') && (valueStart || flow > 0)) deepest = Math.max(deepest, ++flow);
      else if ((c === ']' || c === '}') && flow > 0) flow--;
      if (c === ':' || c === ',' || c === '[' || c === '{' || c === '-' || c === '?') valueStart = true;
      else if (c !== ' ' && c !== '\t') valueStart = false;
    }
    if (indents.length + indicators + deepest > limit) return n + 1;
    if (flow === 0 && /(?:^|[ \t:-])[|>][-+0-9]*[ \t]*(?:#.*)?$/.test(rest)) blockScalarIndent = indent;
  }
  return 0;
}
