// Regular expressions from adapter configs: patterns whose matching time can explode, patterns too
// long or too large to compile, and invalid rank_pattern keys are refused with E_CONFIG; the patterns
// PEFT users write pass.
import { normalizeConfig } from '../../lib';
import { hasNestedQuantifier } from '../../lib/peft/patterns';

describe('hasNestedQuantifier', () => {
  it.each([
    ['(a+)+', true], ['(a*)*b', true], ['(\\d+\\.)*mlp', true], ['((a|b)+)+', true], ['(x{2,})+', true], ['(?:a+){2,}', true], ['((a+))*', true],
    ['.*\\.(q_proj|v_proj)', false], ['model\\.layers\\.(\\d+)\\.self_attn\\.(q|k|v)_proj', false], ['(a+)?', false], ['[(+)]+', false],
    ['\\(a+\\)+', false], ['(q|k)_proj', false], ['.*(attn|mlp).*', false],
  ])('%s → %s', (pattern, nested) => expect(hasNestedQuantifier(pattern)).toBe(nested));
});

describe('patterns in configs', () => {
  const lora = (extra: Record<string, unknown>) => () => normalizeConfig({ peft_type: 'LORA', ...extra }, () => {});
  it('refuses exploding, overlong and invalid patterns with E_CONFIG', () => {
    expect(lora({ target_modules: '(a+)+$' })).toThrow(expect.objectContaining({ code: 'E_CONFIG', message: expect.stringContaining('repeated group') }));
    expect(lora({ target_modules: 'x'.repeat(70000) })).toThrow(expect.objectContaining({ code: 'E_CONFIG', message: expect.stringContaining('at most 1000 characters') }));
    expect(lora({ target_modules: '(' })).toThrow(expect.objectContaining({ code: 'E_CONFIG', message: expect.stringContaining('a valid regular expression') }));
    expect(lora({ rank_pattern: { '(': 4 } })).toThrow(expect.objectContaining({ code: 'E_CONFIG', message: expect.stringContaining('rank_pattern') }));
    expect(lora({ alpha_pattern: { '(\\w+)*x': 4 } })).toThrow(expect.objectContaining({ code: 'E_CONFIG', message: expect.stringContaining('alpha_pattern') }));
  });
  it('keeps the patterns PEFT users write', () => {
    expect(lora({ target_modules: '.*\\.(q_proj|v_proj)', rank_pattern: { 'layers\\.0\\.self_attn\\.q_proj': 4 }, alpha_pattern: { v_proj: 2 } })()).toMatchObject({ r: 8 });
  });
});
