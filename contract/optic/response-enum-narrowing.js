// An Optic ruleset (loaded by contract/optic/standard.yml) for a
// breaking change its `breaking-changes` rules do not flag: an enum value
// removed from a response property.
//
// Optic judges enums by what goes over the wire: a response that can no longer
// carry a value cannot surprise a client. But clients here are generated from
// the spec, and the generated type narrows with the enum: TypeScript code that
// compares the field with the removed value stops compiling (the types no
// longer overlap), and Python code that names the removed member of the
// generated enum fails. So for this API a narrowed response enum is breaking,
// like a removed response property.
//
// Written like Optic's own `preventPropertyEnumBreak` (request and response
// property enums) in @useoptic/standard-rulesets, with the response side
// reversed; `enum` and `const` both count as enums, as there.
const { PropertyRule, Ruleset, RuleError } = require('@useoptic/rulesets-base');

const enumValues = (schema) => {
  if (schema && Array.isArray(schema.enum)) return schema.enum;
  if (schema && 'const' in schema) return [schema.const];
  return undefined;
};

const preventResponseEnumNarrowing = new PropertyRule({
  name: 'prevent response enum narrowing',
  matches: (property) => enumValues(property.raw) !== undefined,
  rule: (property) => {
    property.changed((before, after) => {
      if ('inRequest' in after.location.conceptualLocation) return;
      const beforeValues = enumValues(before.raw);
      const afterValues = enumValues(after.raw);
      // An enum dropped altogether widens the response; Optic's own rule flags that.
      if (!beforeValues || !afterValues) return;
      const kept = new Set(afterValues.map((value) => JSON.stringify(value)));
      const removed = beforeValues.filter((value) => !kept.has(JSON.stringify(value)));
      if (removed.length > 0) {
        throw new RuleError({
          message: `cannot remove enum option${removed.length > 1 ? 's' : ''} '${removed.join(', ')}' from response property '${after.value.key}'. This is a breaking change.`,
        });
      }
    });
  },
});

module.exports = {
  name: 'response-enum-narrowing',
  description: 'An enum value removed from a response property breaks generated clients.',
  configSchema: {},
  rulesetConstructor: () =>
    new Ruleset({ name: 'response enum narrowing', rules: [preventResponseEnumNarrowing] }),
};
