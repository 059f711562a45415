/**
 * Checks on the regular expressions a PEFT config holds (target_modules as a string, rank_pattern and
 * alpha_pattern keys). They come from adapter_config.json files of any origin, and JavaScript's
 * regular expressions can neither be interrupted nor bounded in time, so a pattern is refused when
 * it is very long, does not compile as used, or repeats a group that itself repeats (`(a+)+`,
 * `(\d*)*`): the shape whose backtracking grows exponentially with the name's length.
 * @internal
 */

/** Longest pattern accepted; real ones are tens of characters. */
export const MAX_PATTERN_LENGTH = 1000;

/**
 * True when some group that contains a quantifier is itself quantified. Escapes and character
 * classes are skipped; an over-cautious answer only ever refuses an unusual pattern.
 */
export function hasNestedQuantifier(pattern: string): boolean {
  const groups: boolean[] = []; // per open group: holds a quantifier
  let inClass = false;
  const isQuantifier = (c: string | undefined) => c === '+' || c === '*' || c === '{' || c === '?';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\') {
      i++;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      continue;
    }
    if (c === '[') inClass = true;
    else if (c === '(') groups.push(false);
    else if (c === ')') {
      const quantifiedInside = groups.pop() ?? false;
      const next = pattern[i + 1];
      // `?` after a group only makes it optional; `+`, `*` and `{n,}` repeat it.
      if (quantifiedInside && (next === '+' || next === '*' || next === '{')) return true;
      if (groups.length && (quantifiedInside || isQuantifier(next))) groups[groups.length - 1] = true;
    } else if ((c === '+' || c === '*' || c === '{') && groups.length) groups[groups.length - 1] = true;
  }
  return false;
}

/** Why `pattern`, used as `wrap(pattern)`, is refused, or null when it is fine. */
export function patternProblem(pattern: string, wrap: (p: string) => string): string | null {
  if (pattern.length > MAX_PATTERN_LENGTH) return `a pattern of at most ${MAX_PATTERN_LENGTH} characters`;
  if (hasNestedQuantifier(pattern)) return 'a regular expression without a repeated group that itself repeats (such as "(a+)+", whose matching time can explode)';
  try {
    // exec compiles the expression (V8 defers that, and "too large" only shows then).
    new RegExp(wrap(pattern)).exec('model.layers.0.self_attn.q_proj');
  } catch {
    return 'a valid regular expression';
  }
  return null;
}
