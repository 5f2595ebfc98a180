// The spec compatibility guard run by .ci/spec-compat.sh (docs/evolving-the-spec.md).
//
//   node contract/spec-compat.mjs check RELEASED CURRENT
//     Compares CURRENT (openapi/openapi.yaml) with RELEASED (openapi/released.yaml,
//     the spec as last released) with Optic: `optic diff --check` and the rules of
//     contract/optic/standard.yml. Fails when CURRENT breaks a client of RELEASED
//     while its major version is still RELEASED's, when CURRENT's version is lower
//     than RELEASED's, and when Optic does not answer as expected.
//
//   node contract/spec-compat.mjs self-test SPEC
//     Proves that guard: builds deliberately broken and compatible copies of SPEC
//     in a temporary folder and checks that `check` fails or passes on each, and
//     for the reason it must.
//
// Exit codes: 0 passed, 1 failed, 2 usage error.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import yaml from 'js-yaml';

const CONTRACT = dirname(fileURLToPath(import.meta.url));
const OPTIC = join(CONTRACT, 'node_modules', '.bin', 'optic');
const OPTIC_VERSION = JSON.parse(
  readFileSync(join(CONTRACT, 'node_modules', '@useoptic', 'optic', 'package.json'), 'utf8'),
).version;
const STANDARD = join(CONTRACT, 'optic', 'standard.yml');
const OPTIC_TIMEOUT_MS = 5 * 60 * 1000;

// ---------------------------------------------------------------------------
// The guard

// CORE_SCHEMA: plain YAML 1.2 values (no timestamps or other js-yaml extras),
// so a copy written back by the self-test means what the original meant.
const loadSpec = (file) => yaml.load(readFileSync(file, 'utf8'), { schema: yaml.CORE_SCHEMA });

function specVersion(spec, file) {
  const version = spec?.info?.version;
  const match = typeof version === 'string' && /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$/.exec(version);
  if (!match) {
    throw new Error(`${file}: info.version must be MAJOR.MINOR.PATCH (found ${JSON.stringify(version)})`);
  }
  return { text: version, parts: match.slice(1).map(Number) };
}

function compareVersions(a, b) {
  for (let i = 0; i < 3; i += 1) {
    if (a.parts[i] !== b.parts[i]) return a.parts[i] - b.parts[i];
  }
  return 0;
}

function runOptic(releasedFile, currentFile) {
  return new Promise((resolve) => {
    const child = spawn(OPTIC, ['diff', releasedFile, currentFile, '--check', '--standard', STANDARD], {
      env: {
        ...process.env,
        OPTIC_TELEMETRY_LEVEL: 'off', // no usage reports, no error reports
        SPEC_COMPAT_ROOT: CONTRACT, // read by contract/optic/standard.yml
        NODE_NO_WARNINGS: '1', // so that anything on stderr is Optic's own complaint
        FORCE_COLOR: '0',
        NO_COLOR: '1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: OPTIC_TIMEOUT_MS,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', (error) => resolve({ code: null, stdout, stderr: `${stderr}${error.message}\n` }));
    child.on('close', (code, signal) =>
      resolve({ code, stdout, stderr: signal ? `${stderr}optic ended by ${signal}\n` : stderr }),
    );
  });
}

// Optic's text report nests each change under its operation, then request or
// response, then body and property; a failed check is a line `x [rule] message`.
// Each finding is given with that path.
function readReport(stdout) {
  // Dropped: blank lines, and Optic's pointers to its web view and (with CI set) its cloud.
  const lines = stdout
    .split('\n')
    .filter((line) => line.trim() !== '' && !/--web flag|^Preview docs:/.test(line));
  const findings = [];
  let context = [];
  for (const line of lines) {
    const indent = line.length - line.trimStart().length;
    const operation = /^[x✔] ((?:GET|PUT|POST|DELETE|OPTIONS|HEAD|PATCH|TRACE) \S+): ?/.exec(line);
    const nested = /^\s*- (.+?): ?\S*\s*$/.exec(line);
    const failure = /^\s*x \[([^\]]+)\] (.+?)\s*$/.exec(line);
    if (operation) {
      context = [{ indent: -1, label: operation[1] }];
    } else if (failure) {
      const where = context.map((entry) => entry.label).join(' › ') || 'specification';
      findings.push({ rule: failure[1], text: `${where}: [${failure[1]}] ${failure[2]}` });
    } else if (nested) {
      context = context.filter((entry) => entry.indent < indent);
      context.push({ indent, label: nested[1] });
    }
  }
  const checks = /Checks: (\d+)\/(\d+) passed/.exec(stdout);
  return {
    lines,
    findings,
    failedChecks: checks ? Number(checks[2]) - Number(checks[1]) : 0,
    sawSummary: /^Operations: /m.test(stdout),
  };
}

// What Optic said, when it is not a clear "these N checks failed" or "all passed".
function opticProblem(run, report) {
  if (run.code !== 0 && run.code !== 1) return `optic exited with ${run.code}`;
  if (run.stderr.trim() !== '') return 'optic wrote to stderr (a spec it could not read, a ruleset it could not load, ...)';
  if (!report.sawSummary) return 'optic printed no "Operations:" summary';
  if ((run.code === 1) !== (report.failedChecks > 0)) {
    return `optic exited with ${run.code} but reported ${report.failedChecks} failed check(s)`;
  }
  if (report.failedChecks > 0 && report.findings.length === 0) {
    return `optic reported ${report.failedChecks} failed check(s) that this script could not read`;
  }
  return undefined;
}

// The verdict on CURRENT against RELEASED, as data: { pass, reason, ... }, reason
// one of compatible, breaking-allowed-by-major, breaking, version-lowered, not-compared
// (a spec without a readable version, or Optic not answering as expected).
async function check(releasedFile, currentFile) {
  let released;
  let current;
  try {
    released = specVersion(loadSpec(releasedFile), releasedFile);
    current = specVersion(loadSpec(currentFile), currentFile);
  } catch (error) {
    return { pass: false, reason: 'not-compared', problem: error.message, findings: [], report: [] };
  }
  const verdict = { released: released.text, current: current.text, findings: [], report: [] };
  if (compareVersions(current, released) < 0) {
    return { ...verdict, pass: false, reason: 'version-lowered' };
  }
  const run = await runOptic(releasedFile, currentFile);
  const report = readReport(run.stdout);
  const problem = opticProblem(run, report);
  if (problem) {
    return { ...verdict, pass: false, reason: 'not-compared', problem, report: report.lines, stderr: run.stderr };
  }
  const findings = [...new Set(report.findings.map((finding) => finding.text))];
  const rules = new Set(report.findings.map((finding) => finding.rule));
  const result = { ...verdict, findings, rules, report: report.lines };
  if (findings.length === 0) return { ...result, pass: true, reason: 'compatible' };
  if (current.parts[0] > released.parts[0]) return { ...result, pass: true, reason: 'breaking-allowed-by-major' };
  return { ...result, pass: false, reason: 'breaking' };
}

function printVerdict(verdict, releasedFile, currentFile) {
  const indent = (lines) => lines.map((line) => `    ${line}`).join('\n');
  if (verdict.report.length > 0) console.log(`Optic's report:\n${indent(verdict.report)}\n`);
  if (verdict.findings.length > 0) {
    console.log(`Breaking changes (${verdict.findings.length}):\n${indent(verdict.findings.map((f) => `- ${f}`))}\n`);
  }
  const versions = `${currentFile} ${verdict.current} against ${releasedFile} ${verdict.released}`;
  switch (verdict.reason) {
    case 'compatible':
      console.log(`spec-compat: passed: ${versions}: no breaking change`);
      break;
    case 'breaking-allowed-by-major':
      console.log(`spec-compat: passed: ${versions}: the breaking changes above come with a new major version`);
      break;
    case 'breaking':
      console.error(
        `spec-compat: FAILED: ${versions}: the breaking changes above would break clients generated from ` +
          `version ${verdict.released}.\nMake the change compatible (docs/evolving-the-spec.md), or, if it ` +
          `must break clients, raise the major version in ${currentFile} and record the change in CHANGELOG.md.`,
      );
      break;
    case 'version-lowered':
      console.error(`spec-compat: FAILED: ${versions}: the version must not be lower than the released one`);
      break;
    default:
      console.error(`spec-compat: FAILED: ${verdict.problem}`);
      if (verdict.stderr) console.error(verdict.stderr.trimEnd());
  }
}

// ---------------------------------------------------------------------------
// The self-test: deliberate edits of the spec, each with the verdict it must get.

const clone = (value) => structuredClone(value);

function operation(spec, operationId) {
  for (const [path, item] of Object.entries(spec.paths ?? {})) {
    for (const [method, op] of Object.entries(item)) {
      if (op && op.operationId === operationId) return { path, method, op };
    }
  }
  throw new Error(`the spec has no operation ${operationId}: update the self-test in contract/spec-compat.mjs`);
}

function schema(spec, name, ...properties) {
  const found = spec.components?.schemas?.[name];
  if (!found) throw new Error(`the spec has no schema ${name}: update the self-test in contract/spec-compat.mjs`);
  for (const property of properties) {
    if (!found.properties?.[property]) {
      throw new Error(`schema ${name} has no property ${property}: update the self-test in contract/spec-compat.mjs`);
    }
  }
  return found;
}

function addProperty(target, name, definition, { required }) {
  if (target.properties?.[name]) throw new Error(`self-test: property ${name} exists already`);
  target.properties = { ...target.properties, [name]: definition };
  if (required) target.required = [...(target.required ?? []), name];
}

const withMajorRaised = (spec) => {
  spec.info.version = `${Number(spec.info.version.split('.')[0]) + 1}.0.0`;
};

// An optional request property with an enum: the spec has enums in responses
// only, so the request-enum cases add one to both copies first.
const addRequestEnum = (spec) =>
  addProperty(
    schema(spec, 'TrustDeviceRequest'),
    'reason',
    { type: 'string', enum: ['NEW_DEVICE', 'REAUTHENTICATED', 'OTHER'], description: 'Why the device is trusted.' },
    { required: false },
  );

// expect: breaking (fails, and one finding is of rule `rule`), compatible (passes,
// no finding), allowed (passes with findings: major raised), version-lowered,
// not-compared.
const CASES = [
  {
    name: 'an operation removed (DELETE of deleteDevice)',
    expect: 'breaking',
    rule: 'prevent operation removal',
    edit: (spec) => {
      const { path, method } = operation(spec, 'deleteDevice');
      delete spec.paths[path][method];
    },
  },
  {
    name: 'a path removed (that of untrustDevice)',
    expect: 'breaking',
    rule: 'prevent operation removal',
    edit: (spec) => delete spec.paths[operation(spec, 'untrustDevice').path],
  },
  {
    name: 'a response field removed (Device.city)',
    expect: 'breaking',
    rule: 'prevent removing response property',
    edit: (spec) => {
      const device = schema(spec, 'Device', 'city');
      delete device.properties.city;
      device.required = device.required.filter((name) => name !== 'city');
    },
  },
  {
    name: 'a required response field made optional (Device.city)',
    expect: 'breaking',
    rule: 'prevent making response property optional',
    edit: (spec) => {
      const device = schema(spec, 'Device', 'city');
      device.required = device.required.filter((name) => name !== 'city');
    },
  },
  {
    name: 'a new required request field (TrustDeviceRequest.label)',
    expect: 'breaking',
    rule: 'prevent changing request property to required',
    edit: (spec) =>
      addProperty(schema(spec, 'TrustDeviceRequest'), 'label', { type: 'string', description: 'A label.' }, { required: true }),
  },
  {
    name: 'an optional request field made required (TrustDeviceRequest.label)',
    expect: 'breaking',
    rule: 'prevent changing request property to required',
    base: (spec) =>
      addProperty(schema(spec, 'TrustDeviceRequest'), 'label', { type: 'string', description: 'A label.' }, { required: false }),
    edit: (spec) => schema(spec, 'TrustDeviceRequest', 'label').required.push('label'),
  },
  {
    name: 'a new required query parameter (listDevices ?limit)',
    expect: 'breaking',
    rule: 'prevent new required query parameters',
    edit: (spec) => {
      const { op } = operation(spec, 'listDevices');
      op.parameters = [
        ...(op.parameters ?? []),
        { name: 'limit', in: 'query', required: true, description: 'Page size.', schema: { type: 'integer' } },
      ];
    },
  },
  {
    name: 'a request enum value removed (TrustDeviceRequest.reason)',
    expect: 'breaking',
    rule: 'request and response property enums',
    base: addRequestEnum,
    edit: (spec) => schema(spec, 'TrustDeviceRequest', 'reason').properties.reason.enum.pop(),
  },
  {
    name: 'a response enum value removed (DeviceType)',
    expect: 'breaking',
    rule: 'prevent response enum narrowing',
    edit: (spec) => schema(spec, 'DeviceType').enum.pop(),
  },
  {
    name: 'a response enum value added (DeviceType)',
    expect: 'breaking',
    rule: 'request and response property enums',
    edit: (spec) => schema(spec, 'DeviceType').enum.push('SPEC_COMPAT_SELF_TEST'),
  },
  {
    name: 'a request field type changed (TrustDeviceRequest.fingerprint: string to integer)',
    expect: 'breaking',
    rule: 'prevent request property type changes',
    edit: (spec) => {
      schema(spec, 'TrustDeviceRequest', 'fingerprint').properties.fingerprint = { type: 'integer', description: 'A number.' };
    },
  },
  {
    name: 'a response field type changed (Device.isTrusted: boolean to string)',
    expect: 'breaking',
    rule: 'prevent response property type changes',
    edit: (spec) => {
      schema(spec, 'Device', 'isTrusted').properties.isTrusted.type = 'string';
    },
  },
  {
    name: 'a response field made nullable (Device.os: string to [string, null])',
    expect: 'breaking',
    rule: 'prevent response property type changes',
    edit: (spec) => {
      schema(spec, 'Device', 'os').properties.os.type = ['string', 'null'];
    },
  },
  {
    name: 'a path parameter type changed (DeviceId: string to integer)',
    expect: 'breaking',
    rule: 'prevent path parameters type changes',
    edit: (spec) => {
      spec.components.parameters.DeviceId.schema = { type: 'integer' };
    },
  },
  {
    name: 'a response status removed (200 of getDevice)',
    expect: 'breaking',
    rule: 'prevent response status code removal',
    edit: (spec) => delete operation(spec, 'getDevice').op.responses['200'],
  },
  {
    name: 'the spec unchanged',
    expect: 'compatible',
    edit: () => {},
  },
  {
    name: 'a new optional request field (TrustDeviceRequest.label)',
    expect: 'compatible',
    edit: (spec) =>
      addProperty(schema(spec, 'TrustDeviceRequest'), 'label', { type: 'string', description: 'A label.' }, { required: false }),
  },
  {
    name: 'a new operation (GET /spec-compat-self-test)',
    expect: 'compatible',
    edit: (spec) => {
      if (spec.paths['/spec-compat-self-test']) throw new Error('self-test: the path exists already');
      spec.paths['/spec-compat-self-test'] = {
        get: {
          operationId: 'specCompatSelfTest',
          tags: [spec.tags[0].name],
          summary: 'An operation added by the self-test',
          security: [],
          responses: {
            200: {
              description: 'A message.',
              content: { 'application/json': { schema: { $ref: '#/components/schemas/MessageResponse' } } },
            },
          },
        },
      };
    },
  },
  {
    name: 'new required response fields (Device.model, DeviceListResponse.total)',
    expect: 'compatible',
    edit: (spec) => {
      addProperty(schema(spec, 'Device'), 'model', { type: 'string', description: 'Model.' }, { required: true });
      addProperty(schema(spec, 'DeviceListResponse'), 'total', { type: 'integer', description: 'Count.' }, { required: true });
    },
  },
  {
    name: 'a new optional response field (Session.userAgent)',
    expect: 'compatible',
    edit: (spec) =>
      addProperty(schema(spec, 'Session'), 'userAgent', { type: ['string', 'null'], description: 'User-Agent.' }, { required: false }),
  },
  {
    name: 'a request enum value added (TrustDeviceRequest.reason)',
    expect: 'compatible',
    base: addRequestEnum,
    edit: (spec) => schema(spec, 'TrustDeviceRequest', 'reason').properties.reason.enum.push('ADMIN'),
  },
  {
    name: 'documentation edited (descriptions, a summary, an example)',
    expect: 'compatible',
    edit: (spec) => {
      spec.info.description = `${spec.info.description}\nEdited by the self-test.\n`;
      const { op } = operation(spec, 'untrustDevice');
      op.summary = `${op.summary} (edited)`;
      op.responses['200'].content['application/json'].example = { success: true, message: 'Edited' };
      schema(spec, 'Device', 'os').properties.os.description = 'Edited.';
    },
  },
  {
    name: 'an operation removed with the major version raised',
    expect: 'allowed',
    rule: 'prevent operation removal',
    edit: (spec) => {
      const { path, method } = operation(spec, 'deleteDevice');
      delete spec.paths[path][method];
      withMajorRaised(spec);
    },
  },
  {
    name: 'a version lower than the released one',
    expect: 'version-lowered',
    base: withMajorRaised,
    edit: (spec) => {
      spec.info.version = '0.0.1';
    },
  },
  {
    name: 'a spec Optic cannot read (paths is not an object)',
    expect: 'not-compared',
    edit: (spec) => {
      spec.paths = 5;
    },
  },
];

function judge(testCase, verdict) {
  const { expect, rule } = testCase;
  const ruleFired = !rule || verdict.rules?.has(rule);
  switch (expect) {
    case 'breaking':
      if (verdict.reason !== 'breaking') return `expected to fail on a breaking change, got ${verdict.reason}`;
      return ruleFired ? undefined : `failed, but rule "${rule}" did not fire`;
    case 'allowed':
      if (verdict.reason !== 'breaking-allowed-by-major') return `expected to pass with breaking changes listed, got ${verdict.reason}`;
      return ruleFired ? undefined : `passed, but rule "${rule}" did not fire`;
    default:
      return verdict.reason === expect ? undefined : `expected ${expect}, got ${verdict.reason}`;
  }
}

async function runCase(testCase, spec, dir, index) {
  const released = clone(spec);
  testCase.base?.(released);
  const current = clone(released);
  testCase.edit(current);
  const releasedFile = join(dir, `${index}-released.yaml`);
  const currentFile = join(dir, `${index}-openapi.yaml`);
  writeFileSync(releasedFile, yaml.dump(released, { schema: yaml.CORE_SCHEMA, lineWidth: -1, noRefs: true }));
  writeFileSync(currentFile, yaml.dump(current, { schema: yaml.CORE_SCHEMA, lineWidth: -1, noRefs: true }));
  const verdict = await check(releasedFile, currentFile);
  return { verdict, wrong: judge(testCase, verdict) };
}

async function selfTest(specFile) {
  const spec = loadSpec(specFile);
  specVersion(spec, specFile);
  const dir = mkdtempSync(join(tmpdir(), 'spec-compat-'));
  console.log(`Self-test: ${CASES.length} edits of ${specFile}, each checked against the unedited copy (in ${dir})`);
  let passed = 0;
  let failed = 0;
  try {
    // Two at a time: each Optic run is one Node process, mostly start-up.
    const results = new Array(CASES.length);
    let next = 0;
    const worker = async () => {
      while (next < CASES.length) {
        const index = next;
        next += 1;
        try {
          results[index] = await runCase(CASES[index], spec, dir, index);
        } catch (error) {
          results[index] = { verdict: { findings: [], report: [] }, wrong: `could not build the case: ${error.message}` };
        }
      }
    };
    await Promise.all([worker(), worker()]);
    CASES.forEach((testCase, index) => {
      const { verdict, wrong } = results[index];
      const outcome = verdict.pass === undefined ? '' : verdict.pass ? 'passes' : 'fails';
      const detail =
        verdict.reason === 'breaking' || verdict.reason === 'breaking-allowed-by-major'
          ? ` (${verdict.findings.length} breaking change(s), e.g. ${verdict.findings[0]})`
          : verdict.reason === 'not-compared'
            ? ` (${verdict.problem})`
            : '';
      if (wrong) {
        failed += 1;
        console.log(`  WRONG ${testCase.name}: ${wrong}${detail}`);
        if (verdict.report.length > 0) console.log(verdict.report.map((line) => `        ${line}`).join('\n'));
        if (verdict.stderr) console.log(verdict.stderr.trimEnd().replace(/^/gm, '        '));
      } else {
        passed += 1;
        console.log(`  ok    ${testCase.name}: ${outcome}, ${verdict.reason}${detail}`);
      }
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`spec-compat self-test: ${passed} passed, ${failed} failed`);
  return failed === 0;
}

// ---------------------------------------------------------------------------

const [command, ...files] = process.argv.slice(2);
try {
  if (command === 'check' && files.length === 2) {
    const [releasedFile, currentFile] = files;
    console.log(`Optic ${OPTIC_VERSION}: ${currentFile} against ${releasedFile}`);
    const verdict = await check(releasedFile, currentFile);
    printVerdict(verdict, releasedFile, currentFile);
    process.exitCode = verdict.pass ? 0 : 1;
  } else if (command === 'self-test' && files.length === 1) {
    process.exitCode = (await selfTest(files[0])) ? 0 : 1;
  } else {
    console.error('usage: node contract/spec-compat.mjs check RELEASED CURRENT | self-test SPEC');
    process.exitCode = 2;
  }
} catch (error) {
  console.error(`spec-compat: FAILED: ${error.message}`);
  process.exitCode = 1;
}
